//! Pre- and postprocessing speed on the golden images and raw tensors, next to the raw ONNX
//! Runtime inference time of the same model on the same machine.
//!
//! * `pre/<img>/<size>`: letterbox + float tensor (static 640 square; dynamic 1024 minimal padding).
//! * `resize/<img>/<size>/{rust,opencv}`: the letterbox resize alone, the pure-Rust bit-exact
//!   `INTER_LINEAR` ([`LinearResizer`]) against OpenCV's `resize` on the same pixels.
//! * `post/<img>/<size>/retina_<b>/lazy`: NMS, boxes, per-box logits, empty-mask filter (masks not
//!   rendered), as the pipeline's segmentation stage does.
//! * `.../render`: the same plus rendering every mask at the original size (what drawing needs).
//! * `post100/zidane/640`: 100 detections at 720p (conf lowered until NMS keeps 100).
//! * `post200/<img>/640`: busy scenes, `--conf 0.0001 --max-det 200` (all 8400 anchors are NMS
//!   candidates; IoU 0.9 keeps up to 200).
//! * `infer/<size>`: `session.run` alone on the letterboxed input.
//!
//! 640 tensors come from the golden files; 1024 tensors are produced once in the setup by running
//! the dynamic export of the same weights. Skips (with a message) when the assets are missing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
#[path = "../tests/support/npy.rs"]
#[allow(dead_code)]
mod npy;
use fastsam_track::model::{
    Device, FastSam, Letterbox, LinearResizer, ModelOptions, PostConfig, Postprocessor, Preprocessor, Protos,
};
use fastsam_track::{ImageView, PixelFormat};
use npy::read_f32;
use opencv::core::{MatTraitConst, MatTraitConstManual};

#[path = "../tests/support/assets.rs"]
mod assets;

struct Tensors {
    out0: Vec<f32>,
    anchors: usize,
    protos: Vec<f32>,
    dims: (usize, usize, usize),
    lb: Letterbox,
}

