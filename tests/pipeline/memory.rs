//! Memory stays bounded over a long input: 10,000 frames from `videotestsrc` (through the decode
//! template) with a fast scripted segmenter, tracker, overlay, encoder and both track files.
//! Samples RSS after warm-up and at the end. Slow (minutes on 2 cores): `cargo test --test
//! pipeline memory -- --ignored --nocapture`. Figures go to BENCHMARKS.md.

use crate::support::video;

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use fastsam_track::video::{SourceConfig, VideoSource};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
#[ignore = "long: 10,000 frames"]
fn rss_is_flat_over_10000_frames() {
    const N: u64 = 10_000;
    let (w, h) = (640u32, 360u32);
    let dir = tempfile::tempdir().unwrap();
    let template = format!(
        "videotestsrc pattern=ball num-buffers={N} ! video/x-raw,width={w},height={h},framerate=25/1 ! \
         videoconvert ! appsink name=sink"
    );
    let src_cfg = SourceConfig { template, ..SourceConfig::default() };
    let source = VideoSource::open("videotestsrc://", &src_cfg).unwrap();
    let cfg = video::Job {
        output: Some(dir.path().join("long.mp4")),
        tracks_mot: Some(dir.path().join("t.txt")),
        tracks_json: Some(dir.path().join("t.jsonl")),
        ..video::Job::default()
    };
    let samples = Mutex::new(Vec::new());
    let start = rss_kib();
    let progress = |n: u64| {
        if n.is_multiple_of(1000) {
            samples.lock().unwrap().push((n, rss_kib()));
        }
    };
    let mut seg = Box::new(video::PathSegmenter { w, h, calls: 0 });
    let report = video::run_job_progress(source, &mut *seg, cfg, &AtomicBool::new(false), &progress).unwrap();
    let end = rss_kib();
    let samples = samples.into_inner().unwrap();
    eprintln!("RSS before run {start} KiB; by frame: {samples:?}; after run {end} KiB");
    eprintln!("{report:?}");
    assert_eq!(report.frames, N);
    let (_, after_warmup) = samples[0];
    let peak_late = samples.iter().map(|s| s.1).max().unwrap();
    assert!(peak_late < after_warmup + 32 * 1024, "RSS grew from {after_warmup} KiB at frame 1000 to {peak_late} KiB");
    assert!(report.buffer_allocations < 40, "frame buffers allocated: {}", report.buffer_allocations);
}
