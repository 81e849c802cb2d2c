//! COCO detection and instance-segmentation evaluation with pycocotools `COCOeval` semantics
//! (box and mask mAP): reading COCO ground truth and results files in every mask encoding
//! ([`rle`]), and the evaluation itself ([`cocoeval`]).
//!
//! FastSAM is class-agnostic, so by default every annotation and prediction counts as one
//! category ([`EvalOptions::class_agnostic`]); with it off, categories are matched as COCOeval
//! does with `useCats=1`.

use std::collections::HashMap;
use std::path::Path;

pub mod cocoeval;
pub mod json;
pub mod rle;

pub use cocoeval::{CocoStats, EvalOptions, IouType, STAT_NAMES, evaluate};
pub use json::{CocoResult, CompressedRle};

use crate::mask::Rle;
use crate::types::Detection;
use json::{RawCounts, RawGroundTruth, RawResult, RawSegm};
use rle::RunMask;

/// Defaults of `fastsam-track val`: a low confidence threshold as evaluations use (every
/// detection counts towards the precision/recall curve), Ultralytics' validation NMS IoU, and
/// the 100 detections per image that COCOeval scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValConfig {
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
}

impl Default for ValConfig {
    fn default() -> Self {
        ValConfig { conf: 0.001, iou: 0.7, max_det: 100 }
    }
}

/// Errors reading COCO files or evaluating; each names the file and, where there is one, the
/// entry.
#[derive(Debug, thiserror::Error)]
pub enum CocoError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid COCO JSON: {message}")]
    Json { path: String, message: String },
    #[error("{path}: {entry}: {message}")]
    Entry { path: String, entry: String, message: String },
}

/// One image of the ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoImage {
    pub id: i64,
    pub width: u32,
    pub height: u32,
    pub file_name: Option<String>,
}

/// A ground-truth annotation, its mask decoded.
#[derive(Debug, Clone)]
pub struct GtAnnotation {
    pub id: i64,
    /// Index into [`CocoGt::images`].
    pub image: usize,
    pub category_id: i64,
    pub iscrowd: bool,
    pub area: f64,
    /// `[x, y, w, h]`.
    pub bbox: [f64; 4],
    pub mask: RunMask,
}

/// COCO ground truth (`instances.json`).
#[derive(Debug, Clone)]
pub struct CocoGt {
    /// The file it came from (for messages).
    pub path: String,
    /// Sorted by id (COCOeval's image order).
    pub images: Vec<CocoImage>,
    /// Category ids, sorted.
    pub categories: Vec<i64>,
    /// In file order.
    pub annotations: Vec<GtAnnotation>,
    index: HashMap<i64, usize>,
}

impl CocoGt {
    /// Index into [`CocoGt::images`] of an image id.
    pub fn image_index(&self, id: i64) -> Option<usize> {
        self.index.get(&id).copied()
    }
}

/// A prediction's mask, kept encoded until the evaluation needs it (COCOeval only scores the
/// best 100 per image).
#[derive(Debug, Clone, PartialEq)]
pub enum DetMask {
    Compressed(String),
    Counts(Vec<u32>),
    Polygons(Vec<Vec<f64>>),
}

/// One prediction of a results file.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Position in the results file (for messages).
    pub entry: usize,
    /// Index into [`CocoGt::images`].
    pub image: usize,
    pub category_id: i64,
    pub score: f64,
    /// `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// As pycocotools' `loadRes`: the box area when the result has a box, else the mask area.
    pub area: f64,
    pub mask: DetMask,
}

fn read(path: &Path) -> Result<Vec<u8>, CocoError> {
    std::fs::read(path).map_err(|source| CocoError::Io { path: path.display().to_string(), source })
}

/// Mask of a segmentation in an image of `h` x `w`, checked against the image size.
fn segm_counts(segm: &RawSegm, h: u32, w: u32) -> Result<Rle, String> {
    match segm {
        RawSegm::Polygons(polys) => {
            if polys.is_empty() {
                return Err("the polygon list is empty".into());
            }
            let mut parts = Vec::with_capacity(polys.len());
            for (i, p) in polys.iter().enumerate() {
                if p.len() % 2 != 0 || p.len() < 4 {
                    return Err(format!(
                        "polygon {i} has {} coordinates; it needs x, y pairs (at least 2 points)",
                        p.len()
                    ));
                }
                if p.iter().any(|v| !v.is_finite()) {
                    return Err(format!("polygon {i} has a coordinate that is not a finite number"));
                }
                parts.push(rle::polygon_to_rle(p, h, w));
            }
            Ok(rle::union(&parts, h, w))
        }
        RawSegm::Rle { size, counts } => {
            if *size != [h, w] {
                return Err(format!("the RLE size is {}x{} (h x w), but its image is {h}x{w}", size[0], size[1]));
            }
            let counts = match counts {
                RawCounts::Compressed(s) => rle::decode_counts(s).map_err(|e| format!("bad compressed RLE: {e}"))?,
                RawCounts::Uncompressed(c) => c.clone(),
            };
            rle::check_counts(&counts, h, w)?;
            Ok(Rle { size: [h, w], counts })
        }
    }
}

