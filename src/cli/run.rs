//! `fastsam-track INPUT...`: the main job. Parses the options, opens every input, loads the model
//! once, runs [`fastsam_track::video::pipeline::run_many`] (one stream per input, one shared
//! model) with progress bars and Ctrl-C handling, and prints a summary per stream plus a total.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::common::{ClipArgs, ModelArgs, parse_box, parse_point};
use fastsam_track::model::prompt::Prompt;
use fastsam_track::outputs::{OutputCheck, Role};
use fastsam_track::overlay::OverlayStyle;
use fastsam_track::stream::PromptSelector;
use fastsam_track::track::TrackerConfig;
use fastsam_track::types::{BBox, Segmenter};
use fastsam_track::video::job::{self, StreamOutputs, StreamSetup, Templates};
use fastsam_track::video::pipeline::SourceBox;
use fastsam_track::video::pipeline::{self, MultiReport, RunReport};
use fastsam_track::video::serve::{RtspServer, ServeAddr};
use fastsam_track::video::{
    NullSegmenter, PipelineConfig, ReconnectPolicy, RtspTransport, SourceConfig, redact_credentials,
};

/// Options of `fastsam-track INPUT...`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Inputs: video files, file:// or http(s):// URIs, rtsp:// URLs. Several inputs run as
    /// separate streams (own tracker and IDs, own outputs) that share one model.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// A text file listing more inputs, one per line (blank lines and # comments ignored).
    #[arg(long, value_name = "FILE")]
    pub sources: Option<PathBuf>,
    /// Output video (MP4). Default: INPUT_STEM.tracked.mp4 next to each input. With several
    /// inputs: a directory (ending in /) or a name containing {stem}.
    #[arg(short, long, value_name = "OUT.mp4")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Follow the objects --text describes: each new track is scored by CLIP when it appears.
    #[command(flatten)]
    pub clip: ClipArgs,
    /// With --text: re-score each track every K frames (objects turn, light changes), spread so
    /// that one frame re-scores at most 1/K of the tracks; default: score a track only when it
    /// appears, so CLIP never runs on every object of every frame.
    #[arg(long, value_name = "K", requires = "texts")]
    pub text_every: Option<u64>,
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
    /// Write tracks in MOTChallenge format (frame,id,x,y,w,h,score,-1,-1,-1). With several
    /// inputs: a directory (ending in /) or a name containing {stem}.
    #[arg(long, value_name = "FILE")]
    pub tracks_mot: Option<PathBuf>,
    /// Write tracks as JSON Lines: one line per frame with PTS, and per track ID, box, score, mask
    /// RLE. `-` writes them to standard output, flushed after every frame (follow a live stream
    /// from another program). With several inputs: a directory (ending in /) or a name
    /// containing {stem}.
    #[arg(long, value_name = "FILE")]
    pub tracks_json: Option<PathBuf>,
    /// Do not write a video file (track files only; with --serve, the served stream only).
    #[arg(long)]
    pub no_video: bool,
    /// Serve the overlay stream over RTSP at this URL, e.g. rtsp://127.0.0.1:8554/fastsam (several
    /// clients at once; binds the address given: 127.0.0.1 stays on this machine, 0.0.0.0 opens
    /// it to the network). With several inputs each stream is at URL/STEM. No video file is
    /// written unless -o is given.
    #[arg(long, value_name = "URL", value_parser = parse_serve)]
    pub serve: Option<ServeAddr>,
    /// Draw boxes and scores as well as masks, contours and IDs.
    #[arg(long)]
    pub show_boxes: bool,
    /// Capacity (frames) of each channel between pipeline stages [default: 4, or the config's].
    #[arg(long, value_name = "N")]
    pub channel_capacity: Option<usize>,
    /// Most frames per inference call, gathered across streams. Batching pays on a GPU; on a CPU
    /// ONNX Runtime already uses every core for one frame.
    #[arg(long, value_name = "N", default_value_t = PipelineConfig::default().batch)]
    pub batch: usize,
    /// How long the batching stage waits for more frames after the first of a batch.
    #[arg(long, value_name = "MS", default_value_t = PipelineConfig::default().batch_timeout.as_millis() as u64)]
    pub batch_timeout_ms: u64,
    /// Inference workers: copies of the model that run frames side by side, so that one frame's
    /// pre- and post-processing overlaps another's inference (most useful with several inputs).
    /// Unless --threads is given, the cores are shared out among the workers.
    #[arg(long, value_name = "N", default_value_t = PipelineConfig::default().workers)]
    pub workers: usize,
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
    /// Before the run, time the model alone on the first N frames of the first input (decoded
    /// into memory first) and report the end-to-end rate as a fraction of that raw rate.
    #[arg(long, value_name = "N")]
    pub bench_raw: Option<usize>,
    /// Treat the inputs as live streams (drop frames when behind). Default: from the URI scheme.
    #[arg(long)]
    pub live: bool,
    /// A network input that delivers no frame for this many seconds has stalled: a live input
    /// reconnects, any other fails (naming the host).
    #[arg(long, value_name = "SECONDS", default_value_t = fastsam_track::video::source::DEFAULT_STALL_TIMEOUT.as_secs_f64())]
    pub stall_timeout: f64,
    /// RTSP transport: tcp (through firewalls, no loss), udp (lowest latency) or auto (UDP, then
    /// TCP).
    #[arg(long, value_name = "T", default_value_t = SourceConfig::default().rtsp_transport)]
    pub rtsp_transport: RtspTransport,
    /// Network jitter buffer of RTSP inputs, in milliseconds (added to the latency).
    #[arg(long, value_name = "MS", default_value_t = SourceConfig::default().latency.as_millis() as u64)]
    pub latency_ms: u64,
    /// Live inputs reconnect after an outage (end of stream, error, or no frame for
    /// --stall-timeout), waiting 0.5 s, then twice as long each time up to 30 s. Give up after N
    /// failed attempts in a row (default: never give up). The first connection is not retried.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// A live input's video (-o) is recorded in segments of this many seconds, each named by its
    /// start time (OUT-20261203T081500Z.mp4) and complete once closed: a crash loses at most the
    /// open segment (written as *.mp4.partial). 0 records one file.
    #[arg(long, value_name = "SECONDS", default_value_t = job::DEFAULT_SEGMENT.as_secs_f64())]
    pub segment_seconds: f64,
}

