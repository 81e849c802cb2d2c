//! FastSAM postprocessing as in Ultralytics 8.4.x (`non_max_suppression` with torchvision NMS,
//! `SegmentationPredictor.construct_result`, `FastSAMPredictor.postprocess`):
//!
//! 1. candidates with class score `> conf` (float32 comparison), `xywh -> xyxy`;
//! 2. class-agnostic greedy NMS in stable descending score order, suppressing IoU `> iou`, capped
//!    at `max_det`;
//! 3. masks (see [`super::masks`]) with the input-space box (retina off) or the original-space box
//!    (retina on); detections whose mask is empty are dropped;
//! 4. `scale_boxes` to original pixels, then FastSAM's border snap (threshold 20, applied to the
//!    returned boxes) and replacement of boxes with IoU > 0.9 against the full image by the full box.

use std::sync::Arc;

use super::ModelError;
use super::letterbox::{Letterbox, round_half_even};
use super::masks::{FrameGeometry, LazyProtoMask, ProtoMask, Protos};
use super::nms::{Nms, NmsBox};
use crate::mask::Mask;
use crate::types::{BBox, Detection};

/// Postprocessing thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostConfig {
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    pub retina_masks: bool,
}

/// A detection with all intermediate values (for parity checks and prompts).
#[derive(Debug, Clone)]
pub struct RawDetection {
    /// Column of `output0` it came from.
    pub anchor: usize,
    pub score: f32,
    pub class_id: u32,
    /// The NMS box in letterboxed input pixels.
    pub input_box: BBox,
    /// The box scaled to original pixels (`scale_boxes`), before FastSAM's adjustments.
    pub box_before_adjust: BBox,
    /// The final box Ultralytics returns.
    pub bbox: BBox,
    pub mask: Arc<ProtoMask>,
}

