//! The file-to-file `gst-launch-1.0` line of `pipelines/fastsamtrack-file.txt` runs and writes a
//! playable MP4 with every frame.

mod common;

use std::process::Command;
use std::sync::atomic::AtomicBool;

use fastsam_track::frame::FramePool;
use fastsam_track::video::{SourceConfig, VideoSource};

#[test]
fn file_to_file_pipeline_line_writes_every_frame() {
    let (Some(model), Some(clip)) = (common::asset(common::MODEL), common::asset(common::BIKES)) else { return };
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/fastsamtrack-file.txt");
    let text = std::fs::read_to_string(file).unwrap();
    let line = text.lines().find(|l| l.starts_with("gst-launch-1.0")).expect("a gst-launch-1.0 line");
    let line = line
        .replace("location=in.mp4", &format!("location={}", clip.display()))
        .replace("location=out.mp4", &format!("location={}", output.display()))
        .replace("model=FastSAM-s", &format!("model={} imgsz=320 device=cpu", model.display()));
    let mut words = line.split_whitespace();
    let program = words.next().unwrap();
    let registry = dir.path().join("registry.bin");
    let out = Command::new(program)
        .args(words)
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .env("GST_REGISTRY", &registry)
        .output()
        .expect("run gst-launch-1.0");
    assert!(
        out.status.success(),
        "{line}\nfailed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Playable: decode it back and count the frames.
    let mut src = VideoSource::open(&output.display().to_string(), &SourceConfig::default()).expect("open the output");
    assert_eq!((src.info().width, src.info().height), (640, 272));
    let pool = FramePool::new(4);
    let stop = AtomicBool::new(false);
    let mut n = 0;
    while src.next_frame(&pool, &stop).expect("decode the output").is_some() {
        n += 1;
    }
    assert_eq!(n, 250, "every frame of the input is in the output");
}