fn parse_serve(s: &str) -> Result<ServeAddr, String> {
    s.parse::<ServeAddr>().map_err(|e| e.to_string())
}

/// The inputs from the command line and `--sources`.
fn collect_inputs(args: &RunArgs) -> anyhow::Result<Vec<String>> {
    let mut inputs = args.inputs.clone();
    if let Some(list) = &args.sources {
        let text =
            std::fs::read_to_string(list).with_context(|| format!("cannot read --sources {}", list.display()))?;
        inputs.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string));
    }
    if inputs.is_empty() {
        bail!("no input given: fastsam-track INPUT... (or --sources FILE); see fastsam-track --help");
    }
    Ok(inputs)
}

/// Each input's outputs, named per stream when there are several.
fn plan_outputs(args: &RunArgs, inputs: &[String]) -> anyhow::Result<Vec<StreamOutputs>> {
    let n = inputs.len();
    if n > 1 {
        job::check_unique_stems(inputs)?;
    }
    let mut plans = Vec::with_capacity(n);
    for input in inputs {
        let per = |p: &Option<PathBuf>, what, suffix| {
            p.as_deref().map(|p| job::per_stream_path(p, input, n, what, suffix)).transpose()
        };
        // With --serve, a file is written only when -o asks for one.
        let video = if args.no_video || (args.serve.is_some() && args.output.is_none()) {
            None
        } else {
            Some(per(&args.output, "-o", ".tracked.mp4")?.unwrap_or_else(|| job::default_output(input)))
        };
        let tracks_mot = per(&args.tracks_mot, "--tracks-mot", ".txt")?;
        let tracks_json = per(&args.tracks_json, "--tracks-json", ".jsonl")?;
        let serve_path = args
            .serve
            .as_ref()
            .map(|a| if n > 1 { format!("{}/{}", a.path, job::stem_of(input)) } else { a.path.clone() });
        plans.push(StreamOutputs { video, tracks_mot, tracks_json, serve_path });
    }
    if args.no_video && args.serve.is_none() && args.tracks_mot.is_none() && args.tracks_json.is_none() {
        tracing::warn!("--no-video without --tracks-mot/--tracks-json: nothing will be written");
    }
    check_outputs(args, inputs, &plans)?;
    Ok(plans)
}

