//! INT8 quantization (`fastsam_track::convert::quantize`, `fastsam-track quantize`): the quantized
//! graph's structure (signature kept, the documented float/int8 boundary, ONNX Runtime really
//! fusing to int8 kernels), refusals (an already-quantized model, an unreadable calibration
//! source, before any work), and accuracy against fp32 with the trained FastSAM-n-synth
//! (calibrated on `synth_track_a.mp4`, judged on frames of clips c and d).
//!
//! The fast tests share one quantization (16 calibration frames). The full accuracy figures (64
//! frames, every frame of c and d, each calibration method and boundary) are `#[ignore]`d:
//! `cargo test --test convert quantize_accuracy_full -- --ignored --nocapture`.

use crate::support::assets;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fastsam_track::Mask;
use fastsam_track::convert::onnx_proto::{ModelProto, data_type};
use fastsam_track::convert::quantize::plan::{GraphIndex, Plan, float_tail};
use fastsam_track::convert::quantize::rewrite::{conv_transpose_as_conv, stem_as_space_to_depth};
use fastsam_track::convert::quantize::source::{CalibSource, quantize_with_source};
use fastsam_track::convert::quantize::{CalibMethod, QuantizeError, QuantizeOptions, Quantizer, read_model};
use fastsam_track::model::{Device, FastSam, ModelOptions};
use fastsam_track::types::{BBox, Segmenter};
use fastsam_track::video::{Frame, FramePool, SourceConfig, VideoSource};

/// The float boundary on a YOLOv8-seg graph, as documented in `convert::quantize` (quantizer v3
/// defaults): the class-logit convolutions and the DFL's fixed convolution stay `Conv` in float.
const FLOAT_CONVS: &[&str] = &[
    "/model.22/cv3.0/cv3.0.2/Conv",
    "/model.22/cv3.1/cv3.1.2/Conv",
    "/model.22/cv3.2/cv3.2.2/Conv",
    "/model.22/dfl/conv/Conv",
];

/// The final 1x1 head convolutions besides the class logits (box distribution, mask
/// coefficients, prototype output): the float boundary of quantizer v2, int8 since v3.
const HEAD_CONVS: &[&str] = &[
    "/model.22/cv2.0/cv2.0.2/Conv",
    "/model.22/cv2.1/cv2.1.2/Conv",
    "/model.22/cv2.2/cv2.2.2/Conv",
    "/model.22/cv4.0/cv4.0.2/Conv",
    "/model.22/cv4.1/cv4.1.2/Conv",
    "/model.22/cv4.2/cv4.2.2/Conv",
    "/model.22/proto/cv3/conv/Conv",
];

/// The class-score branch's 3x3 convolutions: int8 since v3 (with the range headroom), float with
/// `--float-class-branch` (v2's mixed precision).
const CLASS_BRANCH_CONVS: &[&str] = &[
    "/model.22/cv3.0/cv3.0.0/conv/Conv",
    "/model.22/cv3.0/cv3.0.1/conv/Conv",
    "/model.22/cv3.1/cv3.1.0/conv/Conv",
    "/model.22/cv3.1/cv3.1.1/conv/Conv",
    "/model.22/cv3.2/cv3.2.0/conv/Conv",
    "/model.22/cv3.2/cv3.2.1/conv/Conv",
];

/// int8 convolutions with the defaults: 59 backbone / neck / head convolutions, the prototype
/// upsampling as a 1x1 conv, the class branch's 6 and the 7 head convolutions.
const INT8_CONVS: usize = 60 + 6 + 7;

struct Fixture {
    float: PathBuf,
    int8: PathBuf,
    clip_a: PathBuf,
    dir: PathBuf,
}

/// FastSAM-n-synth quantized once per test binary on 16 frames of clip a at 320.
fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let float = assets::require("models/FastSAM-n-synth-dynamic.onnx")?;
        let clip_a = assets::require("assets/synth/synth_track_a.mp4")?;
        let dir = std::env::temp_dir().join(format!("fastsam-int8-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let int8 = dir.join("n-synth.int8.onnx");
        let opts = QuantizeOptions { calib_frames: 16, imgsz: Some(320), ..QuantizeOptions::default() };
        let src = CalibSource::open(clip_a.to_str().unwrap()).unwrap();
        let mut calls = 0;
        let s = quantize_with_source(&float, src, &int8, &opts, &mut |_, _| calls += 1).unwrap();
        assert_eq!(calls, 16, "one progress call per calibration frame");
        assert!(s.total_quantized() > 200 && s.weights == INT8_CONVS, "{s:?}");
        Some(Fixture { float, int8, clip_a, dir })
    })
    .as_ref()
}

fn graph(m: &ModelProto) -> &fastsam_track::convert::onnx_proto::GraphProto {
    m.graph.as_ref().unwrap()
}

