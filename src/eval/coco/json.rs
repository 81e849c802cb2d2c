//! Raw COCO JSON records (ground truth and results) with a segmentation parser that reads
//! polygons, uncompressed and compressed RLE without buffering.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A COCO `segmentation` as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub enum RawSegm {
    /// One or more polygons `[x0, y0, x1, y1, ...]`.
    Polygons(Vec<Vec<f64>>),
    /// RLE with `size: [h, w]`.
    Rle { size: [u32; 2], counts: RawCounts },
}

/// RLE counts: a compressed string or a list of run lengths.
#[derive(Debug, Clone, PartialEq)]
pub enum RawCounts {
    Compressed(String),
    Uncompressed(Vec<u32>),
}

impl<'de> Deserialize<'de> for RawCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCounts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("RLE counts: a compressed RLE string or a list of run lengths")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawCounts, E> {
                Ok(RawCounts::Compressed(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<RawCounts, E> {
                Ok(RawCounts::Compressed(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCounts, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(64));
                while let Some(c) = seq.next_element::<u32>()? {
                    v.push(c);
                }
                Ok(RawCounts::Uncompressed(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawSegm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSegm;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a COCO segmentation: a list of polygons or an RLE object {size, counts}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawSegm, A::Error> {
                let mut polys = Vec::new();
                while let Some(p) = seq.next_element::<Vec<f64>>()? {
                    polys.push(p);
                }
                Ok(RawSegm::Polygons(polys))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSegm, A::Error> {
                let mut size: Option<[u32; 2]> = None;
                let mut counts: Option<RawCounts> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "size" => size = Some(map.next_value()?),
                        "counts" => counts = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let size = size.ok_or_else(|| de::Error::missing_field("size"))?;
                let counts = counts.ok_or_else(|| de::Error::missing_field("counts"))?;
                Ok(RawSegm::Rle { size, counts })
            }
        }
        d.deserialize_any(V)
    }
}

/// `iscrowd` as 0/1 or a boolean.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("0, 1 or a boolean")
        }
        fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
            Ok(b)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
            Ok(v != 0.0)
        }
    }
    d.deserialize_any(V)
}

#[derive(Debug, Deserialize)]
pub struct RawImage {
    pub id: i64,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub file_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawCategory {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawAnnotation {
    pub id: i64,
    pub image_id: i64,
    pub category_id: i64,
    #[serde(default)]
    pub segmentation: Option<RawSegm>,
    #[serde(default)]
    pub area: Option<f64>,
    #[serde(default)]
    pub bbox: Option<[f64; 4]>,
    #[serde(default, deserialize_with = "flag")]
    pub iscrowd: bool,
}

#[derive(Debug, Deserialize)]
pub struct RawGroundTruth {
    pub images: Vec<RawImage>,
    pub annotations: Vec<RawAnnotation>,
    #[serde(default)]
    pub categories: Vec<RawCategory>,
}

/// One entry of a COCO results file.
#[derive(Debug, Deserialize)]
pub struct RawResult {
    pub image_id: i64,
    pub category_id: i64,
    #[serde(default)]
    pub bbox: Option<[f64; 4]>,
    pub score: f64,
    #[serde(default)]
    pub segmentation: Option<RawSegm>,
}

/// A compressed RLE as written in results files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedRle {
    /// `[height, width]`.
    pub size: [u32; 2],
    pub counts: String,
}

/// One prediction in COCO results format (what `val --save-json` writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoResult {
    pub image_id: i64,
    pub category_id: i64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    pub score: f64,
    pub segmentation: CompressedRle,
}