/// Parses one entry of a list on its own, to find the one that breaks a file.
type EntryCheck = fn(serde_json::Value) -> Result<(), serde_json::Error>;

/// Parse `bytes` as `T`; on failure, find the first entry of `list` (a top-level key, or the
/// top-level array when `None`) that does not parse as `E` to name it in the error.
fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &str,
    lists: &[(Option<&str>, EntryCheck)],
) -> Result<T, CocoError> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Ok(v),
        Err(e) => {
            let value: serde_json::Value = match serde_json::from_slice(bytes) {
                Ok(v) => v,
                Err(_) => return Err(CocoError::Json { path: path.into(), message: e.to_string() }),
            };
            for (key, check) in lists {
                let list = match key {
                    Some(k) => value.get(*k),
                    None => Some(&value),
                };
                let Some(serde_json::Value::Array(items)) = list else { continue };
                for (i, item) in items.iter().enumerate() {
                    if let Err(err) = check(item.clone()) {
                        let name = key.unwrap_or("entry");
                        let id = item.get("id").map(|v| format!(" (id {v})")).unwrap_or_default();
                        return Err(CocoError::Entry {
                            path: path.into(),
                            entry: format!("{name}[{i}]{id}"),
                            message: err.to_string(),
                        });
                    }
                }
            }
            Err(CocoError::Json { path: path.into(), message: e.to_string() })
        }
    }
}

fn check_as<E: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<(), serde_json::Error> {
    serde_json::from_value::<E>(v).map(|_| ())
}

/// Read COCO ground truth (`instances.json`).
pub fn load_gt(path: &Path) -> Result<CocoGt, CocoError> {
    let bytes = read(path)?;
    gt_from_slice(&bytes, &path.display().to_string())
}

/// Parse COCO ground truth from memory; `path` names it in errors.
pub fn gt_from_slice(bytes: &[u8], path: &str) -> Result<CocoGt, CocoError> {
    let raw: RawGroundTruth = parse(
        bytes,
        path,
        &[
            (Some("images"), check_as::<json::RawImage>),
            (Some("annotations"), check_as::<json::RawAnnotation>),
            (Some("categories"), check_as::<json::RawCategory>),
        ],
    )?;
    let entry_err = |entry: String, message: String| CocoError::Entry { path: path.into(), entry, message };
    let mut images: Vec<CocoImage> = raw
        .images
        .into_iter()
        .map(|i| CocoImage { id: i.id, width: i.width, height: i.height, file_name: i.file_name })
        .collect();
    images.sort_by_key(|i| i.id);
    let mut index = HashMap::with_capacity(images.len());
    for (k, im) in images.iter().enumerate() {
        if index.insert(im.id, k).is_some() {
            return Err(entry_err(format!("image id {}", im.id), "two images have this id".into()));
        }
    }
    let mut categories: Vec<i64> = raw.categories.iter().map(|c| c.id).collect();
    categories.sort_unstable();
    categories.dedup();
    let mut annotations = Vec::with_capacity(raw.annotations.len());
    for (i, a) in raw.annotations.into_iter().enumerate() {
        let entry = || format!("annotations[{i}] (id {})", a.id);
        let Some(&image) = index.get(&a.image_id) else {
            return Err(entry_err(entry(), format!("image_id {} is not in the file's images", a.image_id)));
        };
        let (h, w) = (images[image].height, images[image].width);
        let mask = match &a.segmentation {
            Some(s) => {
                let r = segm_counts(s, h, w).map_err(|m| entry_err(entry(), m))?;
                RunMask::new(&r.counts, h)
            }
            None => RunMask { runs: Vec::new(), area: 0, bounds: None },
        };
        let bbox = match a.bbox {
            Some(b) => b,
            None if a.segmentation.is_some() => mask.bbox(),
            None => return Err(entry_err(entry(), "the annotation has neither a bbox nor a segmentation".into())),
        };
        let Some(area) = a.area else {
            return Err(entry_err(
                entry(),
                "the annotation has no area (COCOeval needs it for the area ranges)".into(),
            ));
        };
        if !area.is_finite() || bbox.iter().any(|v| !v.is_finite()) {
            return Err(entry_err(entry(), "area or bbox is not a finite number".into()));
        }
        annotations.push(GtAnnotation {
            id: a.id,
            image,
            category_id: a.category_id,
            iscrowd: a.iscrowd,
            area,
            bbox,
            mask,
        });
    }
    Ok(CocoGt { path: path.into(), images, categories, annotations, index })
}

