//! Batched FastSAM inference equals single runs.
//!
//! For the dynamic-batch exports `FastSAM-s-random-dynamic` and `FastSAM-n-synth-dynamic` (imgsz
//! 320): a batch of 4 different frames of one size (crops of the three real photos in
//! `../shared/assets/images`) gives the same raw outputs as 4 single runs (max abs difference
//! <= 1e-4) and the same detections (count, boxes within 1e-3 px, scores, mask IoU >= 0.999).
//! Frames of different sizes share one letterbox shape (the full square) and equal single runs
//! made with that same geometry. A fixed-batch-1 model runs a batch as sequential single runs.
//! Missing assets skip loudly (or fail with `FASTSAM_REQUIRE_ASSETS=1`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support::seg::*;
use fastsam_track::model::{Device, FastSam, Letterbox, ModelError, ModelOptions, RawDetection};
use fastsam_track::{ImageView, PixelFormat, Segmenter};

const RAW_TOL: f32 = 1e-4;

/// An owned RGB image.
struct Img {
    w: u32,
    h: u32,
    rgb: Vec<u8>,
}

impl Img {
    fn view(&self) -> ImageView<'_> {
        ImageView::packed(self.w, self.h, PixelFormat::Rgb8, &self.rgb).unwrap()
    }
    fn crop(&self, x0: u32, y0: u32, w: u32, h: u32) -> Img {
        assert!(x0 + w <= self.w && y0 + h <= self.h);
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in y0..y0 + h {
            let row = ((y * self.w + x0) * 3) as usize;
            rgb.extend_from_slice(&self.rgb[row..row + (w * 3) as usize]);
        }
        Img { w, h, rgb }
    }
}

fn photo(name: &str) -> Option<Img> {
    let p = crate::support::assets::require(&format!("assets/images/{name}"))?;
    let (w, h, bgr) = read_bgr(&p);
    Some(Img { w, h, rgb: bgr_to_rgb(bgr) })
}

/// messi5 (548x342), zidane (1280x720), bus (810x1080).
fn photos() -> Option<[Img; 3]> {
    Some([photo("opencv_messi5.jpg")?, photo("ultralytics_zidane.jpg")?, photo("ultralytics_bus.jpg")?])
}

/// Four different 480x320 frames.
fn same_size_frames(p: &[Img; 3]) -> Vec<Img> {
    vec![
        p[0].crop(40, 10, 480, 320),
        p[1].crop(400, 200, 480, 320),
        p[2].crop(100, 500, 480, 320),
        p[1].crop(0, 0, 480, 320),
    ]
}

fn model(name: &str) -> Option<PathBuf> {
    crate::support::assets::require(&format!("models/{name}"))
}

fn load(path: &Path, conf: f32) -> FastSam {
    let opts = ModelOptions { imgsz: Some(320), conf, device: Device::Cpu, ..ModelOptions::default() };
    FastSam::load(path, opts).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "tensor sizes");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Raw outputs (`output0`, prototypes) of single runs with the given geometries.
fn single_raw(m: &mut FastSam, frames: &[Img], lbs: &[Letterbox]) -> Vec<(Vec<f32>, Vec<f32>)> {
    frames
        .iter()
        .zip(lbs)
        .map(|(f, lb)| {
            m.infer_with(&f.view(), lb).unwrap();
            let r = m.raw_outputs();
            (r.out0.to_vec(), r.protos.data.to_vec())
        })
        .collect()
}

/// Compare the raw outputs of the last batch call with single runs; returns the max abs diff.
fn compare_raw(m: &FastSam, singles: &[(Vec<f32>, Vec<f32>)]) -> f32 {
    let batch = m.raw_outputs_batch();
    assert_eq!(batch.len(), singles.len(), "one raw output per image");
    let mut max = 0f32;
    for (i, (b, (o0, pr))) in batch.iter().zip(singles).enumerate() {
        let d0 = max_abs_diff(b.out0, o0);
        let d1 = max_abs_diff(&b.protos.data, pr);
        assert!(d0 <= RAW_TOL && d1 <= RAW_TOL, "image {i}: output0 diff {d0:e}, prototype diff {d1:e}");
        max = max.max(d0).max(d1);
    }
    max
}