#[test]
fn quantized_graph_keeps_the_signature_and_the_documented_float_boundary() {
    let Some(f) = fixture() else { return };
    let fm = read_model(&f.float).unwrap();
    let qm = read_model(&f.int8).unwrap();
    let (fg, qg) = (graph(&fm), graph(&qm));
    // signature: the same inputs and outputs (names, types, shapes)
    assert_eq!(fg.input, qg.input);
    assert_eq!(fg.output, qg.output);

    let inits: HashMap<&str, &fastsam_track::convert::onnx_proto::TensorProto> =
        qg.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let producer: HashMap<&str, &fastsam_track::convert::onnx_proto::NodeProto> =
        qg.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let mut float_convs = BTreeSet::new();
    let mut int8_convs = 0;
    for n in qg.node.iter().filter(|n| n.op_type == "Conv") {
        match inits.get(n.input[1].as_str()) {
            Some(w) => {
                assert_eq!(w.data_type, data_type::FLOAT, "{}", n.name);
                float_convs.insert(n.name.as_str());
            }
            None => {
                // int8 weights: DequantizeLinear of an INT8 initializer, one scale per output channel
                let dq = producer[n.input[1].as_str()];
                assert_eq!(dq.op_type, "DequantizeLinear", "{}", n.name);
                let (q, s) = (inits[dq.input[0].as_str()], inits[dq.input[1].as_str()]);
                assert_eq!(q.data_type, data_type::INT8);
                assert_eq!(s.dims, vec![q.dims[0]], "per-channel scales on axis 0");
                // the data input comes through a Q/DQ pair
                assert_eq!(producer[n.input[0].as_str()].op_type, "DequantizeLinear", "{}", n.name);
                int8_convs += 1;
            }
        }
    }
    let expected: BTreeSet<&str> = FLOAT_CONVS.iter().copied().collect();
    assert_eq!(float_convs, expected);
    assert_eq!(int8_convs, INT8_CONVS);

    // no node of the float tail (found on the float graph) reads a dequantized tensor, except the
    // learned boundary convolutions' data input (the output of an int8 SiLU) and the nodes that
    // read the int8 head convolutions' outputs (their concatenation, the prototype's SiLU)
    let ix = GraphIndex::new(fg);
    let tail = float_tail(fg, &ix);
    let tail_names: BTreeSet<&str> = tail.iter().map(|&i| fg.node[i].name.as_str()).collect();
    assert!(tail_names.contains("/model.22/dfl/Softmax") || fg.node.iter().any(|n| n.op_type == "Softmax"));
    for n in qg.node.iter().filter(|n| tail_names.contains(n.name.as_str())) {
        for (k, i) in n.input.iter().enumerate() {
            let from_dq = producer.get(i.as_str()).is_some_and(|p| p.op_type == "DequantizeLinear");
            // (`Shape` reads only the shape)
            let from_head = HEAD_CONVS.iter().any(|c| i == &format!("{c}_output_0_DequantizeLinear_Output"));
            let allowed = (k == 0 && n.op_type == "Conv" && n.name != "/model.22/dfl/conv/Conv")
                || n.op_type == "Shape"
                || from_head
                || HEAD_CONVS.contains(&n.name.as_str());
            assert!(!from_dq || allowed, "{} ({}) reads the dequantized {i}", n.name, n.op_type);
        }
    }
    for t in ["Softmax", "Sub", "Div", "Slice"] {
        assert!(qg.node.iter().any(|n| n.op_type == t), "the tail keeps its {t}");
    }
    // the outputs come straight from float nodes
    for o in &qg.output {
        let p = producer[o.name.as_str()];
        assert!(!p.op_type.contains("Quantize"), "{} is produced by {}", o.name, p.op_type);
    }
}

/// Runs the float model at `float` and its rewritten copy `m` on 3 frames of `clip` and asserts
/// that both outputs agree to `tol` relative to their largest value.
fn assert_rewrite_keeps_outputs(float: &Path, m: &ModelProto, clip: &Path, tol: f32) {
    let dir = tempfile::tempdir().unwrap();
    let rewritten = dir.path().join("rewritten.onnx");
    fastsam_track::convert::quantize::write_model(m, &rewritten).unwrap();
    let (mut a, mut b) = (load(float), load(&rewritten));
    for f in frames(clip, 60, 3) {
        a.infer(&f.view()).unwrap();
        b.infer(&f.view()).unwrap();
        let (ra, rb) = (a.raw_outputs(), b.raw_outputs());
        for (name, x, y) in [("output0", ra.out0, rb.out0), ("protos", &ra.protos.data[..], &rb.protos.data[..])] {
            assert_eq!(x.len(), y.len());
            let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            eprintln!("{name}: max |diff| {diff:e} (max |value| {scale})");
            assert!(scale > 0.1 && diff <= tol * scale.max(1.0), "{name}: max |diff| {diff} for values up to {scale}");
        }
    }
}

/// The prototype upsampling (`ConvTranspose` 2x2, stride 2) rewritten as a 1x1 `Conv` +
/// `DepthToSpace` computes the same outputs as ONNX Runtime's `ConvTranspose`, on real frames.
#[test]
fn conv_transpose_rewrite_is_exact_on_the_real_model() {
    let Some(float) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(c) = assets::require("assets/synth/synth_track_c.mp4") else { return };
    let mut m = read_model(&float).unwrap();
    let done = conv_transpose_as_conv(&mut m);
    assert_eq!(done, ["/model.22/proto/upsample/ConvTranspose"]);
    let ops: Vec<&str> = graph(&m).node.iter().map(|n| n.op_type.as_str()).collect();
    assert!(!ops.contains(&"ConvTranspose") && ops.iter().filter(|&&o| o == "DepthToSpace").count() == 1);
    assert_rewrite_keeps_outputs(&float, &m, &c, 1e-5);
}