/// Read a COCO results file (a JSON list of `{image_id, category_id, bbox, score, segmentation}`)
/// for the images of `gt`.
pub fn load_results(path: &Path, gt: &CocoGt) -> Result<Vec<Prediction>, CocoError> {
    let bytes = read(path)?;
    results_from_slice(&bytes, &path.display().to_string(), gt)
}

/// Parse a COCO results file from memory; `path` names it in errors.
pub fn results_from_slice(bytes: &[u8], path: &str, gt: &CocoGt) -> Result<Vec<Prediction>, CocoError> {
    let raw: Vec<RawResult> = parse(bytes, path, &[(None, check_as::<RawResult>)])?;
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        out.push(prediction(i, r, path, gt)?);
    }
    Ok(out)
}

fn prediction(i: usize, r: RawResult, path: &str, gt: &CocoGt) -> Result<Prediction, CocoError> {
    let image_id = r.image_id;
    let entry_err = |message: String| CocoError::Entry {
        path: path.into(),
        entry: format!("entry {i} (image_id {image_id})"),
        message,
    };
    let Some(image) = gt.image_index(r.image_id) else {
        return Err(entry_err(format!("image_id {} is not an image of the ground truth {}", r.image_id, gt.path)));
    };
    if !r.score.is_finite() {
        return Err(entry_err(format!("score {} is not a finite number", r.score)));
    }
    let (h, w) = (gt.images[image].height, gt.images[image].width);
    let mask = match r.segmentation {
        Some(RawSegm::Rle { size, counts }) => {
            if size != [h, w] {
                return Err(entry_err(format!(
                    "the RLE size is {}x{} (h x w), but image {} is {h}x{w}",
                    size[0], size[1], r.image_id
                )));
            }
            match counts {
                RawCounts::Compressed(s) => DetMask::Compressed(s),
                RawCounts::Uncompressed(c) => {
                    rle::check_counts(&c, h, w).map_err(entry_err)?;
                    DetMask::Counts(c)
                }
            }
        }
        Some(RawSegm::Polygons(p)) => DetMask::Polygons(p),
        None => match r.bbox {
            // As loadRes: a box-only result's mask is its box as a polygon.
            Some([x, y, bw, bh]) => DetMask::Polygons(vec![vec![x, y, x, y + bh, x + bw, y + bh, x + bw, y]]),
            None => return Err(entry_err("the result has neither a bbox nor a segmentation".into())),
        },
    };
    let (bbox, area) = match r.bbox {
        Some(b) => {
            if b.iter().any(|v| !v.is_finite()) {
                return Err(entry_err("the bbox has a value that is not a finite number".into()));
            }
            (b, b[2] * b[3])
        }
        None => {
            let m = decode_mask(&mask, h, w).map_err(entry_err)?;
            (m.bbox(), m.area as f64)
        }
    };
    Ok(Prediction { entry: i, image, category_id: r.category_id, score: r.score, bbox, area, mask })
}

/// Decode a prediction's mask in an `h` x `w` image.
pub fn decode_mask(mask: &DetMask, h: u32, w: u32) -> Result<RunMask, String> {
    let counts = match mask {
        DetMask::Compressed(s) => {
            let c = rle::decode_counts(s).map_err(|e| format!("bad compressed RLE: {e}"))?;
            rle::check_counts(&c, h, w)?;
            return Ok(RunMask::new(&c, h));
        }
        DetMask::Counts(c) => return Ok(RunMask::new(c, h)),
        DetMask::Polygons(p) => segm_counts(&RawSegm::Polygons(p.clone()), h, w)?,
    };
    Ok(RunMask::new(&counts.counts, h))
}

/// A detection of image `image_id` as a COCO result: box `[x, y, w, h]`, score, and the mask as
/// compressed RLE (an empty mask of `width` x `height` when the detection has none).
pub fn detection_result(image_id: i64, category_id: i64, det: &Detection, width: u32, height: u32) -> CocoResult {
    let b = &det.bbox;
    let counts = match &det.mask {
        Some(m) => m.to_rle().counts,
        None => vec![width * height],
    };
    CocoResult {
        image_id,
        category_id,
        bbox: [f64::from(b.x1), f64::from(b.y1), f64::from(b.x2 - b.x1), f64::from(b.y2 - b.y1)],
        score: f64::from(det.score),
        segmentation: CompressedRle { size: [height, width], counts: rle::encode_counts(&counts) },
    }
}

/// Results already in memory (e.g. from the model) as predictions of `gt`, checked like a file.
pub fn results_from_records(records: &[CocoResult], gt: &CocoGt) -> Result<Vec<Prediction>, CocoError> {
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let raw = RawResult {
            image_id: r.image_id,
            category_id: r.category_id,
            bbox: Some(r.bbox),
            score: r.score,
            segmentation: Some(RawSegm::Rle {
                size: r.segmentation.size,
                counts: RawCounts::Compressed(r.segmentation.counts.clone()),
            }),
        };
        out.push(prediction(i, raw, "predictions", gt)?);
    }
    Ok(out)
}