/// Same detections: count, boxes within 1e-3 px, scores within 1e-5, mask IoU >= 0.999 (native and
/// original size). Returns (detections, max box diff, min mask IoU).
fn compare_dets(what: &str, batch: &[Vec<RawDetection>], single: &[Vec<RawDetection>]) -> (usize, f32, f64) {
    assert_eq!(batch.len(), single.len());
    let (mut n, mut mb, mut mi) = (0, 0f32, 1f64);
    for (i, (b, s)) in batch.iter().zip(single).enumerate() {
        assert_eq!(b.len(), s.len(), "{what} image {i}: number of detections");
        for (j, (d, e)) in b.iter().zip(s).enumerate() {
            let bd = max_box_diff(&d.bbox, &e.bbox);
            assert!(bd <= 1e-3, "{what} image {i} det {j}: box {:?} vs {:?}", d.bbox, e.bbox);
            assert!((d.score - e.score).abs() <= 1e-5, "{what} image {i} det {j}: score {} vs {}", d.score, e.score);
            for (x, y) in [(d.mask.native_mask(), e.mask.native_mask()), (d.mask.orig_mask(), e.mask.orig_mask())] {
                let iou = if x.area() == 0 && y.area() == 0 { 1.0 } else { x.iou(&y) };
                assert!(iou >= 0.999, "{what} image {i} det {j}: mask IoU {iou}");
                mi = mi.min(iou);
            }
            mb = mb.max(bd);
            n += 1;
        }
    }
    (n, mb, mi)
}

fn batch_equals_single_runs(model_file: &str, conf: f32) {
    let Some(path) = model(model_file) else { return };
    let Some(p) = photos() else { return };
    let frames = same_size_frames(&p);
    let views: Vec<ImageView<'_>> = frames.iter().map(Img::view).collect();
    let mut m = load(&path, conf);
    assert_eq!(m.signature().fixed_batch, None, "{model_file} has a dynamic batch axis");
    assert_eq!(m.max_batch(), ModelOptions::default().max_batch);

    // same-size frames: the batch uses exactly the single-run geometry
    let lbs = m.letterbox_batch(&views);
    for (v, lb) in views.iter().zip(&lbs) {
        assert_eq!(*lb, m.letterbox_for(v.width, v.height));
    }
    assert_eq!((lbs[0].input_w, lbs[0].input_h), (320, 224), "minimal padding as in a single run");

    let singles = single_raw(&mut m, &frames, &lbs);
    let runs = m.session_runs();
    let got = m.infer_batch(&views).unwrap();
    assert_eq!(m.session_runs(), runs + 1, "4 frames in ONE session.run");
    assert_eq!(got, lbs);
    assert_eq!(m.last_batch_len(), 4);
    let max_raw = compare_raw(&m, &singles);
    let t = m.last_timings();
    assert!(t.pre > std::time::Duration::ZERO && t.infer > std::time::Duration::ZERO, "{t:?}");

    let single_dets: Vec<Vec<RawDetection>> = views.iter().map(|v| m.segment_raw(v).unwrap().1).collect();
    let batch_dets: Vec<Vec<RawDetection>> = m.segment_raw_batch(&views).unwrap().into_iter().map(|(_, d)| d).collect();
    let (n, mb, mi) = compare_dets(model_file, &batch_dets, &single_dets);
    assert!(n > 0, "{model_file}: the comparison needs detections");
    // each image's masks hold that image's own prototypes
    let arcs: Vec<_> = batch_dets.iter().filter_map(|d| d.first()).map(|d| d.mask.protos().data.clone()).collect();
    for (i, a) in arcs.iter().enumerate() {
        for b in &arcs[i + 1..] {
            assert!(!Arc::ptr_eq(a, b), "images of a batch share a prototype buffer");
        }
    }
    // the Segmenter API gives the same detections
    let pub_batch = m.segment_batch(&views).unwrap();
    assert_eq!(pub_batch.len(), 4);
    for (pb, sd) in pub_batch.iter().zip(&single_dets) {
        assert_eq!(pb.len(), sd.len());
        for (d, e) in pb.iter().zip(sd) {
            assert!(max_box_diff(&d.bbox, &e.bbox) <= 1e-3);
        }
    }
    eprintln!(
        "{model_file}: batch of 4 vs single runs: max raw diff {max_raw:.2e}, {n} detections, max box diff {mb:.2e}, min mask IoU {mi:.5}, batch timings {t:?}"
    );
}

#[test]
fn batch_of_four_equals_single_runs_s_random_dynamic() {
    batch_equals_single_runs("FastSAM-s-random-dynamic.onnx", 0.4);
}

#[test]
fn batch_of_four_equals_single_runs_n_synth_dynamic() {
    // the synthetic-scene model finds few objects in real photos at conf 0.4: compare at 0.1
    batch_equals_single_runs("FastSAM-n-synth-dynamic.onnx", 0.1);
}