fn read_bgr(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let m = opencv::imgcodecs::imread(path.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    (m.cols() as u32, m.rows() as u32, m.data_bytes().unwrap().to_vec())
}

fn golden_tensors(case: &str, w: u32, h: u32) -> Option<Tensors> {
    let dir = assets::require(&format!("golden/seg/{case}/output0.npy"))?.parent()?.to_path_buf();
    let o0 = read_f32(&dir.join("output0.npy")).ok()?;
    let o1 = read_f32(&dir.join("output1.npy")).ok()?;
    Some(Tensors {
        anchors: o0.shape[2],
        out0: o0.data,
        dims: (o1.shape[1], o1.shape[2], o1.shape[3]),
        protos: o1.data,
        lb: Letterbox::new(w, h, 640, 640, false, 32),
    })
}

fn post_cfg(retina: bool) -> PostConfig {
    PostConfig { conf: 0.4, iou: 0.9, max_det: 300, retina_masks: retina }
}

fn bench_post(c: &mut Criterion, name: &str, t: &Tensors, cfg: PostConfig, render: bool) {
    let (nm, mh, mw) = t.dims;
    let protos = Protos { nm, mh, mw, data: std::sync::Arc::new(t.protos.clone()) };
    let mut pp = Postprocessor::new();
    let n = pp.run(&t.out0, t.anchors, &protos, &t.lb, &cfg).unwrap().len();
    c.bench_function(&format!("{name} ({n} dets)"), |b| {
        b.iter(|| {
            let dets = pp.run(&t.out0, t.anchors, &protos, &t.lb, &cfg).unwrap();
            if render {
                for d in &dets {
                    let det = d.to_detection();
                    black_box(det.mask.as_ref().map(|m| m.area()));
                }
            }
            black_box(dets.len())
        })
    });
}

fn benches(c: &mut Criterion) {
    let cases = [("bus", "bus_640"), ("zidane", "zidane_640")];
    let mut images = Vec::new();
    for (short, case) in cases {
        let Some(p) = assets::require(&format!("golden/seg/{case}/orig.png")) else { return };
        images.push((short, case, read_bgr(&p)));
    }
    // preprocessing
    for (short, _, (w, h, bgr)) in &images {
        let img = ImageView::packed(*w, *h, PixelFormat::Bgr8, bgr).unwrap();
        let mut pre = Preprocessor::new();
        for (size, auto) in [(640u32, false), (1024, true)] {
            let lb = Letterbox::new(*w, *h, size, size, auto, 32);
            c.bench_function(&format!("pre/{short} {w}x{h}/{size} -> {}x{}", lb.input_w, lb.input_h), |b| {
                b.iter(|| pre.run(black_box(&img), &lb).unwrap())
            });
        }
    }
    // the resize alone: pure Rust vs OpenCV (bit-exact, see model::resize)
    for (short, _, (w, h, bgr)) in &images {
        let img = ImageView::packed(*w, *h, PixelFormat::Bgr8, bgr).unwrap();
        for size in [320u32, 640] {
            let lb = Letterbox::new(*w, *h, size, size, true, 32);
            let name = format!("resize/{short} {w}x{h}/{}x{}", lb.new_w, lb.new_h);
            let mut rs = LinearResizer::new();
            let mut out = Vec::new();
            c.bench_function(&format!("{name}/rust"), |b| {
                b.iter(|| rs.resize(black_box(&img), lb.new_w, lb.new_h, &mut out).unwrap())
            });
            let src = opencv::core::Mat::from_slice(bgr).unwrap().reshape(3, *h as i32).unwrap().try_clone().unwrap();
            let mut dst = opencv::core::Mat::default();
            let size = opencv::core::Size::new(lb.new_w as i32, lb.new_h as i32);
            let threads = opencv::core::get_num_threads().unwrap_or(1);
            for n in [threads, 1] {
                opencv::core::set_num_threads(n).unwrap();
                c.bench_function(&format!("{name}/opencv {n} threads"), |b| {
                    b.iter(|| {
                        opencv::imgproc::resize(
                            black_box(&src),
                            &mut dst,
                            size,
                            0.0,
                            0.0,
                            opencv::imgproc::INTER_LINEAR,
                        )
                        .unwrap()
                    })
                });
            }
            opencv::core::set_num_threads(threads).unwrap();
            // once more outside the benches, which a name filter may have skipped
            rs.resize(&img, lb.new_w, lb.new_h, &mut out).unwrap();
            opencv::imgproc::resize(&src, &mut dst, size, 0.0, 0.0, opencv::imgproc::INTER_LINEAR).unwrap();
            assert_eq!(dst.data_bytes().unwrap(), &out[..], "{name}: the two resizes differ");
        }
    }
    // postprocessing at 640 on the golden tensors
    let mut sets: Vec<(String, Tensors)> = Vec::new();
    for (short, case, (w, h, _)) in &images {
        if let Some(t) = golden_tensors(case, *w, *h) {
            sets.push((format!("{short} {w}x{h}/640"), t));
        }
    }
    // 1024 tensors from the dynamic model, and raw inference times
    let dyn_model = assets::require("models/FastSAM-s-random-dynamic.onnx");
    let static_model = assets::require("models/FastSAM-s-random-640.onnx");
    let mut infer_jobs = Vec::new();
    if let Some(m) = &dyn_model {
        let opts = ModelOptions { imgsz: Some(1024), device: Device::Cpu, ..ModelOptions::default() };
        if let Ok(mut model) = FastSam::load(m, opts) {
            for (short, _, (w, h, bgr)) in &images {
                let img = ImageView::packed(*w, *h, PixelFormat::Bgr8, bgr).unwrap();
                let lb = model.infer(&img).unwrap();
                let r = model.raw_outputs();
                sets.push((
                    format!("{short} {w}x{h}/1024 ({}x{})", lb.input_w, lb.input_h),
                    Tensors {
                        out0: r.out0.to_vec(),
                        anchors: r.anchors,
                        protos: r.protos.data.to_vec(),
                        dims: (r.protos.nm, r.protos.mh, r.protos.mw),
                        lb,
                    },
                ));
            }
            infer_jobs.push(("dynamic imgsz 1024", model));
        }
    }
    for (name, t) in &sets {
        for retina in [false, true] {
            bench_post(c, &format!("post/{name}/retina_{retina}/lazy"), t, post_cfg(retina), false);
            bench_post(c, &format!("post/{name}/retina_{retina}/render"), t, post_cfg(retina), true);
        }
    }
    // 100 detections at 720p: lower conf until NMS keeps exactly 100 (max_det 100)
    if let Some((_, t)) = sets.iter().find(|(n, _)| n.starts_with("zidane") && n.ends_with("/640")) {
        for retina in [false, true] {
            let cfg = PostConfig { conf: 0.01, iou: 0.9, max_det: 100, retina_masks: retina };
            bench_post(c, &format!("post100/zidane 1280x720/640/retina_{retina}/lazy"), t, cfg, false);
            bench_post(c, &format!("post100/zidane 1280x720/640/retina_{retina}/render"), t, cfg, true);
        }
    }
    // busy scenes (issue 9): every anchor passes conf 0.0001, NMS at IoU 0.9 keeps up to 200
    for (name, t) in sets.iter().filter(|(n, _)| n.ends_with("/640")) {
        let cfg = PostConfig { conf: 0.0001, iou: 0.9, max_det: 200, retina_masks: false };
        bench_post(c, &format!("post200/{name}/retina_false/lazy"), t, cfg, false);
    }
    // raw inference
    if let Some(m) = &static_model
        && let Ok(model) = FastSam::load(m, ModelOptions { device: Device::Cpu, ..ModelOptions::default() })
    {
        infer_jobs.insert(0, ("static 640", model));
    }
    let mut g = c.benchmark_group("infer");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(2));
    for (name, mut model) in infer_jobs {
        for (short, _, (w, h, bgr)) in &images {
            let img = ImageView::packed(*w, *h, PixelFormat::Bgr8, bgr).unwrap();
            let lb = model.letterbox_for(*w, *h);
            // pre + run; the pre part is benchmarked above and is a few ms
            g.bench_function(format!("{name}/{short} {w}x{h} ({}x{})", lb.input_w, lb.input_h), |b| {
                b.iter(|| model.infer_with(&img, &lb).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = prepost;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(prepost);
