//! Equivalence of the Rust `.pt` -> ONNX converter with Ultralytics' own ONNX exports of the same
//! weights (`../shared/models`): tensor-by-tensor on the BatchNorm-folded initializers, and on the raw
//! outputs `output0` / `output1` for the golden input images (max abs diff <= 1e-3), for the static
//! 640 export, the dynamic export (square and non-square inputs) and the trained FastSAM-n-synth.

use crate::support::assets;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fastsam_track::convert::onnx_proto::ModelProto;
use fastsam_track::convert::{ConvertOptions, convert_checkpoint};
use ndarray::Array4;
use opencv::prelude::*;

const TOL: f32 = 1e-3;

fn convert(pt: &Path, imgsz: Option<(u32, u32)>, dir: &Path) -> PathBuf {
    let name = match imgsz {
        Some((h, w)) => format!("{}-{h}x{w}.onnx", pt.file_stem().unwrap().to_string_lossy()),
        None => format!("{}-dyn.onnx", pt.file_stem().unwrap().to_string_lossy()),
    };
    let out = dir.join(name);
    convert_checkpoint(pt, &out, &ConvertOptions { imgsz }).expect("conversion failed");
    out
}

/// `input.png` as RGB/255 CHW, cropped to rows `y0..y0+h`, cols `x0..x0+w`.
fn load_input(png: &Path, y0: usize, h: usize, x0: usize, w: usize) -> Array4<f32> {
    let bgr = opencv::imgcodecs::imread(png.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    let (rows, cols) = (bgr.rows() as usize, bgr.cols() as usize);
    assert!(y0 + h <= rows && x0 + w <= cols);
    let data = bgr.data_bytes().unwrap();
    let mut a = Array4::<f32>::zeros((1, 3, h, w));
    for y in 0..h {
        for x in 0..w {
            let p = ((y0 + y) * cols + (x0 + x)) * 3;
            for c in 0..3 {
                // BGR -> RGB
                a[[0, c, y, x]] = data[p + 2 - c] as f32 / 255.0;
            }
        }
    }
    a
}

/// The library's ONNX Runtime environment (one per process: the quantization tests in this binary
/// load models through the library too).
fn env() -> &'static ort::environment::Environment {
    static ENV: std::sync::OnceLock<ort::environment::Environment> = std::sync::OnceLock::new();
    ENV.get_or_init(|| fastsam_track::runtime::environment(None).expect("ONNX Runtime environment"))
}

struct Outputs {
    o0: (Vec<usize>, Vec<f32>),
    o1: (Vec<usize>, Vec<f32>),
}

fn run(model: &Path, input: &Array4<f32>) -> Outputs {
    let mut s = ort::session::Session::builder(env())
        .unwrap()
        .with_intra_threads(2)
        .unwrap()
        .commit_from_file(model)
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let t = ort::value::TensorRef::from_array_view(input.view()).unwrap();
    let out = s.run(ort::inputs!["images" => t]).unwrap();
    let get = |n: &str| {
        let a = out[n].try_extract_array::<f32>().unwrap();
        (a.shape().to_vec(), a.iter().copied().collect::<Vec<f32>>())
    };
    Outputs { o0: get("output0"), o1: get("output1") }
}