/// Frames of different sizes share one letterbox shape: the full imgsz square (Ultralytics' rule
/// when the shapes of a batch differ). The batch equals single runs made with that geometry.
#[test]
fn mixed_size_batch_uses_the_full_square_and_equals_single_runs_with_it() {
    let Some(path) = model("FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(p) = photos() else { return };
    let frames = vec![
        p[0].crop(0, 0, 548, 342),
        p[1].crop(0, 0, 1280, 720),
        p[2].crop(0, 0, 810, 1080),
        p[1].crop(100, 50, 301, 177),
    ];
    let views: Vec<ImageView<'_>> = frames.iter().map(Img::view).collect();
    let mut m = load(&path, 0.1);
    let lbs = m.letterbox_batch(&views);
    for (v, lb) in views.iter().zip(&lbs) {
        assert_eq!((lb.input_w, lb.input_h), (320, 320));
        // same scale as a single run; only the padding differs
        assert_eq!(lb.ratio, m.letterbox_for(v.width, v.height).ratio);
    }
    let singles = single_raw(&mut m, &frames, &lbs);
    m.infer_batch(&views).unwrap();
    let max_raw = compare_raw(&m, &singles);
    let single_dets: Vec<Vec<RawDetection>> =
        views.iter().zip(&lbs).map(|(v, lb)| m.segment_raw_with(v, lb).unwrap()).collect();
    let batch_dets: Vec<Vec<RawDetection>> = m.segment_raw_batch(&views).unwrap().into_iter().map(|(_, d)| d).collect();
    let (n, mb, mi) = compare_dets("mixed sizes", &batch_dets, &single_dets);
    assert!(n > 0, "the comparison needs detections");
    eprintln!(
        "mixed-size batch: max raw diff {max_raw:.2e}, {n} detections, max box diff {mb:.2e}, min mask IoU {mi:.5}"
    );
}

/// More frames than `max_batch` run in several calls; results stay in order and equal.
#[test]
fn batches_larger_than_max_batch_are_split() {
    let Some(path) = model("FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(p) = photos() else { return };
    let frames = same_size_frames(&p);
    let views: Vec<ImageView<'_>> = frames.iter().map(Img::view).collect();
    let opts =
        ModelOptions { imgsz: Some(320), conf: 0.1, max_batch: 3, device: Device::Cpu, ..ModelOptions::default() };
    let mut m = FastSam::load(&path, opts).unwrap();
    assert_eq!(m.max_batch(), 3);
    let lbs = m.letterbox_batch(&views);
    let singles = single_raw(&mut m, &frames, &lbs);
    let runs = m.session_runs();
    m.infer_batch(&views).unwrap();
    assert_eq!(m.session_runs(), runs + 2, "4 frames with max_batch 3: two runs");
    compare_raw(&m, &singles);
    // steady batches reuse their prototype buffers once the masks are dropped
    drop(m.segment_batch(&views).unwrap());
    let settled = m.proto_allocations();
    for _ in 0..3 {
        drop(m.segment_batch(&views).unwrap());
    }
    assert_eq!(m.proto_allocations(), settled, "steady batches must not allocate prototype buffers");
    assert!(m.segment_batch(&[]).unwrap().is_empty());
}

/// A model with a fixed batch of 1 runs a batch as sequential single runs.
#[test]
fn fixed_batch_model_runs_batches_sequentially() {
    let Some(path) = model("FastSAM-s-random-640.onnx") else { return };
    let Some(p) = photos() else { return };
    let frames = [p[0].crop(0, 0, 400, 300), p[1].crop(500, 300, 400, 300)];
    let views: Vec<ImageView<'_>> = frames.iter().map(Img::view).collect();
    let opts = ModelOptions { device: Device::Cpu, ..ModelOptions::default() };
    let mut m = FastSam::load(&path, opts).unwrap();
    assert_eq!(m.signature().fixed_batch, Some(1));
    assert_eq!(m.max_batch(), 1);
    let lbs = m.letterbox_batch(&views);
    let singles = single_raw(&mut m, &frames, &lbs);
    let runs = m.session_runs();
    m.infer_batch(&views).unwrap();
    assert_eq!(m.session_runs(), runs + 2, "one run per frame");
    assert_eq!(compare_raw(&m, &singles), 0.0, "sequential runs are the single runs");
    let single_dets: Vec<Vec<RawDetection>> = views.iter().map(|v| m.segment_raw(v).unwrap().1).collect();
    let batch_dets: Vec<Vec<RawDetection>> = m.segment_raw_batch(&views).unwrap().into_iter().map(|(_, d)| d).collect();
    compare_dets("fixed batch", &batch_dets, &single_dets);
}

/// Geometries of different input sizes cannot share one batch tensor.
#[test]
fn batch_geometries_must_share_one_input_size() {
    let Some(path) = model("FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(p) = photos() else { return };
    let frames = [p[0].crop(0, 0, 320, 200), p[1].crop(0, 0, 200, 320)];
    let views: Vec<ImageView<'_>> = frames.iter().map(Img::view).collect();
    let mut m = load(&path, 0.4);
    let lbs: Vec<Letterbox> = views.iter().map(|v| m.letterbox_for(v.width, v.height)).collect();
    assert_ne!((lbs[0].input_w, lbs[0].input_h), (lbs[1].input_w, lbs[1].input_h));
    assert!(matches!(m.infer_batch_with(&views, &lbs), Err(ModelError::InvalidOption(_))));
    assert!(matches!(m.infer_batch_with(&views, &lbs[..1]), Err(ModelError::InvalidOption(_))));
}
