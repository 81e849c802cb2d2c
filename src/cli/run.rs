//! `fastsam-track INPUT`: the main job. Parses the options, opens the input, loads the model,
//! runs [`crate::video::pipeline::run`] with a progress bar and Ctrl-C handling, prints a summary.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::common::{ModelArgs, parse_box, parse_point};
use crate::model::FastSam;
use crate::types::{BBox, Segmenter};
use crate::video::deps::{OverlayStyle, Prompt, TrackerConfig, select};
use crate::video::templates::{self, PipelinesFile};
use crate::video::{NullSegmenter, PipelineConfig, SinkConfig, SourceConfig, VideoSource, pipeline};

/// Options of `fastsam-track INPUT`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Input video: a file path, file:// or http(s):// URI, or rtsp:// URL.
    #[arg(required = true)]
    pub input: Option<String>,
    /// Output video (MP4). Default: INPUT_STEM.tracked.mp4 next to the input.
    #[arg(short, long, value_name = "OUT.mp4")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Run without a model (no detections): exercises decode/encode only. For testing.
    #[arg(long, hide = true, conflicts_with = "model")]
    pub null_model: bool,
    /// Tracker configuration (TOML, ByteTrack parameters). Default: configs/bytetrack.toml as built
    /// in (duplicate suppression + mask association); missing keys in FILE take Ultralytics' values.
    #[arg(long, value_name = "FILE")]
    pub tracker: Option<PathBuf>,
    /// Follow the object in this box on the first frame: x1,y1,x2,y2 in pixels (repeatable).
    #[arg(long = "box", value_name = "X1,Y1,X2,Y2", value_parser = parse_box)]
    pub boxes: Vec<BBox>,
    /// Follow the object under this point on the first frame: x,y[,label], label 1 (default) to
    /// include, 0 to exclude (repeatable).
    #[arg(long = "point", value_name = "X,Y[,LABEL]", value_parser = parse_point)]
    pub points: Vec<(f32, f32, bool)>,
    /// Write tracks in MOTChallenge format (frame,id,x,y,w,h,score,-1,-1,-1).
    #[arg(long, value_name = "FILE")]
    pub tracks_mot: Option<PathBuf>,
    /// Write tracks as JSON Lines: one line per frame with PTS, and per track ID, box, score, mask RLE.
    #[arg(long, value_name = "FILE")]
    pub tracks_json: Option<PathBuf>,
    /// Do not draw or encode a video (track files only).
    #[arg(long)]
    pub no_video: bool,
    /// Draw boxes and scores as well as masks, contours and IDs.
    #[arg(long)]
    pub show_boxes: bool,
    /// Capacity (frames) of each channel between pipeline stages [default: 4, or the config's].
    #[arg(long, value_name = "N")]
    pub channel_capacity: Option<usize>,
    /// Decode pipeline: a template file (pipelines/*.txt) or an inline gst-launch description
    /// with {uri}/{path} and an `appsink name=sink`.
    #[arg(long, value_name = "TEMPLATE")]
    pub decode_pipeline: Option<String>,
    /// Encode pipeline: a template file or an inline description with `appsrc name=src` and {output}.
    #[arg(long, value_name = "TEMPLATE")]
    pub encode_pipeline: Option<String>,
    /// Pipeline config file (see configs/pipeline.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    pub pipelines: Option<PathBuf>,
    /// Before the run, time the model alone on the first N frames (decoded into memory first) and
    /// report the end-to-end rate as a fraction of that raw inference rate.
    #[arg(long, value_name = "N")]
    pub bench_raw: Option<usize>,
    /// Treat the input as a live stream (drop frames when behind). Default: from the URI scheme.
    #[arg(long)]
    pub live: bool,
}

/// The default output: INPUT_STEM.tracked.mp4 next to a local input, in the current directory
/// for a URL.
pub fn default_output(input: &str) -> PathBuf {
    let local = !input.contains("://") || input.starts_with("file://");
    let path = Path::new(input.strip_prefix("file://").unwrap_or(input));
    let stem = path.file_stem().and_then(|s| s.to_str()).filter(|s| !s.is_empty()).unwrap_or("stream");
    let name = format!("{stem}.tracked.mp4");
    match path.parent() {
        Some(dir) if local => dir.join(name),
        _ => PathBuf::from(name),
    }
}