impl RawDetection {
    /// The public detection, its mask rendered lazily at original size.
    pub fn to_detection(&self) -> Detection {
        Detection {
            bbox: self.bbox,
            score: self.score,
            class_id: self.class_id,
            mask: Some(Mask::lazy(Box::new(LazyProtoMask(self.mask.clone())))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Cand {
    anchor: u32,
    class_id: u32,
    score: f32,
    bx: NmsBox,
}

/// Reusable postprocessor (keeps its candidate buffers between frames).
#[derive(Debug, Default)]
pub struct Postprocessor {
    cands: Vec<Cand>,
    nms: Nms,
    keep: Vec<usize>,
}

/// The f64 value a user-facing f32 threshold denotes (0.9f32 -> 0.9, as Python passes it).
fn as_decimal_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

impl Postprocessor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Run the postprocessing of one image. `out0` is `[4 + nc + nm, num_anchors]` row-major.
    pub fn run(
        &mut self,
        out0: &[f32],
        num_anchors: usize,
        protos: &Protos,
        lb: &Letterbox,
        cfg: &PostConfig,
    ) -> Result<Vec<RawDetection>, ModelError> {
        let a = num_anchors;
        if a == 0 || !out0.len().is_multiple_of(a) {
            return Err(ModelError::Output(format!(
                "output0 has {} values, not a multiple of {a} anchors",
                out0.len()
            )));
        }
        let rows = out0.len() / a;
        let nm = protos.nm;
        if rows < 5 + nm {
            return Err(ModelError::Output(format!(
                "output0 has {rows} rows; expected 4 box + >=1 class + {nm} mask coefficient rows"
            )));
        }
        let nc = rows - 4 - nm;
        let row = |r: usize| &out0[r * a..(r + 1) * a];

        // 1. confidence filter (best class)
        self.cands.clear();
        let (cx, cy, bw, bh) = (row(0), row(1), row(2), row(3));
        for i in 0..a {
            let (mut best, mut cls) = (row(4)[i], 0u32);
            for c in 1..nc {
                let s = row(4 + c)[i];
                if s > best {
                    best = s;
                    cls = c as u32;
                }
            }
            if best > cfg.conf {
                let (hw, hh) = (bw[i] / 2.0, bh[i] / 2.0);
                let b = [cx[i] - hw, cy[i] - hh, cx[i] + hw, cy[i] + hh];
                let area = (b[2] - b[0]) * (b[3] - b[1]);
                self.cands.push(Cand { anchor: i as u32, class_id: cls, score: best, bx: NmsBox { b, area } });
            }
        }
        // 2. greedy NMS in stable descending score order (torchvision semantics)
        let thr = as_decimal_f64(cfg.iou);
        let cands = &self.cands;
        self.nms.run(cands.len(), |i| cands[i].score, |i| cands[i].bx, thr, cfg.max_det, &mut self.keep);

        // 3./4. boxes to original pixels, masks, empty filter, FastSAM adjustments
        let geom = Arc::new(FrameGeometry::new(*lb, protos.clone(), cfg.retina_masks));
        let sb = ScaleBoxes::new(lb);
        let mut coeffs = vec![0f32; nm];
        let mut out = Vec::with_capacity(self.keep.len());
        for &k in &self.keep {
            let c = self.cands[k];
            let anchor = c.anchor as usize;
            for (m, v) in coeffs.iter_mut().enumerate() {
                *v = row(4 + nc + m)[anchor];
            }
            let b = c.bx.b;
            let input_box = BBox::new(b[0], b[1], b[2], b[3]);
            let scaled = sb.apply(&input_box);
            let mask = ProtoMask::new(geom.clone(), &coeffs, &input_box, &scaled);
            if mask.is_empty() {
                continue;
            }
            let bbox = fastsam_adjust(scaled, lb.orig_w, lb.orig_h);
            out.push(RawDetection {
                anchor,
                score: c.score,
                class_id: c.class_id,
                input_box,
                box_before_adjust: scaled,
                bbox,
                mask: Arc::new(mask),
            });
        }
        Ok(out)
    }
}

/// Ultralytics `scale_boxes` with `ratio_pad=None` (recomputed from the shapes).
#[derive(Debug, Clone, Copy)]
pub struct ScaleBoxes {
    pad_x: f32,
    pad_y: f32,
    gain_x: f32,
    gain_y: f32,
    w: f32,
    h: f32,
}

impl ScaleBoxes {
    pub fn new(lb: &Letterbox) -> Self {
        let (ih, iw, oh, ow) = (lb.input_h as f64, lb.input_w as f64, lb.orig_h as f64, lb.orig_w as f64);
        let gain = (ih / oh).min(iw / ow);
        let new_h = round_half_even(oh * gain).max(1) as f64;
        let new_w = round_half_even(ow * gain).max(1) as f64;
        ScaleBoxes {
            gain_y: (new_h / oh) as f32,
            gain_x: (new_w / ow) as f32,
            pad_x: round_half_even((iw - new_w) / 2.0 - 0.1) as f32,
            pad_y: round_half_even((ih - new_h) / 2.0 - 0.1) as f32,
            w: ow as f32,
            h: oh as f32,
        }
    }
    pub fn apply(&self, b: &BBox) -> BBox {
        BBox::new(
            ((b.x1 - self.pad_x) / self.gain_x).clamp(0.0, self.w),
            ((b.y1 - self.pad_y) / self.gain_y).clamp(0.0, self.h),
            ((b.x2 - self.pad_x) / self.gain_x).clamp(0.0, self.w),
            ((b.y2 - self.pad_y) / self.gain_y).clamp(0.0, self.h),
        )
    }
}

/// FastSAM's `adjust_bboxes_to_image_border(threshold=20)` followed by the full-image-box
/// replacement (IoU with `[0,0,w,h]` > 0.9, Ultralytics `box_iou` with eps 1e-7).
pub fn fastsam_adjust(b: BBox, w: u32, h: u32) -> BBox {
    let (wf, hf) = (w as f32, h as f32);
    let t = 20.0f32;
    let mut r = b;
    if r.x1 < t {
        r.x1 = 0.0;
    }
    if r.y1 < t {
        r.y1 = 0.0;
    }
    if r.x2 > wf - t {
        r.x2 = wf;
    }
    if r.y2 > hf - t {
        r.y2 = hf;
    }
    let iw = (r.x2.min(wf) - r.x1.max(0.0)).max(0.0);
    let ih = (r.y2.min(hf) - r.y1.max(0.0)).max(0.0);
    let inter = iw * ih;
    let iou = inter / (wf * hf + (r.x2 - r.x1) * (r.y2 - r.y1) - inter + 1e-7);
    if iou > 0.9 { BBox::new(0.0, 0.0, wf, hf) } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_snap_and_full_box() {
        let b = fastsam_adjust(BBox::new(10.0, 30.0, 795.0, 500.0), 810, 1080);
        assert_eq!(b, BBox::new(0.0, 30.0, 810.0, 500.0));
        let b = fastsam_adjust(BBox::new(25.0, 25.0, 800.0, 1070.0), 810, 1080);
        assert_eq!(b, BBox::new(0.0, 0.0, 810.0, 1080.0));
    }

    #[test]
    fn scale_boxes_inverts_letterbox() {
        let lb = Letterbox::new(1280, 720, 640, 640, false, 32);
        let sb = ScaleBoxes::new(&lb);
        let b = sb.apply(&BBox::new(100.0, 140.0, 200.0, 500.0));
        assert_eq!(b, BBox::new(200.0, 0.0, 400.0, 720.0));
    }

    /// Synthetic output with two overlapping boxes and one separate: NMS keeps the best of the pair.
    #[test]
    fn nms_suppresses_overlaps_above_threshold() {
        let a = 3usize;
        let nm = 1usize;
        let mut out0 = vec![0f32; (5 + nm) * a];
        let put = |o: &mut Vec<f32>, i: usize, v: [f32; 6]| {
            for (r, x) in v.iter().enumerate() {
                o[r * a + i] = *x;
            }
        };
        put(&mut out0, 0, [20.0, 20.0, 20.0, 20.0, 0.8, 1.0]);
        put(&mut out0, 1, [21.0, 20.0, 20.0, 20.0, 0.9, 1.0]); // IoU with 0 ~ 0.9
        put(&mut out0, 2, [50.0, 50.0, 10.0, 10.0, 0.5, 1.0]);
        let protos = Protos { nm, mh: 16, mw: 16, data: Arc::new(vec![1.0; 256]) };
        let lb = Letterbox::new(64, 64, 64, 64, false, 32);
        let mut pp = Postprocessor::new();
        let cfg = PostConfig { conf: 0.4, iou: 0.5, max_det: 300, retina_masks: false };
        let d = pp.run(&out0, a, &protos, &lb, &cfg).unwrap();
        assert_eq!(d.iter().map(|d| d.anchor).collect::<Vec<_>>(), vec![1, 2]);
        let cfg = PostConfig { iou: 0.95, ..cfg };
        let d = pp.run(&out0, a, &protos, &lb, &cfg).unwrap();
        assert_eq!(d.iter().map(|d| d.anchor).collect::<Vec<_>>(), vec![1, 0, 2]);
        let cfg = PostConfig { max_det: 2, ..cfg };
        assert_eq!(pp.run(&out0, a, &protos, &lb, &cfg).unwrap().len(), 2);
        // negative logits everywhere: every mask is empty, every detection dropped
        let protos = Protos { nm, mh: 16, mw: 16, data: Arc::new(vec![-1.0; 256]) };
        assert!(pp.run(&out0, a, &protos, &lb, &cfg).unwrap().is_empty());
    }
}