/// No output may be an input (videos, model, CLIP files, configs, the sources list) or another output,
/// through a `file://` URI, a symlink or a hard link; output directories must be writable.
/// Runs before anything is opened for writing and before the model loads (exit 2 on a clash).
fn check_outputs(args: &RunArgs, inputs: &[String], plans: &[StreamOutputs]) -> anyhow::Result<()> {
    let mut check = OutputCheck::new()
        .maybe_input(Role::TrackerConfig, args.tracker.as_ref())
        .maybe_input(Role::PipelineConfig, args.pipelines.as_ref())
        .maybe_input(Role::PipelineConfig, args.sources.as_ref());
    for t in [&args.decode_pipeline, &args.encode_pipeline].into_iter().flatten() {
        if Path::new(t).is_file() {
            check.push_input(Role::PipelineConfig, t);
        }
    }
    // A model named by path (names like FastSAM-s resolve into the cache).
    if let Some(m) = args.model.model.as_deref().filter(|m| Path::new(m).exists()) {
        check.push_input(Role::Model, m);
    }
    for input in inputs {
        check.push_input(Role::InputVideo, input);
    }
    // The CLIP files of a text prompt (issue 12).
    for (role, path) in [
        (Role::Other("the CLIP image encoder (--clip-image)"), &args.clip.clip_image),
        (Role::Other("the CLIP text encoder (--clip-text)"), &args.clip.clip_text),
        (Role::Other("the CLIP vocabulary (--clip-vocab)"), &args.clip.clip_vocab),
    ] {
        if let Some(p) = path {
            check.push_input(role, p);
        }
    }
    for plan in plans {
        for (role, path) in [
            (Role::OutputVideo, &plan.video),
            (Role::TracksMot, &plan.tracks_mot),
            (Role::TracksJson, &plan.tracks_json),
        ] {
            // `-` is standard output, not a file
            if let Some(p) = path.as_ref().filter(|p| p.as_os_str() != fastsam_track::export::STDOUT) {
                check.push_output(role, p);
            }
        }
    }
    if plans
        .iter()
        .any(|p| [&p.tracks_mot, &p.tracks_json].iter().all(|t| t.as_ref().is_some_and(|t| t.as_os_str() == "-")))
    {
        bail!(super::UsageError(
            "--tracks-mot - and --tracks-json - both write to standard output: choose one (give the other a file)"
                .into()
        ));
    }
    check.check()?;
    Ok(())
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

fn ms_per_frame(d: Duration, n: u64) -> f64 {
    if n == 0 { 0.0 } else { d.as_secs_f64() * 1e3 / n as f64 }
}

type SegmenterBox = Box<dyn Segmenter>;

/// One model instance (or null segmenter) per inference worker, and the raw-inference rate when
/// `--bench-raw` asks.
fn load_segmenters(
    args: &RunArgs,
    tracker: &TrackerConfig,
    first: &str,
    templates: &Templates,
) -> anyhow::Result<(Vec<SegmenterBox>, Option<f64>)> {
    let workers = args.workers;
    let mut segmenters: Vec<SegmenterBox> = Vec::with_capacity(workers);
    if args.null_model {
        eprintln!("model: none (--null-model: no detections)");
        segmenters.extend((0..workers).map(|_| Box::new(NullSegmenter) as Box<dyn Segmenter>));
    } else {
        let path = args.model.model_path_for(&[first])?;
        // retina masks by default for video: masks at the original resolution, as drawn
        let mut opts = args.model.options(true);
        // Tracking: the detector keeps what the tracker can use (its low threshold), unless --conf.
        if args.model.conf.is_none() {
            opts.conf = tracker.track_low_thresh;
        }
        if opts.intra_threads.is_none() && workers > 1 {
            opts.intra_threads = Some(fastsam_track::engine::threads_per_worker(workers));
        }
        for _ in 0..workers {
            segmenters.push(Box::new(args.model.load_path(&path, opts.clone())?));
        }
        let threads = opts.intra_threads.map(|t| format!(", {t} threads each")).unwrap_or_default();
        let desc = segmenters.first().map(|s| s.describe()).unwrap_or_default();
        let copies = if workers > 1 { format!(" ({workers} inference workers{threads})") } else { String::new() };
        eprintln!("model: {desc}{copies}");
    }
    let raw = match args.bench_raw {
        Some(n) if n > 0 => {
            let mut workers: Vec<&mut dyn Segmenter> =
                segmenters.iter_mut().map(|s| s.as_mut() as &mut dyn Segmenter).collect();
            let r = fastsam_track::video::bench::raw_inference(first, &templates.source, &mut workers, n)?;
            eprintln!(
                "raw inference (model alone, {} frames in memory, {} worker{}): {:.2} fps ({:.1} ms/frame)",
                r.frames,
                workers.len(),
                if workers.len() == 1 { "" } else { "s" },
                r.fps(),
                r.elapsed.as_secs_f64() * 1e3 / r.frames.max(1) as f64
            );
            Some(r.fps())
        }
        _ => None,
    };
    Ok((segmenters, raw))
}

/// Open every input (live ones reconnect after outages, see `--max-retries`).
fn open_inputs(args: &RunArgs, inputs: &[String], templates: &Templates) -> anyhow::Result<Vec<SourceBox>> {
    let src_cfg = SourceConfig {
        live: args.live.then_some(true),
        stall_timeout: Duration::from_secs_f64(args.stall_timeout),
        rtsp_transport: args.rtsp_transport,
        latency: Duration::from_millis(args.latency_ms),
        ..templates.source.clone()
    };
    let policy = ReconnectPolicy { max_retries: args.max_retries, ..ReconnectPolicy::default() };
    let mut sources = Vec::with_capacity(inputs.len());
    for input in inputs {
        let source = job::open_source(input, &src_cfg, policy)
            .with_context(|| format!("opening {}", redact_credentials(input)))?;
        let info = source.info();
        eprintln!(
            "input: {} ({}x{}, {}{})",
            redact_credentials(input),
            info.width,
            info.height,
            info.fps_f64().map(|f| format!("{f:.2} fps")).unwrap_or_else(|| "unknown fps".into()),
            if info.live { ", live: newest frame first, reconnects after outages" } else { "" }
        );
        sources.push(source);
    }
    Ok(sources)
}

/// One progress bar per stream (frame count when the length is known, else a spinner).
fn progress_bars(sources: &[SourceBox], names: &[String]) -> (MultiProgress, Vec<ProgressBar>) {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix} {spinner} {pos}/{len} frames [{elapsed_precise}] {bar:30} {per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bars = sources
        .iter()
        .zip(names)
        .map(|(s, name)| {
            let info = s.info();
            let pb = match info.expected_frames().filter(|_| !info.live) {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            pb.set_style(style.clone());
            if sources.len() > 1 {
                pb.set_prefix(name.clone());
            }
            multi.add(pb)
        })
        .collect();
    (multi, bars)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let inputs = collect_inputs(&args)?;
    let templates = Templates::resolve(
        args.pipelines.as_deref(),
        args.decode_pipeline.as_deref(),
        args.encode_pipeline.as_deref(),
    )?;
    let defaults = PipelineConfig::default();
    let capacity = args.channel_capacity.or(templates.channel_capacity).unwrap_or(defaults.channel_capacity);
    if capacity == 0 {
        bail!("--channel-capacity must be at least 1");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.workers == 0 {
        bail!(super::UsageError("--workers must be at least 1 (one inference worker per copy of the model)".into()));
    }
    let pcfg = PipelineConfig {
        channel_capacity: capacity,
        batch: args.batch,
        batch_timeout: Duration::from_millis(args.batch_timeout_ms),
        workers: args.workers,
    };
    let plans = plan_outputs(&args, &inputs)?;
    for out in plans.iter().filter_map(|p| p.video.as_ref()) {
        fastsam_track::video::VideoSink::preflight(out, &templates.sink)?;
    }
    if !(args.segment_seconds.is_finite() && args.segment_seconds >= 0.0) {
        bail!(super::UsageError(format!(
            "--segment-seconds {} must be a number of seconds (0: one file)",
            args.segment_seconds
        )));
    }
    if !(args.stall_timeout.is_finite() && args.stall_timeout > 0.0) {
        bail!(super::UsageError(format!(
            "--stall-timeout {} must be a positive number of seconds",
            args.stall_timeout
        )));
    }
    let tracker = match &args.tracker {
        Some(p) => TrackerConfig::from_toml_file(p).with_context(|| format!("tracker config {}", p.display()))?,
        // The product defaults, configs/bytetrack.toml as built in (not Ultralytics' values).
        None => TrackerConfig::product().context("built-in tracker config")?,
    };

    if args.text_every == Some(0) {
        bail!(super::UsageError("--text-every must be at least 1 frame".into()));
    }
    // Open the inputs first: bad input fails before a model is loaded or an output created.
    let sources = open_inputs(&args, &inputs, &templates)?;
    // CLIP before FastSAM: a bad text prompt or encoder fails before the big model loads. One CLIP
    // model serves every stream.
    let clip = if args.clip.active() {
        let model = args.clip.load(&args.model.options(true).engine_config())?;
        let shared = Arc::new(std::sync::Mutex::new(model));
        // check the prompts once (empty prompts are usage errors)
        fastsam_track::clip::TextSelector::new(shared.clone(), args.clip.texts.clone(), args.clip.config())
            .map_err(|e| super::UsageError(e.to_string()))?;
        Some(shared)
    } else {
        None
    };
    let (mut segmenters, raw) = load_segmenters(&args, &tracker, &inputs[0], &templates)?;

    let names: Vec<String> =
        inputs.iter().map(|i| if inputs.len() > 1 { job::stem_of(i) } else { redact_credentials(i) }).collect();
    let (_multi, bars) = progress_bars(&sources, &names);
    let overlay = OverlayStyle { show_boxes: args.show_boxes, show_scores: args.show_boxes, ..OverlayStyle::default() };
    let segment = (args.segment_seconds > 0.0).then(|| Duration::from_secs_f64(args.segment_seconds));
    let server = args.serve.as_ref().map(RtspServer::start).transpose()?;
    let setup =
        StreamSetup { tracker: &tracker, overlay: &overlay, sink: &templates.sink, segment, serve: server.as_ref() };
    let prompt = Prompt::from_parts(&args.boxes, &args.points);
    let mut streams = Vec::with_capacity(inputs.len());
    for ((source, plan), name) in sources.into_iter().zip(&plans).zip(&names) {
        let selector = prompt.clone().map(|p| Box::new(p) as Box<dyn PromptSelector>);
        let mut stream = job::build_stream(name.clone(), source, selector, plan, &setup)?;
        if let Some(shared) = &clip {
            let sel =
                fastsam_track::clip::TextSelector::new(shared.clone(), args.clip.texts.clone(), args.clip.config())?;
            let scoring = fastsam_track::stream::TextScoring { every: args.text_every };
            stream.processor.set_text_scorer(Box::new(sel), scoring);
        }
        streams.push(stream);
    }

    let stop = Arc::new(AtomicBool::new(false));
    install_stop_handler(stop.clone());
    let progress = |i: usize, p: pipeline::Progress| {
        if let Some(b) = bars.get(i) {
            b.set_position(p.done);
            if p.dropped > 0 || p.reconnects > 0 {
                b.set_message(format!("({} dropped, {} reconnects)", p.dropped, p.reconnects));
            }
        }
    };
    let mut workers: Vec<&mut dyn Segmenter> =
        segmenters.iter_mut().map(|s| s.as_mut() as &mut dyn Segmenter).collect();
    let result = pipeline::run_many(streams, &mut workers, &pcfg, &stop, &progress);
    for b in &bars {
        b.finish_and_clear();
    }
    let report = result?;
    summarize(&report, &plans, raw, segment, args.serve.as_ref())
}

fn print_stream(
    r: &RunReport,
    plan: &StreamOutputs,
    prefix: &str,
    segment: Option<Duration>,
    serve: Option<&ServeAddr>,
) {
    let n = r.frames;
    let t = &r.times;
    eprintln!(
        "{prefix}done: {} frames, {} tracks, {:.1} fps mean over {:.1} s, {} dropped{}",
        n,
        r.tracks,
        r.mean_fps(),
        r.elapsed.as_secs_f64(),
        r.dropped,
        if r.reconnects > 0 { format!(", {} reconnects", r.reconnects) } else { String::new() }
    );
    eprintln!(
        "{prefix}time per frame (ms): decode {:.2} | pre {:.2} | infer {:.2} | post {:.2} | track {:.2} | draw {:.2} | encode {:.2}",
        ms_per_frame(t.decode, n),
        ms_per_frame(t.pre, n),
        ms_per_frame(t.infer, n),
        ms_per_frame(t.post, n),
        ms_per_frame(t.track, n),
        ms_per_frame(t.draw, n),
        ms_per_frame(t.encode, n)
    );
    if let Some(seeded) = &r.seeded_tracks {
        eprintln!("{prefix}prompt: following track IDs {seeded:?}");
    }
    match &plan.video {
        Some(out) if r.live && segment.is_some() => {
            let stem = out.with_extension("");
            eprintln!(
                "{prefix}output: {}-<start time>.mp4, segments of {:.0} s ({} frames)",
                stem.display(),
                segment.map_or(0.0, |d| d.as_secs_f64()),
                r.frames_encoded
            );
        }
        Some(out) => eprintln!("{prefix}output: {} ({} frames)", out.display(), r.frames_encoded),
        None => {}
    }
    if let (Some(path), Some(url)) = (&plan.serve_path, serve) {
        eprintln!("{prefix}served: {}", ServeAddr { path: path.clone(), ..url.clone() });
    }
    for p in [&plan.tracks_mot, &plan.tracks_json].into_iter().flatten() {
        eprintln!("{prefix}tracks: {}", p.display());
    }
    if r.interrupted {
        eprintln!("{prefix}interrupted after {} frames; outputs were finalised", r.frames);
    }
}

/// Print each stream's summary and the total; fail when a stream or the model failed.
fn summarize(
    report: &MultiReport,
    plans: &[StreamOutputs],
    raw: Option<f64>,
    segment: Option<Duration>,
    serve: Option<&ServeAddr>,
) -> anyhow::Result<()> {
    let many = report.streams.len() > 1;
    for (r, plan) in report.streams.iter().zip(plans) {
        let prefix = if many { format!("[{}] ", r.name) } else { String::new() };
        print_stream(r, plan, &prefix, segment, serve);
    }
    if many {
        eprintln!(
            "total: {} streams, {} frames, {:.2} fps aggregate over {:.1} s, {:.2} frames per inference call",
            report.streams.len(),
            report.frames(),
            report.fps(),
            report.elapsed.as_secs_f64(),
            report.mean_batch()
        );
    }
    if let (Some(raw), Some(first)) = (raw, report.streams.first()) {
        let steady = if many { report.fps() } else { first.steady_fps };
        eprintln!(
            "end-to-end: {steady:.2} fps steady (first to last frame) = {:.2} x raw inference ({raw:.2} fps)",
            if raw > 0.0 { steady / raw } else { 0.0 }
        );
    }
    if let Some(e) = &report.model_error {
        bail!("{e}");
    }
    let mut failed = Vec::new();
    for (r, plan) in report.streams.iter().zip(plans) {
        if let Some(e) = r.error.as_ref().or(r.input_error.as_ref()) {
            let kept = plan.video.as_ref().map(|o| format!(" and {} was finalised", o.display())).unwrap_or_default();
            let prefix = if many { format!("{}: ", r.name) } else { String::new() };
            failed.push(format!("{prefix}{e}. The {} frames before it were processed{kept}", r.frames));
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}
