//! TEMPORARY stand-ins (mod shim) for the tracker, overlay and prompt APIs being written in
//! parallel (see the project brief). Same names and signatures as the real ones, trivial
//! implementations: a greedy box-IoU tracker, a mask-blend overlay, a simple prompt selector.
//! The pipeline reaches them only through [`super::deps`]; at merge, point `deps` at the real
//! modules and delete this file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::mask::Mask;
use crate::types::{BBox, Detection, PixelFormat};

// ---------------------------------------------------------------- tracker (issue 3 stand-in)

/// Stand-in for `crate::track::TrackerConfig` (only the fields the pipeline touches).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackerConfig {
    pub track_high_thresh: f32,
    pub track_low_thresh: f32,
    pub new_track_thresh: f32,
    pub track_buffer: u32,
    pub match_thresh: f32,
    pub fuse_score: bool,
    pub frame_rate: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            track_high_thresh: 0.25,
            track_low_thresh: 0.1,
            new_track_thresh: 0.25,
            track_buffer: 30,
            match_thresh: 0.8,
            fuse_score: true,
            frame_rate: 30.0,
        }
    }
}

impl TrackerConfig {
    pub fn from_toml_file(p: &Path) -> Result<Self, crate::track::TrackError> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| crate::track::TrackError::Other(format!("cannot read {}: {e}", p.display())))?;
        toml::from_str(&text).map_err(|e| crate::track::TrackError::Other(format!("{}: {e}", p.display())))
    }
}

/// Stand-in for `crate::track::TrackedObject`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackedObject {
    pub track_id: u64,
    pub bbox: BBox,
    pub score: f32,
    pub class_id: u32,
    pub det_index: usize,
}

/// Stand-in for `crate::track::ByteTracker`: greedy box-IoU association (IoU ≥ 1 − match_thresh),
/// lost tracks kept `track_buffer` frames.
#[derive(Debug)]
pub struct ByteTracker {
    cfg: TrackerConfig,
    tracks: Vec<(u64, BBox, u32)>, // id, last box, frames since seen
    next_id: u64,
}

impl ByteTracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        Self { cfg, tracks: Vec::new(), next_id: 1 }
    }

    pub fn update(&mut self, dets: &[Detection]) -> Vec<TrackedObject> {
        let min_iou = 1.0 - self.cfg.match_thresh;
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (di, d) in dets.iter().enumerate() {
                if d.score < self.cfg.track_low_thresh {
                    continue;
                }
                let iou = t.1.iou(&d.bbox);
                if iou >= min_iou {
                    pairs.push((iou, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut t_used = vec![false; self.tracks.len()];
        let mut d_used = vec![false; dets.len()];
        let mut out = Vec::new();
        for (_, ti, di) in pairs {
            if t_used[ti] || d_used[di] {
                continue;
            }
            t_used[ti] = true;
            d_used[di] = true;
            self.tracks[ti].1 = dets[di].bbox;
            self.tracks[ti].2 = 0;
            out.push((ti, di));
        }
        let mut result: Vec<TrackedObject> = out
            .into_iter()
            .map(|(ti, di)| TrackedObject {
                track_id: self.tracks[ti].0,
                bbox: dets[di].bbox,
                score: dets[di].score,
                class_id: dets[di].class_id,
                det_index: di,
            })
            .collect();
        for (ti, used) in t_used.iter().enumerate() {
            if !used {
                self.tracks[ti].2 += 1;
            }
        }
        let buffer = self.cfg.track_buffer;
        self.tracks.retain(|t| t.2 <= buffer);
        for (di, d) in dets.iter().enumerate() {
            if !d_used[di] && d.score >= self.cfg.new_track_thresh {
                let id = self.next_id;
                self.next_id += 1;
                self.tracks.push((id, d.bbox, 0));
                result.push(TrackedObject {
                    track_id: id,
                    bbox: d.bbox,
                    score: d.score,
                    class_id: d.class_id,
                    det_index: di,
                });
            }
        }
        result.sort_by_key(|t| t.track_id);
        result
    }
}

// ---------------------------------------------------------------- overlay (lead stand-in)

/// Stand-in for `crate::overlay::OverlayStyle`.
#[derive(Debug, Clone)]
pub struct OverlayStyle {
    pub alpha: f32,
    pub contours: bool,
    pub contour_thickness: i32,
    pub show_boxes: bool,
    pub show_labels: bool,
    pub show_scores: bool,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            contours: true,
            contour_thickness: 2,
            show_boxes: false,
            show_labels: true,
            show_scores: false,
        }
    }
}

/// Stand-in for `crate::overlay::OverlayItem`.
#[derive(Debug, Clone)]
pub struct OverlayItem<'a> {
    pub mask: Option<&'a Mask>,
    pub bbox: BBox,
    pub color_key: u64,
    pub label: Option<String>,
    pub score: Option<f32>,
}

/// Stand-in for `crate::overlay::color_for`: a deterministic bright colour per key.
pub fn color_for(key: u64) -> [u8; 3] {
    let mut x = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
    x ^= x >> 29;
    let b = x.to_le_bytes();
    [b[0] | 0x40, b[1] | 0x40, b[2] | 0x40]
}

/// Stand-in for `crate::overlay::Overlay`: alpha-blends masks, paints mask borders and boxes.
/// Labels are not drawn by the stand-in.
#[derive(Debug)]
pub struct Overlay {
    style: OverlayStyle,
}

impl Overlay {
    pub fn new(style: OverlayStyle) -> Self {
        Self { style }
    }