/// The stem (3x3 stride-2 conv of the image) rewritten as `SpaceToDepth` + a 2x2 conv computes
/// the same outputs as the original, on real frames of the dynamic model at 320 (a 192x320
/// letterboxed input).
#[test]
fn stem_space_to_depth_rewrite_is_exact_on_the_real_model() {
    let Some(float) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(c) = assets::require("assets/synth/synth_track_c.mp4") else { return };
    let mut m = read_model(&float).unwrap();
    assert_eq!(stem_as_space_to_depth(&mut m), ["/model.0/conv/Conv"]);
    let g = graph(&m);
    assert_eq!(g.node.iter().filter(|n| n.op_type == "SpaceToDepth").count(), 1);
    assert_eq!(
        g.node.iter().filter(|n| n.op_type == "Conv").count(),
        graph(&read_model(&float).unwrap()).node.iter().filter(|n| n.op_type == "Conv").count()
    );
    assert_rewrite_keeps_outputs(&float, &m, &c, 1e-4);
}

#[test]
fn onnx_runtime_fuses_the_qdq_graph_into_int8_kernels() {
    let Some(f) = fixture() else { return };
    let env = fastsam_track::runtime::environment(None).unwrap();
    let opt = f.dir.join("optimized.onnx");
    let _session = ort::session::Session::builder(&env)
        .unwrap()
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level2)
        .unwrap()
        .with_optimized_model_path(&opt)
        .unwrap()
        .commit_from_file(&f.int8)
        .unwrap();
    let m = ModelProto::decode_bytes(&std::fs::read(&opt).unwrap()).unwrap();
    let mut count: HashMap<String, usize> = HashMap::new();
    for n in &graph(&m).node {
        *count.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    eprintln!("optimized int8 graph: {count:?}");
    assert_eq!(count.get("QLinearConv").copied().unwrap_or(0), INT8_CONVS, "every int8 convolution fused: {count:?}");
    assert_eq!(count.get("Conv").copied().unwrap_or(0), FLOAT_CONVS.len(), "only the float boundary stays Conv");
    // every SiLU but the prototype output's
    assert!(count.get("QLinearSigmoid").copied().unwrap_or(0) >= 65, "{count:?}");
    assert!(count.get("QLinearMul").copied().unwrap_or(0) >= 65, "{count:?}");
    // the prototype upsampling runs on uint8: its DepthToSpace reads the QLinearConv's output
    let og = graph(&m);
    let d2s: Vec<_> = og.node.iter().filter(|n| n.op_type == "DepthToSpace").collect();
    assert_eq!(d2s.len(), 1, "{count:?}");
    let p = og.node.iter().find(|n| n.output.contains(&d2s[0].input[0])).unwrap();
    assert_eq!(p.op_type, "QLinearConv", "DepthToSpace reads {} ({})", p.name, p.op_type);
}

#[test]
fn an_already_quantized_model_is_refused() {
    let Some(f) = fixture() else { return };
    let e = Quantizer::open(&f.int8, &QuantizeOptions::default()).unwrap_err();
    assert!(matches!(e, QuantizeError::AlreadyQuantized { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("already quantized") && msg.contains("DequantizeLinear"), "{msg}");
}

#[test]
fn an_unreadable_calibration_source_fails_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.mp4");
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let not_video = dir.path().join("notes.mp4");
    std::fs::write(&not_video, b"this is not a video at all").unwrap();
    let no_images = dir.path().join("folder");
    std::fs::create_dir(&no_images).unwrap();
    std::fs::write(no_images.join("readme.txt"), b"x").unwrap();
    for bad in [&missing, &empty, &not_video, &no_images] {
        let e = CalibSource::open(bad.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, QuantizeError::CalibrationSource { .. }), "{}: {e}", bad.display());
        assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
    }

    // the command: a .pt model (conversion is work) and a missing source: nothing is converted
    let Some(pt) = assets::require("models/FastSAM-n-synth.pt") else { return };
    let cache = dir.path().join("cache");
    let out = dir.path().join("out.onnx");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
        .args(["quantize", "--model", pt.to_str().unwrap(), "--calib", missing.to_str().unwrap(), "-o"])
        .arg(&out)
        .env("FASTSAM_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("calibration source") && stderr.contains("missing.mp4"), "{stderr}");
    assert!(!cache.join("converted").exists(), "the checkpoint was converted before the source was checked");
    assert!(!out.exists());
}

/// Up to `n` frames of `clip`, every `step`-th.
fn frames(clip: &Path, step: usize, n: usize) -> Vec<Frame> {
    let mut src = VideoSource::open(clip.to_str().unwrap(), &SourceConfig::default()).unwrap();
    let pool = FramePool::new(n + 1);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        let Some(f) = src.next_frame(&pool, &stop).unwrap() else { break };
        if i % step == 0 {
            out.push(f);
        }
        i += 1;
    }
    out
}