fn make_prompt(boxes: &[BBox], points: &[(f32, f32, bool)]) -> Option<Prompt> {
    match (boxes.is_empty(), points.is_empty()) {
        (true, true) => None,
        (false, true) => Some(Prompt::Boxes(boxes.to_vec())),
        (true, false) => Some(Prompt::Points(points.to_vec())),
        (false, false) => Some(Prompt::BoxesAndPoints(boxes.to_vec(), points.to_vec())),
    }
}

/// Install the Ctrl-C / SIGTERM handler: the first signal sets `stop`, the second aborts.
///
/// The abort is `_exit(130)`: the process ends at once, without `exit`'s atexit handlers and
/// library destructors (ONNX Runtime, GStreamer), which would otherwise run in this thread while
/// the stage threads still use those libraries (bogus errors, a half-torn-down encoder). Outputs
/// are left as a killed run leaves them: previous files intact, `*.partial` files on disk (the
/// MP4 one playable up to its last fragment).
fn install_stop_handler(stop: Arc<AtomicBool>) {
    let count = Arc::new(AtomicUsize::new(0));
    let res = ctrlc::set_handler(move || {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!("\nstopping: finishing the output file (press Ctrl-C again to abort)");
            stop.store(true, Ordering::SeqCst);
        } else {
            eprintln!("\naborted: partial outputs are left as *.partial files");
            // SAFETY: _exit only ends the process; nothing after it runs.
            unsafe { libc::_exit(130) };
        }
    });
    if let Err(e) = res {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
}