    pub fn draw(
        &mut self,
        img: &mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
        items: &[OverlayItem<'_>],
    ) -> Result<(), crate::Error> {
        let a = self.style.alpha.clamp(0.0, 1.0);
        for it in items {
            let mut c = color_for(it.color_key);
            if format == PixelFormat::Bgr8 {
                c.swap(0, 2);
            }
            if let Some(m) = it.mask {
                let roi = m.roi();
                let r = roi.rect;
                for y in r.y..r.bottom().min(height) {
                    for x in r.x..r.right().min(width) {
                        if !roi.get(x, y) {
                            continue;
                        }
                        let edge = self.style.contours
                            && (x == 0
                                || y == 0
                                || !roi.get(x - 1, y)
                                || !roi.get(x + 1, y)
                                || !roi.get(x, y - 1)
                                || !roi.get(x, y + 1));
                        let p = y as usize * stride + x as usize * 3;
                        for k in 0..3 {
                            img[p + k] = if edge {
                                c[k]
                            } else {
                                (img[p + k] as f32 * (1.0 - a) + c[k] as f32 * a).round() as u8
                            };
                        }
                    }
                }
            }
            if self.style.show_boxes {
                let x0 = it.bbox.x1.max(0.0) as u32;
                let y0 = it.bbox.y1.max(0.0) as u32;
                let x1 = (it.bbox.x2.max(0.0) as u32).min(width.saturating_sub(1));
                let y1 = (it.bbox.y2.max(0.0) as u32).min(height.saturating_sub(1));
                let mut put = |x: u32, y: u32| {
                    let p = y as usize * stride + x as usize * 3;
                    img[p..p + 3].copy_from_slice(&c);
                };
                for x in x0..=x1 {
                    if y0 < height {
                        put(x, y0);
                    }
                    put(x, y1);
                }
                for y in y0..=y1 {
                    if x0 < width {
                        put(x0, y);
                    }
                    put(x1, y);
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- prompts (issue 2 stand-in)

/// Stand-in for `crate::model::prompt::Prompt`.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Everything,
    Boxes(Vec<BBox>),
    Points(Vec<(f32, f32, bool)>),
    BoxesAndPoints(Vec<BBox>, Vec<(f32, f32, bool)>),
}

/// Stand-in for `crate::model::prompt::select`: per box, the detection with the highest box IoU;
/// per positive point, the smallest mask containing it; negative points remove detections
/// whose mask contains them.
pub fn select(
    dets: &[Detection],
    prompt: &Prompt,
    _img_w: u32,
    _img_h: u32,
) -> Result<Vec<usize>, crate::model::ModelError> {
    let contains = |d: &Detection, x: f32, y: f32| match &d.mask {
        Some(m) => x >= 0.0 && y >= 0.0 && m.roi().get(x as u32, y as u32),
        None => x >= d.bbox.x1 && x < d.bbox.x2 && y >= d.bbox.y1 && y < d.bbox.y2,
    };
    let (boxes, points): (&[BBox], &[(f32, f32, bool)]) = match prompt {
        Prompt::Everything => return Ok((0..dets.len()).collect()),
        Prompt::Boxes(b) => (b, &[]),
        Prompt::Points(p) => (&[], p),
        Prompt::BoxesAndPoints(b, p) => (b, p),
    };
    let mut out = Vec::new();
    for b in boxes {
        let best = dets
            .iter()
            .enumerate()
            .map(|(i, d)| (i, d.bbox.iou(b)))
            .filter(|(_, v)| *v > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, _)) = best {
            out.push(i);
        }
    }
    for &(x, y, pos) in points.iter().filter(|p| p.2) {
        let _ = pos;
        let best = dets
            .iter()
            .enumerate()
            .filter(|(_, d)| contains(d, x, y))
            .min_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()));
        if let Some((i, _)) = best {
            out.push(i);
        }
    }
    for &(x, y, _) in points.iter().filter(|p| !p.2) {
        out.retain(|&i| !contains(&dets[i], x, y));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

// ---------------------------------------------------------------- model resolution (issue 5 stand-in)

/// Stand-in for `crate::convert::resolve_model`: a path, else `$FASTSAM_MODEL`, else the cache.
pub fn resolve_model(spec: Option<&str>) -> Result<PathBuf, crate::convert::ConvertError> {
    if let Some(s) = spec {
        let p = PathBuf::from(s);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(crate::convert::ConvertError::Other(format!("model file not found: {s}")))
        };
    }
    if let Ok(env) = std::env::var("FASTSAM_MODEL") {
        let p = PathBuf::from(&env);
        if p.is_file() {
            return Ok(p);
        }
        return Err(crate::convert::ConvertError::Other(format!("$FASTSAM_MODEL points to a missing file: {env}")));
    }
    if let Some(cache) = dirs::cache_dir().map(|d| d.join("fastsam-track")) {
        for name in ["FastSAM-s.onnx", "FastSAM-x.onnx"] {
            if cache.join(name).is_file() {
                return Ok(cache.join(name));
            }
        }
    }
    Err(crate::convert::ConvertError::Other(
        "no FastSAM model found (no --model, $FASTSAM_MODEL unset, nothing in ~/.cache/fastsam-track/). \
         Get FastSAM-s: `pip install ultralytics` then `yolo export model=FastSAM-s.pt format=onnx`, \
         and pass --model FastSAM-s.onnx"
            .into(),
    ))
}

/// Stand-in for loading `crate::model::FastSam`: the real model is not in this build yet.
pub fn load_fastsam(path: &Path) -> Result<Box<dyn crate::types::Segmenter>, crate::Error> {
    Err(crate::model::ModelError::Other(format!(
        "cannot load {}: the FastSAM model code is not merged into this build yet",
        path.display()
    ))
    .into())
}