fn load(path: &Path) -> FastSam {
    let opts = ModelOptions { imgsz: Some(320), device: Device::Cpu, ..ModelOptions::default() };
    FastSam::load(path, opts).unwrap()
}

/// Detections (score >= `conf`) of every frame, with materialised masks.
fn detect(model: &mut FastSam, frames: &[Frame], conf: f32) -> Vec<Vec<(BBox, f32, Mask)>> {
    model.set_post_config(conf, 0.9, 300, true);
    frames
        .iter()
        .map(|f| {
            let dets = model.segment(f.view()).unwrap();
            dets.into_iter()
                .map(|d| {
                    let m = d.mask.as_ref().map(|m| Mask::from_roi(m.roi().clone())).unwrap();
                    (d.bbox, d.score, m)
                })
                .collect()
        })
        .collect()
}

/// For every fp32 detection (score >= 0.4): the best box IoU among the int8 detections scoring at
/// least `int8_conf`, and the mask IoU with that detection.
fn compare(fp32: &[Vec<(BBox, f32, Mask)>], int8: &[Vec<(BBox, f32, Mask)>], int8_conf: f32) -> Vec<(f32, f64)> {
    let mut out = Vec::new();
    for (a, b) in fp32.iter().zip(int8) {
        for (bx, _, m) in a.iter().filter(|d| d.1 >= 0.4) {
            let best = b.iter().filter(|d| d.1 >= int8_conf).max_by(|x, y| bx.iou(&x.0).total_cmp(&bx.iou(&y.0)));
            match best {
                Some((b2, _, m2)) => out.push((bx.iou(b2), m.iou(m2))),
                None => out.push((0.0, 0.0)),
            }
        }
    }
    out
}

fn pass_rate(pairs: &[(f32, f64)]) -> f64 {
    pairs.iter().filter(|(b, m)| *b >= 0.9 && *m >= 0.85).count() as f64 / pairs.len().max(1) as f64
}

fn quantiles(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("min {:.3} p5 {:.3} p25 {:.3} median {:.3}", q(0.0), q(0.05), q(0.25), q(0.5))
}

#[test]
fn int8_detections_match_fp32_on_unseen_clips() {
    let Some(f) = fixture() else { return };
    let Some(c) = assets::require("assets/synth/synth_track_c.mp4") else { return };
    let Some(d) = assets::require("assets/synth/synth_track_d.mp4") else { return };
    let (mut fp32, mut int8) = (load(&f.float), load(&f.int8));
    let mut fr = frames(&c, 50, 5);
    fr.extend(frames(&d, 50, 5));
    let (reference, quantized) = (detect(&mut fp32, &fr, 0.4), detect(&mut int8, &fr, 0.3));
    let pairs = compare(&reference, &quantized, 0.4);
    assert!(pairs.len() >= 20, "only {} fp32 detections", pairs.len());
    let (rate, lenient) = (pass_rate(&pairs), pass_rate(&compare(&reference, &quantized, 0.3)));
    eprintln!(
        "{} fp32 detections, {:.1}% matched (box IoU >= 0.9, mask IoU >= 0.85), {:.1}% with int8 scores down to 0.3",
        pairs.len(),
        rate * 100.0,
        lenient * 100.0
    );
    // Measured on every 2nd frame of c and d with 64 calibration frames (docs/int8.md): 95.3%
    // strict, 99.0% lenient; the misses are mostly fp32 detections near the 0.4 threshold whose
    // int8 score fell under it. This fixture calibrates on 16 frames and judges 10 frames.
    assert!(rate >= 0.85, "only {:.1}% of the fp32 detections have an int8 match", rate * 100.0);
    assert!(lenient >= 0.93, "only {:.1}% have an int8 match scoring >= 0.3", lenient * 100.0);
    let _ = &f.clip_a;
}

