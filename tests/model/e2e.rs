//! End to end: `orig.png` -> letterbox -> ONNX Runtime -> postprocessing, compared with the
//! Ultralytics 8.4.190 goldens (same tolerances as the tensor parity test), for the static 640
//! export named in each case.json, and for the dynamic export of the same weights.

use crate::support::seg::*;
use fastsam_track::model::{Device, FastSam, Letterbox, ModelOptions};
use fastsam_track::{ImageView, PixelFormat, Segmenter};

fn opts(retina: bool) -> ModelOptions {
    ModelOptions { retina_masks: retina, device: Device::Cpu, ..ModelOptions::default() }
}

#[test]
fn static_model_matches_goldens() {
    for name in ["bus_640", "zidane_640"] {
        let Some(case) = Case::load(name) else { return };
        let Some(model) = case.model_path() else { return };
        let (w, h, bgr) = read_bgr(&case.path("orig.png"));
        let img = ImageView::packed(w, h, PixelFormat::Bgr8, &bgr).unwrap();
        for retina in [false, true] {
            let mut m = FastSam::load(&model, opts(retina)).unwrap();
            assert_eq!(m.signature().fixed_hw, Some((640, 640)));
            let (lb, dets) = m.segment_raw(&img).unwrap();
            assert_eq!((lb.input_w, lb.input_h), (640, 640));
            let (mb, ms, mi, mo) = compare(&case, retina, &dets, true);
            eprintln!(
                "e2e {name} retina={retina}: {} dets, max box diff {mb:.2e}, max score diff {ms:.1e}, min mask IoU {mi:.5}, min orig IoU {mo:.5}, timings {:?}",
                dets.len(),
                m.last_timings()
            );
            // the public Segmenter API returns the same detections with original-size masks
            let pub_dets = m.segment(img).unwrap();
            assert_eq!(pub_dets.len(), dets.len());
            for (p, d) in pub_dets.iter().zip(&dets) {
                assert_eq!(p.bbox, d.bbox);
                assert_eq!(p.mask.as_ref().unwrap().roi(), &d.mask.orig_mask());
            }
        }
    }
}

#[test]
fn dynamic_model_letterboxes_minimal_and_matches_static_on_square_input() {
    let Some(case) = Case::load("zidane_640") else { return };
    let Some(model) = crate::support::assets::require("models/FastSAM-s-random-dynamic.onnx") else { return };
    let (w, h, bgr) = read_bgr(&case.path("orig.png"));
    let img = ImageView::packed(w, h, PixelFormat::Bgr8, &bgr).unwrap();
    let mut m = FastSam::load(&model, opts(false)).unwrap();
    assert_eq!(m.signature().fixed_hw, None);
    // Ultralytics uses minimum-rectangle padding for dynamic models: 1280x720 -> 640x384
    let (lb, _) = m.segment_raw(&img).unwrap();
    assert_eq!((lb.input_w, lb.input_h, lb.pad_top, lb.pad_bottom), (640, 384, 12, 12));
    let raw = m.raw_outputs();
    assert_eq!(raw.anchors, 80 * 48 + 40 * 24 + 20 * 12);
    assert_eq!((raw.protos.mh, raw.protos.mw), (96, 160));
    // same weights as the static export: with the static model's square padding it must
    // reproduce the static goldens
    let square = Letterbox::new(w, h, 640, 640, false, 32);
    let dets = m.segment_raw_with(&img, &square).unwrap();
    let (mb, ms, mi, _) = compare(&case, false, &dets, true);
    eprintln!("dynamic zidane (square letterbox): max box diff {mb:.2e}, score diff {ms:.1e}, min mask IoU {mi:.5}");
    // --imgsz on a dynamic model: rounded up to the stride, letterboxed minimally
    let mut m = FastSam::load(&model, ModelOptions { imgsz: Some(1000), ..opts(true) }).unwrap();
    assert_eq!(m.target().0, (1024, 1024));
    let (lb, dets) = m.segment_raw(&img).unwrap();
    assert_eq!((lb.input_w, lb.input_h), (1024, 576));
    assert!(dets.iter().all(|d| d.bbox.x2 <= w as f32 && d.bbox.y2 <= h as f32));

    // without --imgsz, a dynamic model uses its `imgsz` metadata (FastSAM-n-synth: [320, 320])
    if let Some(n) = crate::support::assets::require("models/FastSAM-n-synth-dynamic.onnx") {
        let mut m = FastSam::load(&n, opts(true)).unwrap();
        assert_eq!(m.target(), ((320, 320), true));
        let (lb, _) = m.segment_raw(&img).unwrap();
        assert_eq!((lb.input_w, lb.input_h), (320, 192));
    }
}

/// Prototype buffers are pooled: while detections of earlier frames are alive (frames in flight
/// in the pipeline) new buffers are allocated, and once they are dropped the buffers are reused,
/// so a steady stream allocates none. Masks of a kept frame stay correct after later frames.
#[test]
fn prototype_buffers_are_reused_once_masks_are_released() {
    let Some(model) = crate::support::assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(png) = crate::support::assets::require("golden/seg/zidane_640/orig.png") else { return };
    let (w, h, bgr) = read_bgr(&png);
    let rgb = bgr_to_rgb(bgr);
    let view = ImageView::packed(w, h, PixelFormat::Rgb8, &rgb).unwrap();
    let mut m = FastSam::load(&model, ModelOptions { imgsz: Some(320), ..opts(true) }).unwrap();
    let first = m.segment(view).unwrap();
    let first_rle: Vec<_> = first.iter().map(|d| d.mask.as_ref().unwrap().to_rle()).collect();
    // Keep 3 frames' detections alive: each needs its own buffer.
    let kept: Vec<_> = (0..3).map(|_| m.segment(view).unwrap()).collect();
    // 4 frames alive: the first one used the model's initial (empty) buffer, the next 3 allocate.
    let after_kept = m.proto_allocations();
    assert_eq!(after_kept, 3, "one buffer per frame whose masks are alive");
    drop(kept);
    for _ in 0..5 {
        let d = m.segment(view).unwrap();
        for det in &d {
            det.mask.as_ref().unwrap().roi();
        }
    }
    assert_eq!(m.proto_allocations(), after_kept, "freed buffers must be reused");
    // A pipeline keeps the last frames in flight while the next one is segmented: with a window
    // of 2 frames alive, the pool settles and allocates nothing more.
    let mut window = std::collections::VecDeque::new();
    for _ in 0..3 {
        window.push_back(m.segment(view).unwrap());
    }
    let settled = m.proto_allocations();
    for _ in 0..8 {
        window.pop_front();
        window.push_back(m.segment(view).unwrap());
    }
    assert_eq!(m.proto_allocations(), settled, "a sliding window of live frames must not allocate per frame");
    // The first frame's lazily rendered masks are unaffected by the reuse of other buffers.
    let again: Vec<_> = first.iter().map(|d| d.mask.as_ref().unwrap().to_rle()).collect();
    assert_eq!(again, first_rle);
}
