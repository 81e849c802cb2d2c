//! Shared helpers for the segmentation parity tests: golden case loading, image decoding (OpenCV),
//! gzip-JSON RLE masks and detection comparison against `../shared/golden/seg`.

use std::io::Read;
use std::path::{Path, PathBuf};

use fastsam_track::model::RawDetection;
use fastsam_track::{BBox, Rle, RoiBitmap};
use opencv::core::{Mat, MatTraitConst, MatTraitConstManual};
use serde_json::Value;

pub struct Case {
    pub dir: PathBuf,
    pub json: Value,
}

impl Case {
    /// `None` (skip) when the golden assets are missing.
    pub fn load(name: &str) -> Option<Case> {
        let p = super::assets::require(&format!("golden/seg/{name}/case.json"))?;
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        Some(Case { dir: p.parent().unwrap().to_path_buf(), json })
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }
    pub fn orig_wh(&self) -> (u32, u32) {
        let s = &self.json["orig_shape"];
        (s[1].as_u64().unwrap() as u32, s[0].as_u64().unwrap() as u32)
    }
    pub fn mode(&self, retina: bool) -> &Value {
        &self.json["everything"][if retina { "retina_true" } else { "retina_false" }]
    }
    pub fn model_path(&self) -> Option<PathBuf> {
        super::assets::require(self.json["model"]["file"].as_str().unwrap())
    }
}

/// Decode an image file with OpenCV as BGR (what `cv2.imread` returns).
pub fn read_bgr(path: &Path) -> (u32, u32, Vec<u8>) {
    let m: Mat = opencv::imgcodecs::imread(path.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!m.empty(), "cannot decode {}", path.display());
    let (w, h) = (m.cols() as u32, m.rows() as u32);
    let m = if m.is_continuous() { m } else { m.try_clone().unwrap() };
    (w, h, m.data_bytes().unwrap().to_vec())
}

pub fn bgr_to_rgb(mut v: Vec<u8>) -> Vec<u8> {
    for px in v.chunks_exact_mut(3) {
        px.swap(0, 2);
    }
    v
}

pub fn read_rles(path: &Path) -> Vec<Rle> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut s).unwrap();
    serde_json::from_str(&s).unwrap()
}

pub fn bbox(v: &Value) -> BBox {
    let f = |i: usize| v[i].as_f64().unwrap() as f32;
    BBox::new(f(0), f(1), f(2), f(3))
}

pub fn max_box_diff(a: &BBox, b: &BBox) -> f32 {
    a.to_array().iter().zip(b.to_array()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn roi_iou(a: &RoiBitmap, b: &Rle) -> f64 {
    a.to_rle().iou(b).unwrap()
}

/// Compare detections with the golden list of one retina mode; panics with details on mismatch.
/// Returns (max box diff, max score diff, min mask IoU, min orig-mask IoU).
pub fn compare(case: &Case, retina: bool, dets: &[RawDetection], check_nms_anchors: bool) -> (f32, f32, f64, f64) {
    let mode = case.mode(retina);
    let gold = mode["detections"].as_array().unwrap();
    let name = format!("{} retina={retina}", case.json["case"]);
    assert_eq!(dets.len(), gold.len(), "{name}: number of detections");
    let masks = read_rles(&case.path(mode["mask_files"]["mask"].as_str().unwrap()));
    let origs = mode["mask_files"].get("mask_orig").map(|f| read_rles(&case.path(f.as_str().unwrap())));
    let (mut mb, mut ms, mut mi, mut mo) = (0f32, 0f32, 1f64, 1f64);
    for (i, (d, g)) in dets.iter().zip(gold).enumerate() {
        if check_nms_anchors {
            assert_eq!(d.anchor as u64, g["anchor_index"].as_u64().unwrap(), "{name}: det {i} anchor");
        }
        let sd = (d.score - g["score"].as_f64().unwrap() as f32).abs();
        assert!(sd <= 1e-4, "{name}: det {i} score {} vs {}", d.score, g["score"]);
        let bd = max_box_diff(&d.bbox, &bbox(&g["box_xyxy"]));
        assert!(bd <= 0.5, "{name}: det {i} box {:?} vs {}", d.bbox, g["box_xyxy"]);
        let bd2 = max_box_diff(&d.box_before_adjust, &bbox(&g["box_xyxy_before_fastsam_adjust"]));
        assert!(bd2 <= 0.5, "{name}: det {i} box before adjust {:?}", d.box_before_adjust);
        let iou = roi_iou(&d.mask.native_mask(), &masks[i]);
        assert!(iou >= 0.99, "{name}: det {i} mask IoU {iou}");
        if let Some(o) = &origs {
            let io = roi_iou(&d.mask.orig_mask(), &o[i]);
            assert!(io >= 0.99, "{name}: det {i} original-size mask IoU {io}");
            mo = mo.min(io);
        }
        mb = mb.max(bd.max(bd2));
        ms = ms.max(sd);
        mi = mi.min(iou);
    }
    (mb, ms, mi, mo)
}