fn ms_per_frame(d: std::time::Duration, n: u64) -> f64 {
    if n == 0 { 0.0 } else { d.as_secs_f64() * 1e3 / n as f64 }
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some(input) = args.input.clone() else { bail!("no input given (fastsam-track INPUT)") };

    // Pipeline templates: config file, then flags.
    let file_cfg = match &args.pipelines {
        Some(p) => PipelinesFile::load(p)?,
        None => PipelinesFile::default(),
    };
    let decode_t = match &args.decode_pipeline {
        Some(t) => templates::load_template(t)?,
        None => file_cfg.decode.clone().unwrap_or_else(|| templates::DEFAULT_DECODE.to_string()),
    };
    let encode_t = match &args.encode_pipeline {
        Some(t) => Some(templates::load_template(t)?),
        None => file_cfg.encode.clone(),
    };
    let sink_cfg = match encode_t {
        Some(t) => SinkConfig { template: t, fallback: None, ..SinkConfig::default() },
        None => SinkConfig::default(),
    };
    let capacity = args.channel_capacity.or(file_cfg.channel_capacity).unwrap_or(4);
    if capacity == 0 {
        bail!("--channel-capacity must be at least 1");
    }

    let output = (!args.no_video).then(|| args.output.clone().unwrap_or_else(|| default_output(&input)));
    if let Some(out) = &output
        && Path::new(&input).canonicalize().ok().is_some_and(|i| out.canonicalize().ok() == Some(i))
    {
        bail!("the output {} is the input; choose another -o", out.display());
    }
    if args.no_video && args.tracks_mot.is_none() && args.tracks_json.is_none() {
        tracing::warn!("--no-video without --tracks-mot/--tracks-json: nothing will be written");
    }

    let mut tracker = match &args.tracker {
        Some(p) => TrackerConfig::from_toml_file(p).with_context(|| format!("tracker config {}", p.display()))?,
        // The product defaults, configs/bytetrack.toml as built in (not Ultralytics' values).
        None => TrackerConfig::product().context("built-in tracker config")?,
    };

    // Open the input first: bad input fails before a model is loaded or an output created.
    let src_cfg = SourceConfig { template: decode_t, live: args.live.then_some(true), ..SourceConfig::default() };
    let source = VideoSource::open(&input, &src_cfg)?;
    let info = source.info().clone();
    // Lost tracks are kept `track_buffer` frames at 30 fps, scaled to the input's real frame rate.
    if let Some(fps) = info.fps_f64().filter(|f| f.is_finite() && *f > 0.0) {
        tracker.frame_rate = fps;
    }

    let mut segmenter: Box<dyn Segmenter> = if args.null_model {
        eprintln!("model: none (--null-model: no detections)");
        Box::new(NullSegmenter)
    } else {
        let path = args.model.model_path()?;
        // retina masks by default for video: masks at the original resolution, as drawn
        let seg = FastSam::load(&path, args.model.options(true))
            .with_context(|| format!("loading model {}", path.display()))?;
        eprintln!("model: {} ({})", path.display(), seg.describe());
        Box::new(seg)
    };

    let raw = match args.bench_raw {
        Some(n) if n > 0 => {
            let mut seg = segmenter;
            let r = crate::video::bench::raw_inference(&input, &src_cfg, seg.as_mut(), n)?;
            eprintln!(
                "raw inference (model alone, {} frames in memory): {:.2} fps ({:.1} ms/frame)",
                r.frames,
                r.fps(),
                r.elapsed.as_secs_f64() * 1e3 / r.frames.max(1) as f64
            );
            segmenter = seg;
            Some(r)
        }
        _ => None,
    };

    let selector = make_prompt(&args.boxes, &args.points).map(|prompt| {
        Box::new(move |dets: &[crate::types::Detection], w: u32, h: u32| {
            select(dets, &prompt, w, h).map_err(crate::Error::from)
        }) as pipeline::FrameSelector
    });

    let overlay = OverlayStyle { show_boxes: args.show_boxes, show_scores: args.show_boxes, ..OverlayStyle::default() };
    let cfg = PipelineConfig {
        channel_capacity: capacity,
        tracker,
        overlay,
        output: output.clone(),
        sink: sink_cfg,
        tracks_mot: args.tracks_mot.clone(),
        tracks_json: args.tracks_json.clone(),
        selector,
    };

    eprintln!(
        "input: {} ({}x{}, {}{})",
        crate::video::redact_credentials(&input),
        info.width,
        info.height,
        info.fps_f64().map(|f| format!("{f:.2} fps")).unwrap_or_else(|| "unknown fps".into()),
        if info.live { ", live" } else { "" }
    );

    let stop = Arc::new(AtomicBool::new(false));
    install_stop_handler(stop.clone());

    let pb = match info.expected_frames().filter(|_| !info.live) {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} frames [{elapsed_precise}] {bar:30} {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let pbc = pb.clone();
    let progress = move |n: u64| pbc.set_position(n);
    let result = pipeline::run(source, segmenter, cfg, &stop, &progress);
    pb.finish_and_clear();
    let report = result?;

    let n = report.frames;
    let t = &report.times;
    eprintln!(
        "done: {} frames, {} tracks, {:.1} fps mean over {:.1} s, {} dropped",
        n,
        report.tracks,
        report.mean_fps(),
        report.elapsed.as_secs_f64(),
        report.dropped
    );
    eprintln!(
        "time per frame (ms): decode {:.2} | pre {:.2} | infer {:.2} | post {:.2} | track {:.2} | draw {:.2} | encode {:.2}",
        ms_per_frame(t.decode, n),
        ms_per_frame(t.pre, n),
        ms_per_frame(t.infer, n),
        ms_per_frame(t.post, n),
        ms_per_frame(t.track, n),
        ms_per_frame(t.draw, n),
        ms_per_frame(t.encode, n)
    );
    if let Some(r) = raw {
        eprintln!(
            "end-to-end: {:.2} fps steady (first to last frame) = {:.2} x raw inference ({:.2} fps)",
            report.steady_fps,
            if r.fps() > 0.0 { report.steady_fps / r.fps() } else { 0.0 },
            r.fps()
        );
    }
    if let Some(seeded) = &report.seeded_tracks {
        eprintln!("prompt: following track IDs {seeded:?}");
    }
    if let Some(out) = &output {
        eprintln!("output: {} ({} frames)", out.display(), report.frames_encoded);
    }
    for p in [&args.tracks_mot, &args.tracks_json].into_iter().flatten() {
        eprintln!("tracks: {}", p.display());
    }
    if report.interrupted {
        eprintln!("interrupted after {} frames; outputs were finalised", report.frames);
    }
    if let Some(e) = report.input_error {
        bail!(
            "{e}. The {} frames before it were processed{}",
            report.frames,
            output.map(|o| format!(" and {} was finalised", o.display())).unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_output_names() {
        assert_eq!(default_output("/data/clip.mp4"), PathBuf::from("/data/clip.tracked.mp4"));
        assert_eq!(default_output("clip.avi"), PathBuf::from("clip.tracked.mp4"));
        assert_eq!(default_output("rtsp://cam/live"), PathBuf::from("live.tracked.mp4"));
        assert_eq!(default_output("file:///v/a.mkv"), PathBuf::from("/v/a.tracked.mp4"));
    }
}