fn max_diff(a: &(Vec<usize>, Vec<f32>), b: &(Vec<usize>, Vec<f32>)) -> f32 {
    assert_eq!(a.0, b.0, "output shapes differ");
    a.1.iter().zip(&b.1).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Anchors scoring above `conf` (row 4 of output0), skipping those within `margin` of the threshold.
fn candidates(o0: &(Vec<usize>, Vec<f32>), conf: f32, margin: f32) -> Vec<usize> {
    let a = o0.0[2];
    (0..a).filter(|&i| o0.1[4 * a + i] > conf + margin).collect()
}

fn compare(ours: &Path, theirs: &Path, input: &Array4<f32>, label: &str) {
    let a = run(ours, input);
    let b = run(theirs, input);
    let d0 = max_diff(&a.o0, &b.o0);
    let d1 = max_diff(&a.o1, &b.o1);
    eprintln!("{label}: output0 {:?} max|diff| {d0:.3e}; output1 {:?} max|diff| {d1:.3e}", a.o0.0, a.o1.0);
    assert!(d0 <= TOL, "{label}: output0 differs by {d0}");
    assert!(d1 <= TOL, "{label}: output1 differs by {d1}");
    // Same detection candidates at the default confidence (anchors within 2e-3 of 0.4 are ambiguous).
    let ca = candidates(&a.o0, 0.4, 2e-3);
    let cb = candidates(&b.o0, 0.4, 2e-3);
    assert_eq!(ca, cb, "{label}: different anchors pass conf=0.4");
}

fn init_map(p: &Path) -> HashMap<String, (Vec<i64>, Vec<f32>)> {
    let m = ModelProto::decode_bytes(&std::fs::read(p).unwrap()).unwrap();
    m.graph
        .unwrap()
        .initializer
        .into_iter()
        .filter(|t| t.name.starts_with("model."))
        .map(|t| {
            let v = t.to_f32().unwrap();
            (t.name, (t.dims, v))
        })
        .collect()
}

#[test]
fn initializers_match_ultralytics_export_tensor_by_tensor() {
    let (Some(pt), Some(theirs)) =
        (assets::require("models/FastSAM-s-random.pt"), assets::require("models/FastSAM-s-random-dynamic.onnx"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ours = convert(&pt, None, dir.path());
    let a = init_map(&ours);
    let b = init_map(&theirs);
    // Ultralytics' export (onnxslim) dedups identical tensors, so it may hold fewer names than we do.
    assert!(b.len() >= 150, "reference has {} state-dict initializers", b.len());
    let mut worst = 0f32;
    for (name, (dims, v)) in &b {
        let (od, ov) = a.get(name).unwrap_or_else(|| panic!("initializer {name} missing from our graph"));
        assert_eq!(od, dims, "{name}: shape");
        let scale = v.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
        let d = ov.iter().zip(v).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale;
        worst = worst.max(d);
        assert!(d < 1e-5, "{name}: relative difference {d}");
    }
    eprintln!("{} of our {} state-dict initializers compared; worst relative diff {worst:.2e}", b.len(), a.len());
}

#[test]
fn fastsam_s_static_640_matches_ultralytics_export() {
    let Some(pt) = assets::require("models/FastSAM-s-random.pt") else { return };
    let Some(theirs) = assets::require("models/FastSAM-s-random-640.onnx") else { return };
    let dir = tempfile::tempdir().unwrap();
    let ours = convert(&pt, Some((640, 640)), dir.path());
    for case in ["bus_640", "zidane_640"] {
        let Some(png) = assets::require(&format!("golden/seg/{case}/input.png")) else { return };
        compare(&ours, &theirs, &load_input(&png, 0, 640, 0, 640), &format!("FastSAM-s static {case}"));
    }
}

#[test]
fn fastsam_s_dynamic_matches_ultralytics_export() {
    let Some(pt) = assets::require("models/FastSAM-s-random.pt") else { return };
    let Some(theirs) = assets::require("models/FastSAM-s-random-dynamic.onnx") else { return };
    let dir = tempfile::tempdir().unwrap();
    let ours = convert(&pt, None, dir.path());
    let Some(png) = assets::require("golden/seg/bus_640/input.png") else { return };
    compare(&ours, &theirs, &load_input(&png, 0, 640, 0, 640), "FastSAM-s dynamic bus 640x640");
    compare(&ours, &theirs, &load_input(&png, 96, 384, 0, 640), "FastSAM-s dynamic bus 384x640");
    // A static non-square conversion (constant anchors) against the same reference.
    let fixed = convert(&pt, Some((384, 640)), dir.path());
    compare(&fixed, &theirs, &load_input(&png, 96, 384, 0, 640), "FastSAM-s static-384x640 bus");
    let Some(png) = assets::require("golden/seg/zidane_640/input.png") else { return };
    compare(&ours, &theirs, &load_input(&png, 0, 640, 64, 512), "FastSAM-s dynamic zidane 640x512");
}

#[test]
fn fastsam_n_synth_matches_ultralytics_export() {
    let Some(pt) = assets::require("models/FastSAM-n-synth.pt") else { return };
    let Some(theirs) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let dir = tempfile::tempdir().unwrap();
    let dynamic = convert(&pt, None, dir.path());
    let fixed = convert(&pt, Some((320, 320)), dir.path());
    let mut batch = Vec::new();
    for case in ["bus_640", "zidane_640"] {
        let Some(png) = assets::require(&format!("golden/seg/{case}/input.png")) else { return };
        let input = load_input(&png, 160, 320, 160, 320);
        batch.push(input.clone());
        compare(&dynamic, &theirs, &input, &format!("FastSAM-n-synth dynamic {case} 320x320"));
        compare(&fixed, &theirs, &input, &format!("FastSAM-n-synth static-320 {case}"));
    }
    // Dynamic batch: both images at once.
    let views: Vec<_> = batch.iter().map(|a| a.view()).collect();
    let both = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
    compare(&dynamic, &theirs, &both, "FastSAM-n-synth dynamic batch of 2");
}

#[test]
fn static_model_matches_golden_raw_outputs() {
    // Third, independent reference: the raw outputs stored with the goldens (onnxruntime 1.32.0 on Ultralytics' export).
    let Some(pt) = assets::require("models/FastSAM-s-random.pt") else { return };
    let Some(dir_case) = assets::require("golden/seg/bus_640") else { return };
    let dir = tempfile::tempdir().unwrap();
    let ours = convert(&pt, Some((640, 640)), dir.path());
    let out = run(&ours, &load_input(&dir_case.join("input.png"), 0, 640, 0, 640));
    for (name, got) in [("output0", &out.o0), ("output1", &out.o1)] {
        let want = read_npy_f32(&dir_case.join(format!("{name}.npy")));
        let d = max_diff(got, &want);
        eprintln!("golden {name}: max|diff| {d:.3e}");
        assert!(d <= TOL, "{name} differs from the golden by {d}");
    }
}

/// Minimal reader for little-endian float32 C-order `.npy` files.
fn read_npy_f32(p: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    assert!(header.contains("'<f4'") && header.contains("'fortran_order': False"), "{header}");
    let shape_s = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_s.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let data = b[10 + hl..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (shape, data)
}

/// Greedy NMS as Ultralytics/torchvision do it (score-descending, suppress IoU > `iou`), in f32.
fn nms(o0: &(Vec<usize>, Vec<f32>), conf: f32, iou: f32, max_det: usize) -> Vec<usize> {
    let a = o0.0[2];
    let row = |r: usize, i: usize| o0.1[r * a + i];
    let mut cand: Vec<usize> = (0..a).filter(|&i| row(4, i) > conf).collect();
    cand.sort_by(|&x, &y| row(4, y).total_cmp(&row(4, x)).then(x.cmp(&y)));
    let bx = |i: usize| {
        let (cx, cy, w, h) = (row(0, i), row(1, i), row(2, i), row(3, i));
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
    };
    let mut keep: Vec<usize> = Vec::new();
    for i in cand {
        let b = bx(i);
        let area = (b[2] - b[0]) * (b[3] - b[1]);
        let suppressed = keep.iter().any(|&k| {
            let c = bx(k);
            let iw = (b[2].min(c[2]) - b[0].max(c[0])).max(0.0);
            let ih = (b[3].min(c[3]) - b[1].max(c[1])).max(0.0);
            let inter = iw * ih;
            inter / (area + (c[2] - c[0]) * (c[3] - c[1]) - inter) > iou
        });
        if !suppressed {
            keep.push(i);
            if keep.len() == max_det {
                break;
            }
        }
    }
    keep
}

#[test]
fn converted_model_gives_ultralytics_final_detections() {
    // The golden detections (Ultralytics' FastSAM predict on its own export) are reproduced from the
    // converted model's raw output with a plain greedy NMS: same anchors, same order.
    let Some(pt) = assets::require("models/FastSAM-s-random.pt") else { return };
    let dir = tempfile::tempdir().unwrap();
    let ours = convert(&pt, Some((640, 640)), dir.path());
    for case in ["bus_640", "zidane_640"] {
        let Some(dc) = assets::require(&format!("golden/seg/{case}")) else { return };
        let j: serde_json::Value = serde_json::from_slice(&std::fs::read(dc.join("case.json")).unwrap()).unwrap();
        let ev = &j["everything"]["retina_false"];
        let want: Vec<usize> =
            ev["detections"].as_array().unwrap().iter().map(|d| d["anchor_index"].as_u64().unwrap() as usize).collect();
        let out = run(&ours, &load_input(&dc.join("input.png"), 0, 640, 0, 640));
        let got = nms(&out.o0, 0.4, 0.9, 300);
        assert_eq!(got.len(), ev["num_nms"].as_u64().unwrap() as usize, "{case}: NMS count");
        // Detections with an empty mask are dropped after NMS by Ultralytics: `want` is a subsequence.
        let mut it = got.iter();
        for w in &want {
            assert!(it.any(|g| g == w), "{case}: anchor {w} missing or out of order");
        }
        eprintln!("{case}: {} detections after NMS, {} golden detections reproduced in order", got.len(), want.len());
    }
}