/// The full accuracy figures for BENCHMARKS.md / docs/int8.md: 64 calibration frames of clip a,
/// every `FASTSAM_INT8_STEP`-th (default 2nd) frame of clips c and d, for each calibration method and
/// float boundary. "lenient" counts int8 matches down to score 0.3 (fp32 detections near the
/// threshold whose int8 score fell just under it). `FASTSAM_INT8_CALIB=N`: calibration frames;
/// `FASTSAM_INT8_QUICK=1`: only the two boundaries (with the default method unless
/// `FASTSAM_INT8_METHODS=mse,percentile:99.999,...`); `FASTSAM_INT8_FLOAT_NODES=a,b,...`: nodes
/// kept in float (mixed precision, e.g. from [`quantize_sensitivity`]); `FASTSAM_INT8_CLASS_FLOAT=1`:
/// the class branch in float (v2); `FASTSAM_INT8_CLASS_METHOD=minmax`: the calibration method of the
/// class branch's tensors when it is int8.
#[test]
#[ignore = "minutes; prints the accuracy figures of docs/int8.md"]
fn quantize_accuracy_full() {
    let Some(f) = fixture() else { return };
    let Some(c) = assets::require("assets/synth/synth_track_c.mp4") else { return };
    let Some(d) = assets::require("assets/synth/synth_track_d.mp4") else { return };
    let step: usize = std::env::var("FASTSAM_INT8_STEP").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let mut fr = frames(&c, step, 250 / step);
    fr.extend(frames(&d, step, 250 / step));
    let reference = detect(&mut load(&f.float), &fr, 0.4);
    let calib_frames: usize = std::env::var("FASTSAM_INT8_CALIB").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let only_defaults = std::env::var("FASTSAM_INT8_QUICK").is_ok();
    let float_nodes: Vec<String> = std::env::var("FASTSAM_INT8_FLOAT_NODES")
        .map(|s| s.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let mut variants: Vec<(bool, Vec<String>)> = vec![
        (false, vec![]),
        (true, vec![]),
        (false, vec!["Sigmoid".into(), "Mul".into()]),
        (false, vec!["Concat".into()]),
        (false, vec!["Add".into()]),
    ];
    if only_defaults {
        variants.truncate(2);
    }
    for (head, float_ops) in variants {
        let opts = QuantizeOptions {
            calib_frames,
            imgsz: Some(320),
            quantize_head_convs: head,
            float_ops: float_ops.clone(),
            float_nodes: float_nodes.clone(),
            class_branch_float: std::env::var("FASTSAM_INT8_CLASS_FLOAT").is_ok(),
            class_branch_method: std::env::var("FASTSAM_INT8_CLASS_METHOD")
                .map(|m| Some(m.parse().unwrap()))
                .unwrap_or(QuantizeOptions::default().class_branch_method),
            share_concat_scales: std::env::var("FASTSAM_INT8_CONCAT_RATIO").ok().map(|r| r.parse().unwrap()),
            class_headroom: std::env::var("FASTSAM_INT8_CLASS_HEADROOM")
                .map(|m| m.parse().unwrap())
                .unwrap_or(QuantizeOptions::default().class_headroom),
            ..QuantizeOptions::default()
        };
        let mut q = Quantizer::open(&f.float, &opts).unwrap();
        let src = CalibSource::open(f.clip_a.to_str().unwrap()).unwrap();
        src.for_each_frame(calib_frames, |im| q.observe(im), &mut |_, _| {}).unwrap();
        let (path, model, plan, calib) = q.into_parts();
        let methods: Vec<CalibMethod> = match std::env::var("FASTSAM_INT8_METHODS") {
            Ok(m) => m.split(',').map(|m| m.parse().unwrap()).collect(),
            Err(_) if only_defaults => vec![CalibMethod::Percentile(99.999)],
            Err(_) => vec![
                CalibMethod::MinMax,
                CalibMethod::Percentile(99.999),
                CalibMethod::Percentile(99.9999),
                CalibMethod::Mse,
            ],
        };
        for method in methods {
            let out = f.dir.join(format!("full-{head}-{}-{method}.onnx", float_ops.join("")).replace(':', "_"));
            fastsam_track::convert::quantize::write_quantized(&path, &model, &plan, &calib, method, "test", &out)
                .unwrap();
            if let Ok(keep) = std::env::var("FASTSAM_INT8_KEEP") {
                std::fs::copy(&out, Path::new(&keep).join(out.file_name().unwrap())).unwrap();
            }
            let int8 = detect(&mut load(&out), &fr, 0.3);
            let pairs = compare(&reference, &int8, 0.4);
            let lenient = compare(&reference, &int8, 0.3);
            let missing = pairs.iter().filter(|p| p.0 < 0.5).count();
            let mut boxes: Vec<f64> = pairs.iter().map(|p| p.0 as f64).collect();
            let mut masks: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            eprintln!(
                "head convs int8: {head}, float ops {float_ops:?}, float nodes {}, {method}: {} detections, {:.1}% pass \
                 ({:.1}% lenient, {missing} without any int8 box at IoU 0.5); box IoU {}; mask IoU {}",
                float_nodes.len(),
                pairs.len(),
                pass_rate(&pairs) * 100.0,
                pass_rate(&lenient) * 100.0,
                quantiles(&mut boxes),
                quantiles(&mut masks)
            );
        }
    }
}

/// Mean over the fp32 detections scoring >= 0.3 of |fp32 score - int8 score| of the best-matching
/// int8 detection (box IoU >= 0.9), the fp32 score when none matches: a continuous measure of the
/// score drift that makes detections cross the threshold.
fn score_error(fp32: &[Vec<(BBox, f32, Mask)>], int8: &[Vec<(BBox, f32, Mask)>]) -> f64 {
    let (mut sum, mut n) = (0f64, 0usize);
    for (a, b) in fp32.iter().zip(int8) {
        for (bx, s, _) in a.iter().filter(|d| d.1 >= 0.3) {
            let best = b.iter().max_by(|x, y| bx.iou(&x.0).total_cmp(&bx.iou(&y.0)));
            sum += match best {
                Some((b2, s2, _)) if bx.iou(b2) >= 0.9 => (s - s2).abs() as f64,
                _ => *s as f64,
            };
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// Per-layer sensitivity: each int8 convolution block (the `Conv` and the SiLU reading it) kept
/// in float alone, ranked by the score error against fp32 ([`score_error`], every
/// `FASTSAM_INT8_STEP`-th (default 10th) frame of clips c and d), then the worst `FASTSAM_INT8_TOPK`
/// (default 6) kept in float together, cumulatively. `FASTSAM_INT8_HEAD_FLOAT=1`: with the final
/// head convolutions in float; `FASTSAM_INT8_CLASS_FLOAT=1`: with the class branch in float (v2's
/// boundary; the figures in docs/int8.md were measured with v2's all-int8 graph). Prints the
/// figures of docs/int8.md.
#[test]
#[ignore = "minutes; prints the sensitivity analysis of docs/int8.md"]
fn quantize_sensitivity() {
    let Some(f) = fixture() else { return };
    let Some(c) = assets::require("assets/synth/synth_track_c.mp4") else { return };
    let Some(d) = assets::require("assets/synth/synth_track_d.mp4") else { return };
    let step: usize = std::env::var("FASTSAM_INT8_STEP").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let topk: usize = std::env::var("FASTSAM_INT8_TOPK").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let mut fr = frames(&c, step, 250 / step);
    fr.extend(frames(&d, step, 250 / step));
    let reference = detect(&mut load(&f.float), &fr, 0.3);
    let opts = QuantizeOptions {
        calib_frames: 64,
        imgsz: Some(320),
        quantize_head_convs: std::env::var("FASTSAM_INT8_HEAD_FLOAT").is_err(),
        class_branch_float: std::env::var("FASTSAM_INT8_CLASS_FLOAT").is_ok(),
        ..QuantizeOptions::default()
    };
    let mut q = Quantizer::open(&f.float, &opts).unwrap();
    let src = CalibSource::open(f.clip_a.to_str().unwrap()).unwrap();
    src.for_each_frame(opts.calib_frames, |im| q.observe(im), &mut |_, _| {}).unwrap();
    let (path, model, plan, calib) = q.into_parts();
    let g = graph(&model);
    let out = f.dir.join("sensitivity.onnx");
    let eval = |float_nodes: Vec<String>| {
        let o = QuantizeOptions { float_nodes, ..opts.clone() };
        let p = Plan::new(&path, &model, &o).unwrap();
        fastsam_track::convert::quantize::write_quantized(&path, &model, &p, &calib, opts.method, "test", &out)
            .unwrap();
        let int8 = detect(&mut load(&out), &fr, 0.2);
        let mut r = reference.clone();
        for v in r.iter_mut() {
            v.retain(|d| d.1 >= 0.4);
        }
        (score_error(&reference, &int8), pass_rate(&compare(&r, &int8, 0.4)))
    };
    let (base_err, base_pass) = eval(vec![]);
    eprintln!("all int8: score error {base_err:.4}, pass {:.1}%", base_pass * 100.0);
    // blocks: each int8 Conv with the Sigmoid / Mul reading its output (its SiLU)
    let mut rows = Vec::new();
    for &i in plan.quantized.iter().filter(|&&i| g.node[i].op_type == "Conv") {
        let y = &g.node[i].output[0];
        let mut block = vec![g.node[i].name.clone()];
        for n in g.node.iter().filter(|n| n.input.contains(y) && matches!(n.op_type.as_str(), "Sigmoid" | "Mul")) {
            block.push(n.name.clone());
        }
        let (err, pass) = eval(block.clone());
        rows.push((err, pass, block));
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (err, pass, block) in &rows {
        eprintln!("float {:<45} score error {err:.4} ({:+.4}), pass {:.1}%", block[0], err - base_err, pass * 100.0);
    }
    let mut keep: Vec<String> = Vec::new();
    for (_, _, block) in rows.iter().take(topk) {
        keep.extend(block.iter().cloned());
        let (err, pass) = eval(keep.clone());
        eprintln!("cumulative +{}: score error {err:.4}, pass {:.1}%", block[0], pass * 100.0);
    }
    eprintln!("FASTSAM_INT8_FLOAT_NODES={}", keep.join(","));
}

/// `fastsam-track quantize` of `model` at 320 on 2 frames of `calib` to `out`, plus `extra`
/// flags; the written model.
fn quantize_cli(model: &Path, calib: &Path, out: &Path, extra: &[&str]) -> ModelProto {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
        .args(["quantize", "--model", model.to_str().unwrap(), "--calib", calib.to_str().unwrap()])
        .args(["--imgsz", "320", "--calib-frames", "2", "-o", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_model(out).unwrap()
}

/// `fastsam-track quantize --float-class-branch` keeps the class branch's 6 convolutions in float
/// (v2's mixed precision) and `--float-head-convs` the 7 head convolutions: exactly those leave
/// the int8 set.
#[test]
fn float_class_branch_and_head_conv_flags_move_exactly_those_convolutions() {
    let Some(model) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(calib) = assets::require("assets/synth/synth_track_a.mp4") else { return };
    let dir = tempfile::tempdir().unwrap();
    let int8_convs = |extra: &[&str]| {
        let m = quantize_cli(&model, &calib, &dir.path().join(format!("q{}.onnx", extra.join(""))), extra);
        let g = graph(&m);
        let int8: BTreeSet<&str> =
            g.initializer.iter().filter(|t| t.data_type == data_type::INT8).map(|t| t.name.as_str()).collect();
        let convs: BTreeSet<String> = g
            .node
            .iter()
            .filter(|n| n.op_type == "DequantizeLinear" && int8.contains(n.input[0].as_str()))
            .map(|n| n.name.trim_end_matches("_W_DequantizeLinear").to_string())
            .collect();
        convs
    };
    let default = int8_convs(&[]);
    assert_eq!(default.len(), INT8_CONVS);
    for (flag, moved) in [("--float-class-branch", CLASS_BRANCH_CONVS), ("--float-head-convs", HEAD_CONVS)] {
        let other = int8_convs(&[flag]);
        let gone: BTreeSet<&str> = default.difference(&other).map(String::as_str).collect();
        assert_eq!(gone, moved.iter().copied().collect::<BTreeSet<_>>(), "{flag}");
        assert!(other.is_subset(&default), "{flag}");
    }
    let logits = int8_convs(&["--quantize-class-logits"]);
    let added: BTreeSet<&str> = logits.difference(&default).map(String::as_str).collect();
    assert_eq!(added, FLOAT_CONVS[..3].iter().copied().collect::<BTreeSet<_>>());
}

/// The class branch's ranges: `--class-headroom F` multiplies the top of each class-branch
/// activation range (conv, SiLU outputs) by F against `--class-headroom 1` and changes no other
/// tensor's; with `--quantize-class-logits` the logits' range covers [-6.9, 6.9] (scores 0.001 to
/// 0.999) although the calibration frames never score an object that high at every stride.
#[test]
fn class_headroom_widens_only_the_class_branch_and_logits_keep_their_score_range() {
    let Some(model) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(calib) = assets::require("assets/synth/synth_track_a.mp4") else { return };
    let dir = tempfile::tempdir().unwrap();
    // (scale, zero point) of every activation
    let params = |extra: &[&str]| {
        let m = quantize_cli(&model, &calib, &dir.path().join(format!("h{}.onnx", extra.join(""))), extra);
        let g = graph(&m);
        let get = |n: &str| g.initializer.iter().find(|t| t.name == n);
        let acts: std::collections::BTreeMap<String, (f32, u8)> = g
            .initializer
            .iter()
            .filter(|t| t.name.ends_with("_scale") && !t.name.ends_with("_W_scale") && !t.name.ends_with("_B_scale"))
            .map(|t| {
                let base = t.name.trim_end_matches("_scale");
                let zp = get(&format!("{base}_zero_point")).map(|z| z.raw_data[0]).unwrap();
                (base.to_string(), (t.to_f32().unwrap()[0], zp))
            })
            .collect();
        acts
    };
    let one = params(&["--class-headroom", "1"]);
    let two = params(&["--class-headroom", "2"]);
    assert_eq!(one.keys().collect::<Vec<_>>(), two.keys().collect::<Vec<_>>());
    let mut widened = 0;
    for (name, &(s1, z1)) in &one {
        let (s2, z2) = two[name];
        let (lo1, hi1) = (-(z1 as f32) * s1, (255 - z1 as i32) as f32 * s1);
        let (lo2, hi2) = (-(z2 as f32) * s2, (255 - z2 as i32) as f32 * s2);
        if name.starts_with("/model.22/cv3.") && !name.contains("Sigmoid") {
            // the top doubles; the bottom stays (both within one quantization step)
            assert!((hi2 - 2.0 * hi1).abs() <= s1 + s2, "{name}: top {hi1} -> {hi2}");
            assert!((lo2 - lo1).abs() <= s1 + s2, "{name}: bottom {lo1} -> {lo2}");
            widened += 1;
        } else if name.starts_with("/model.22/cv3.") {
            // a sigmoid's top may only grow, capped by what its values can reach
            assert!(hi2 >= hi1 - s1 && hi2 <= 1.0 + s2, "{name}: top {hi1} -> {hi2}");
        } else {
            assert_eq!((s1.to_bits(), z1), (s2.to_bits(), z2), "{name} is outside the class branch but changed");
        }
    }
    assert_eq!(widened, 6 * 2, "each of the 6 convolutions' output and SiLU output");
    let logits = params(&["--quantize-class-logits"]);
    for i in 0..3 {
        let name = format!("/model.22/cv3.{i}/cv3.{i}.2/Conv_output_0");
        let (s, z) = logits[&name];
        let (lo, hi) = (-(z as f32) * s, (255 - z as i32) as f32 * s);
        assert!(lo <= -6.9 + s && hi >= 6.9 - s, "{name}: range [{lo}, {hi}] does not cover the scores 0.001..0.999");
    }
}

/// `--class-calib-method minmax` changes the ranges of the class
/// branch's activations only: each widens or stays (the exact min/max contain the default
/// percentile range), at least one widens, and every other activation keeps its exact scale.
#[test]
fn class_calib_method_changes_only_the_class_branch_ranges() {
    let Some(model) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(calib) = assets::require("assets/synth/synth_track_a.mp4") else { return };
    let dir = tempfile::tempdir().unwrap();
    let scales = |extra: &[&str]| {
        let m = quantize_cli(&model, &calib, &dir.path().join(format!("c{}.onnx", extra.len())), extra);
        let g = graph(&m);
        let acts: std::collections::BTreeMap<String, f32> = g
            .initializer
            .iter()
            .filter(|t| t.name.ends_with("_scale") && !t.name.ends_with("_W_scale") && !t.name.ends_with("_B_scale"))
            .map(|t| (t.name.clone(), t.to_f32().unwrap()[0]))
            .collect();
        acts
    };
    let base = scales(&[]);
    let minmax = scales(&["--class-calib-method", "minmax"]);
    assert_eq!(base.keys().collect::<Vec<_>>(), minmax.keys().collect::<Vec<_>>());
    let mut widened = 0;
    for (name, &s) in &base {
        let m = minmax[name];
        if name.starts_with("/model.22/cv3.") {
            assert!(m >= s, "{name}: minmax scale {m} < percentile scale {s}");
            widened += usize::from(m > s);
        } else {
            assert_eq!(m.to_bits(), s.to_bits(), "{name} is outside the class branch but changed");
        }
    }
    assert!(widened > 0, "no class-branch range changed");
}

/// Issue 13's tracking bar, run as a user runs it: the main job on synth clips a, c and d at 320
/// (`--precision int8`, calibrated on clip a, 64 frames) against fp32. MOTA, IDF1 and HOTA of
/// int8 must not fall more than 1.5 points below fp32's (measured with quantizer v3: never more
/// than 0.3 below at the default 64 calibration frames; other frame counts can fail on clip d,
/// as float models with 1% weight noise can: docs/int8.md). About 20 s.
#[test]
fn int8_tracking_stays_within_1_5_points_of_fp32() {
    let Some(model) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let Some(calib) = assets::require("assets/synth/synth_track_a.mp4") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for clip in ["a", "c", "d"] {
        let name = format!("synth_track_{clip}");
        let (Some(video), Some(gt)) = (
            assets::require(&format!("assets/synth/{name}.mp4")),
            assets::require(&format!("assets/synth/{name}/gt.txt")),
        ) else {
            return;
        };
        let gt = fastsam_track::eval::read_mot(&gt).unwrap();
        let mut scores = Vec::new();
        for int8 in [false, true] {
            let mot = dir.path().join(format!("{clip}-{int8}.txt"));
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fastsam-track"));
            cmd.arg(&video).arg("--model").arg(&model).args(["--imgsz", "320", "--device", "cpu"]);
            if int8 {
                cmd.args(["--precision", "int8", "--calib"]).arg(&calib);
            }
            let out = cmd.args(["--no-video", "--tracks-mot"]).arg(&mot).env("FASTSAM_CACHE_DIR", dir.path()).output();
            let out = out.unwrap();
            assert!(out.status.success(), "main job failed: {}", String::from_utf8_lossy(&out.stderr));
            let pred = fastsam_track::eval::read_mot(&mot).unwrap();
            let m = fastsam_track::eval::evaluate(&gt, &pred, 0.5).unwrap();
            let h = fastsam_track::eval::evaluate_hota(&gt, &pred).unwrap();
            scores.push([m.mota * 100.0, m.idf1 * 100.0, h.hota * 100.0]);
        }
        for (k, metric) in ["MOTA", "IDF1", "HOTA"].iter().enumerate() {
            let (f, q) = (scores[0][k], scores[1][k]);
            eprintln!("clip {clip} {metric}: fp32 {f:.1}, int8 {q:.1} ({:+.1})", q - f);
            if q < f - 1.5 {
                failures.push(format!("clip {clip} {metric}: int8 {q:.1} < fp32 {f:.1} - 1.5"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// `--precision int8` from a `.pt` in one step: converted, quantized on the input, cached; the
/// second run reuses the cached file, and both say which file ran.
#[test]
fn precision_int8_converts_quantizes_and_caches_in_one_step() {
    let Some(pt) = assets::require("models/FastSAM-n-synth.pt") else { return };
    let Some(clip) = assets::require("assets/synth/synth_track_a.mp4") else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = |tracks: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
            .arg(&clip)
            .args(["--model", pt.to_str().unwrap(), "--imgsz", "320", "--device", "cpu", "--precision", "int8"])
            .args(["--calib-frames", "4", "--no-video", "--tracks-mot"])
            .arg(dir.path().join(tracks))
            .env("FASTSAM_CACHE_DIR", &cache)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{stderr}");
        stderr
    };
    let first = run("t1.txt");
    let quantized: Vec<PathBuf> =
        std::fs::read_dir(cache.join("quantized")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(quantized.len(), 1, "{quantized:?}");
    let q = quantized[0].display().to_string();
    assert!(first.contains("quantized now and cached") && first.contains(&q), "{first}");
    assert!(cache.join("converted").read_dir().unwrap().count() == 1, "the checkpoint was converted once");
    let info = fastsam_track::convert::quantize::quantization_info(&quantized[0]).unwrap();
    assert!(info.contains("synth_track_a.mp4") && info.contains("4 frames"), "{info}");
    let mtime = || std::fs::metadata(&quantized[0]).unwrap().modified().unwrap();
    let before = mtime();
    let second = run("t2.txt");
    assert!(second.contains("from the cache") && second.contains(&q), "{second}");
    assert_eq!(mtime(), before, "the cached model was not rewritten");
    // the same int8 model on the same input gives the same tracks
    assert_eq!(std::fs::read(dir.path().join("t1.txt")).unwrap(), std::fs::read(dir.path().join("t2.txt")).unwrap());
}
