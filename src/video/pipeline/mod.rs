//! The threaded pipeline: N streams share one model.
//!
//! ```text
//!  stream i: source ─► decode ─┐                      ┌─ worker 0 ─┐         ┌─► track ─► draw ─► encode ─► sink
//!  stream j: source ─► decode ─┼─► shared channel ────┤            ├─ route ─┼─► track ─► draw ─► encode ─► sink
//!                              │   (--batch, deadline) └─ worker 1 ─┘ (order) │   (one StreamProcessor per stream)
//! ```
//!
//! Each stage runs on its own thread; stages are connected by bounded crossbeam channels of
//! capacity [`PipelineConfig::channel_capacity`], so a slow stage blocks the ones before it
//! (backpressure) and memory stays bounded. File input never drops a frame (blocking sends); live
//! input uses `try_send` from its decoder and counts the frames it drops. Frame buffers travel
//! through the stages and go back to a [`FramePool`] after encoding.
//!
//! The segment stage ([`segment`]) has one worker thread per segmenter given to [`run_many`]
//! ([`PipelineConfig::workers`] in the CLI). Each worker gathers up to [`PipelineConfig::batch`]
//! frames (from any streams), waiting at most [`PipelineConfig::batch_timeout`] after the first,
//! runs them in one [`Segmenter::segment_batch`] call per frame size, and hands each result to a
//! router that restores every stream's decode order. Each stream's track stage owns its
//! [`StreamProcessor`] (tracker, prompt, followed IDs) and its track files.
//!
//! Stopping: when `stop` is set (Ctrl-C), the decoders stop reading, the stages drain what is in
//! flight, the sinks finalise (a playable MP4, flushed track files). A stream that ends or fails
//! does not stop the others: its failing stage drops its input channel, which halts that stream's
//! decoder; the stages after it drain and finalise. A model error stops every stream.

mod segment;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use serde::Serialize;

use self::segment::{BatchPolicy, Job, Latest, Router};
use super::{Frame, FramePool, VideoError};
use crate::export::ExportError;
use crate::overlay::{Overlay, OverlayItem, OverlayStyle};
use crate::stream::{FrameMeta, FrameResult, FrameSink, FrameSource, ResultSink, StreamProcessor};
use crate::types::{Detection, PixelFormat, SegmentTimings, Segmenter};

/// A stream's frame source, as the pipeline takes it.
pub type SourceBox = Box<dyn FrameSource<Error = VideoError>>;
/// A stream's video output.
pub type SinkBox = Box<dyn FrameSink<Error = VideoError>>;
/// A stream's track-file output.
pub type ResultSinkBox = Box<dyn ResultSink<Error = ExportError>>;

/// One stream of a run: where frames come from, its per-stream core, where results go.
pub struct Stream {
    /// Shown in logs and the summary (credentials already redacted).
    pub name: String,
    pub source: SourceBox,
    pub processor: StreamProcessor,
    /// Overlay video; `None` skips drawing and encoding.
    pub video: Option<SinkBox>,
    pub results: Vec<ResultSinkBox>,
    pub overlay: OverlayStyle,
}

/// How the pipeline runs (shared by every stream).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Capacity (frames) of each channel between stages.
    pub channel_capacity: usize,
    /// Most frames in one inference call.
    pub batch: usize,
    /// After the first frame of a batch, how long to wait for more (zero: take what is queued).
    pub batch_timeout: Duration,
    /// Inference workers: instances of the model that run frames side by side (the caller loads
    /// one segmenter per worker and passes them to [`run_many`]). With 2 or more, one frame's
    /// pre- and post-processing overlaps another's inference.
    pub workers: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self { channel_capacity: 4, batch: 1, batch_timeout: Duration::from_millis(10), workers: default_workers() }
    }
}

/// Two inference workers where there are at least two cores (measured in BENCHMARKS.md: on 2
/// cores, two 1-thread workers run FastSAM-n 25-60% faster than one 2-thread worker, because
/// ONNX Runtime leaves a core idle in its single-threaded operators and in our pre- and
/// post-processing), one otherwise.
pub fn default_workers() -> usize {
    if std::thread::available_parallelism().map_or(1, |c| c.get()) >= 2 { 2 } else { 1 }
}

/// A stream's progress, as the progress callback of [`run_many`] gets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Frames through every stage.
    pub done: u64,
    /// Live frames dropped so far (a newer frame replaced them).
    pub dropped: u64,
    /// Outages the input recovered from so far.
    pub reconnects: u64,
}

#[derive(Default)]
struct LiveCounters {
    dropped: std::sync::atomic::AtomicU64,
    reconnects: std::sync::atomic::AtomicU64,
}

/// Busy time per stage, summed over the run (waiting on channels excluded).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimes {
    /// Waiting for and copying decoded frames.
    pub decode: Duration,
    /// Pre-processing, inference, post-processing: a batch's time is shared among its frames.
    pub pre: Duration,
    pub infer: Duration,
    pub post: Duration,
    /// Tracker update, prompt selection and track-file writing.
    pub track: Duration,
    pub draw: Duration,
    /// Copying into the encoder and waiting for it (appsrc blocks when the encoder lags).
    pub encode: Duration,
}

/// The outcome of one stream.
#[derive(Debug)]
pub struct RunReport {
    pub name: String,
    /// Frames that went through every stage.
    pub frames: u64,
    /// Frames decoded (including dropped ones).
    pub frames_decoded: u64,
    /// Frames written to the output video.
    pub frames_encoded: u64,
    /// Live frames dropped because the pipeline was behind (a newer frame replaced them).
    pub dropped: u64,
    /// Outages the input recovered from by reconnecting.
    pub reconnects: u64,
    /// The input was live (newest frame first; its video recorded in segments when asked).
    pub live: bool,
    /// Distinct track IDs exported/drawn.
    pub tracks: u64,
    /// Track IDs seeded by the prompt on the first frame (`None` without a prompt).
    pub seeded_tracks: Option<Vec<u64>>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Frames per second between the stream's first and last finished frame (start-up excluded).
    pub steady_fps: f64,
    pub times: StageTimes,
    /// Stopped by the stop flag (Ctrl-C) before the end of the input.
    pub interrupted: bool,
    /// A decode error mid-stream: the frames before it were processed and the output finalised.
    pub input_error: Option<VideoError>,
    /// A failure of this stream's own stages (track files, drawing, encoding, prompt).
    pub error: Option<VideoError>,
    /// The encode pipeline used.
    pub encoder: Option<String>,
    /// Frame buffers allocated during the run, all streams together.
    pub buffer_allocations: u64,
}

impl RunReport {
    pub fn mean_fps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.frames as f64 / s } else { 0.0 }
    }
}

/// The outcome of a run of several streams.
#[derive(Debug)]
pub struct MultiReport {
    pub streams: Vec<RunReport>,
    pub elapsed: Duration,
    /// A failure of the shared model stage (it stops every stream).
    pub model_error: Option<VideoError>,
    /// Inference calls and the frames they carried.
    pub batches: u64,
    pub batched_frames: u64,
}

impl MultiReport {
    /// Frames through every stage, all streams together.
    pub fn frames(&self) -> u64 {
        self.streams.iter().map(|s| s.frames).sum()
    }
    /// Aggregate frames per second over the whole run.
    pub fn fps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.frames() as f64 / s } else { 0.0 }
    }
    /// Mean frames per inference call.
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 { 0.0 } else { self.batched_frames as f64 / self.batches as f64 }
    }
}

/// Run one stream until its input ends or `stop` is set. `progress` gets the number of finished
/// frames. Any error of the stream or the model is returned; a mid-stream decode error is in
/// [`RunReport::input_error`] (the output was finalised with the frames before it).
pub fn run(
    stream: Stream,
    segmenter: &mut dyn Segmenter,
    cfg: &PipelineConfig,
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RunReport, VideoError> {
    let mut report = run_many(vec![stream], &mut [segmenter], cfg, stop, &|_, p| progress(p.done))?;
    let mut one = report.streams.pop().ok_or_else(|| VideoError::Other("the run lost its stream".into()))?;
    if let Some(e) = report.model_error.take().or_else(|| one.error.take()) {
        return Err(e);
    }
    Ok(one)
}

/// Run several streams with one shared model (see the module docs). Each of `segmenters` is one
/// inference worker (instances of the same model; one is enough, more overlap one frame's pre- and
/// post-processing with another's inference). `progress` gets a stream's index and its
/// [`Progress`]. Per-stream failures are in each [`RunReport`]; a model failure is in
/// [`MultiReport::model_error`].
pub fn run_many(
    streams: Vec<Stream>,
    segmenters: &mut [&mut dyn Segmenter],
    cfg: &PipelineConfig,
    stop: &AtomicBool,
    progress: &(dyn Fn(usize, Progress) + Sync),
) -> Result<MultiReport, VideoError> {
    if streams.is_empty() {
        return Err(VideoError::Other("no stream to run".into()));
    }
    if segmenters.is_empty() {
        return Err(VideoError::Other("no inference worker (segmenter) to run the streams with".into()));
    }
    let started = Instant::now();
    let cap = cfg.channel_capacity.max(1);
    let n = streams.len();
    // Frames in flight: every channel full + one per stage, plus slack.
    let pool = FramePool::new(n * (4 * cap + 8) + cfg.batch * segmenters.len());
    let halts: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let clocks: Vec<DoneClock> = (0..n).map(|_| DoneClock::default()).collect();
    let counters: Vec<LiveCounters> = (0..n).map(|_| LiveCounters::default()).collect();
    let (job_tx, job_rx) = bounded::<Job>(cap * n);

    let policy = BatchPolicy { max: cfg.batch, timeout: cfg.batch_timeout };

    let (seg_txs, seg_rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| bounded::<Segmented>(cap)).unzip();
    let router = Router::new(seg_txs, &halts, &pool);

    let (outcomes, batch) = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(n);
        for (i, (st, seg_rx)) in streams.into_iter().zip(seg_rxs).enumerate() {
            let ctx = StreamCtx {
                index: i,
                pool: &pool,
                stop,
                halt: &halts[i],
                clock: &clocks[i],
                progress,
                live: &counters[i],
            };
            let latest = &router.latest[i];
            handles.push(spawn_stream(s, st, ctx, job_tx.clone(), seg_rx, cap, latest));
        }
        drop(job_tx);
        let batch = segment::run_stage(job_rx, &router, segmenters, policy, n);
        let outcomes: Vec<StreamOutcome> =
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| StreamOutcome::panicked())).collect();
        (outcomes, batch)
    });

    let elapsed = started.elapsed();
    let interrupted = stop.load(Ordering::Relaxed);
    let allocations = pool.allocations();
    let streams = outcomes
        .into_iter()
        .zip(clocks)
        .zip(batch.times.iter())
        .map(|((o, clock), t)| o.into_report(clock, *t, elapsed, interrupted, allocations))
        .collect();
    Ok(MultiReport { streams, elapsed, model_error: batch.error, batches: batch.batches, batched_frames: batch.frames })
}

struct Segmented {
    frame: Frame,
    dets: Vec<Detection>,
}

struct Tracked {
    frame: Frame,
    result: FrameResult,
}

/// First and last finished frame of a stream, for its steady-state rate.
#[derive(Default)]
struct DoneClock(Mutex<(Option<Instant>, Option<Instant>)>);

impl DoneClock {
    fn tick(&self) {
        if let Ok(mut g) = self.0.lock() {
            let now = Instant::now();
            g.0.get_or_insert(now);
            g.1 = Some(now);
        }
    }
    fn steady_fps(self, frames: u64) -> f64 {
        match self.0.into_inner().ok() {
            Some((Some(a), Some(b))) if frames > 1 && b > a => (frames - 1) as f64 / (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// What a stream's threads share with the run.
#[derive(Clone, Copy)]
struct StreamCtx<'a> {
    index: usize,
    pool: &'a FramePool,
    stop: &'a AtomicBool,
    /// Set when the stream's own stages are gone: its decoder stops.
    halt: &'a AtomicBool,
    clock: &'a DoneClock,
    progress: &'a (dyn Fn(usize, Progress) + Sync),
    /// Live frames dropped and reconnects so far (written by the decoder).
    live: &'a LiveCounters,
}

impl StreamCtx<'_> {
    fn done(&self, n: u64) {
        self.clock.tick();
        let p = Progress {
            done: n,
            dropped: self.live.dropped.load(Ordering::Relaxed),
            reconnects: self.live.reconnects.load(Ordering::Relaxed),
        };
        (self.progress)(self.index, p);
    }
}

/// Everything a stream's threads hand back.
struct StreamOutcome {
    name: String,
    decode: DecodeStats,
    processor: Option<StreamProcessor>,
    track_busy: Duration,
    draw_busy: Duration,
    encode_busy: Duration,
    frames: u64,
    frames_encoded: u64,
    encoder: Option<String>,
    error: Option<VideoError>,
    expected_frames: Option<u64>,
    live: bool,
}

impl StreamOutcome {
    fn panicked() -> Self {
        StreamOutcome {
            name: String::new(),
            decode: DecodeStats::default(),
            processor: None,
            track_busy: Duration::ZERO,
            draw_busy: Duration::ZERO,
            encode_busy: Duration::ZERO,
            frames: 0,
            frames_encoded: 0,
            encoder: None,
            error: Some(VideoError::Other("a stream thread panicked".into())),
            expected_frames: None,
            live: false,
        }
    }

    fn into_report(
        self,
        clock: DoneClock,
        seg: SegmentTimings,
        elapsed: Duration,
        interrupted: bool,
        buffer_allocations: u64,
    ) -> RunReport {
        let mut input_error = self.decode.error;
        if let (None, false, Some(expected)) = (&input_error, interrupted, self.expected_frames) {
            // A truncated file often just ends early without a decoder error: compare with what the
            // container announced (tolerance for rounding in duration × fps).
            let decoded = self.decode.frames_read;
            if decoded + 2 + expected / 50 < expected {
                input_error = Some(VideoError::Truncated { decoded, expected });
            }
        }
        if let Some(e) = &input_error {
            tracing::error!("{}: {e}", self.name);
        }
        let times = StageTimes {
            decode: self.decode.busy,
            pre: seg.pre,
            infer: seg.infer,
            post: seg.post,
            track: self.track_busy,
            draw: self.draw_busy,
            encode: self.encode_busy,
        };
        RunReport {
            steady_fps: clock.steady_fps(self.frames),
            name: self.name,
            frames: self.frames,
            frames_decoded: self.decode.frames_read,
            frames_encoded: self.frames_encoded,
            dropped: self.decode.dropped,
            reconnects: self.decode.reconnects,
            live: self.live,
            tracks: self.processor.as_ref().map_or(0, |p| p.track_count()),
            seeded_tracks: self.processor.as_ref().and_then(|p| p.seeded_tracks().map(<[u64]>::to_vec)),
            elapsed,
            times,
            interrupted,
            input_error,
            error: self.error,
            encoder: self.encoder,
            buffer_allocations,
        }
    }
}

/// Start one stream's decode, track, draw and encode threads; the returned handle joins them.
fn spawn_stream<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    st: Stream,
    ctx: StreamCtx<'env>,
    job_tx: Sender<Job>,
    seg_rx: Receiver<Segmented>,
    cap: usize,
    latest: &'env Latest,
) -> std::thread::ScopedJoinHandle<'scope, StreamOutcome> {
    s.spawn(move || {
        let Stream { name, source, processor, video, results, overlay } = st;
        let info = source.info().clone();
        let expected_frames = if info.live { None } else { info.expected_frames() };
        let encoder = video.as_ref().map(|v| v.describe());
        std::thread::scope(|s2| {
            let dec = s2.spawn(move || decode_loop(source, ctx, job_tx, info.live.then_some(latest)));
            let (trk_tx, trk_rx) = bounded::<Tracked>(cap);
            let (drw_tx, drw_rx) = bounded::<Frame>(cap);
            let has_video = video.is_some();
            let trk = s2.spawn(move || track_loop(seg_rx, processor, results, has_video.then_some(trk_tx), ctx));
            let drw = has_video.then(|| s2.spawn(move || draw_loop(trk_rx, overlay, drw_tx, ctx)));
            let enc = video.map(|v| encode_loop(drw_rx, v, ctx));
            let decode = dec.join().unwrap_or_else(|_| DecodeStats::panicked());
            let track = trk.join().unwrap_or_else(|_| TrackOutcome::panicked());
            let draw = drw.map(|h| h.join().unwrap_or_else(|_| (Duration::ZERO, Some(panic_err("draw")))));
            let (draw_busy, draw_err) = draw.unwrap_or((Duration::ZERO, None));
            let (encode_busy, frames_encoded, encode_done, enc_err) = enc.unwrap_or((Duration::ZERO, 0, 0, None));
            let frames = if has_video { encode_done } else { track.done };
            StreamOutcome {
                name,
                decode,
                processor: Some(track.processor),
                track_busy: track.busy,
                draw_busy,
                encode_busy,
                frames,
                frames_encoded,
                encoder,
                error: track.error.or(draw_err).or(enc_err),
                expected_frames,
                live: info.live,
            }
        })
    })
}

fn panic_err(stage: &str) -> VideoError {
    VideoError::Other(format!("{stage} thread panicked"))
}

#[derive(Default)]
struct DecodeStats {
    busy: Duration,
    dropped: u64,
    reconnects: u64,
    frames_read: u64,
    error: Option<VideoError>,
}

impl DecodeStats {
    fn panicked() -> Self {
        DecodeStats { error: Some(panic_err("decode")), ..Default::default() }
    }
}

fn decode_loop(mut source: SourceBox, ctx: StreamCtx<'_>, tx: Sender<Job>, latest: Option<&Latest>) -> DecodeStats {
    let mut st = DecodeStats::default();
    let mut sent = 0u64;
    while !ctx.halt.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        match source.next_frame(ctx.pool, ctx.stop) {
            Ok(Some(frame)) => {
                st.busy += t0.elapsed();
                // Live: the newest frame replaces a stale one (see `segment::Latest`).
                if let Some(latest) = latest {
                    let (post, stale) = latest.put(frame);
                    if let Some(f) = stale {
                        st.dropped += 1;
                        ctx.live.dropped.store(st.dropped, Ordering::Relaxed);
                        ctx.pool.give(f.data);
                    }
                    ctx.live.reconnects.store(source.reconnects(), Ordering::Relaxed);
                    if post && tx.send(Job::Live { stream: ctx.index }).is_err() {
                        break;
                    }
                    continue;
                }
                if tx.send(Job::Frame { stream: ctx.index, seq: sent, frame }).is_err() {
                    break;
                }
                sent += 1;
            }
            Ok(None) => break,
            Err(e) => {
                st.error = Some(e);
                break;
            }
        }
    }
    if let Some(latest) = latest {
        let (left, taken) = latest.close();
        if let Some(f) = left {
            st.dropped += 1;
            ctx.pool.give(f.data);
        }
        sent = taken;
    }
    let _ = tx.send(Job::End { stream: ctx.index, frames: sent });
    st.frames_read = source.frames_read();
    st.reconnects = source.reconnects();
    st
}

fn stage_err(stage: &'static str, frame: &Frame, e: impl Into<super::StageError>) -> VideoError {
    VideoError::Stage { stage, frame: frame.index + 1, cause: e.into() }
}

struct TrackOutcome {
    processor: StreamProcessor,
    busy: Duration,
    done: u64,
    error: Option<VideoError>,
}

impl TrackOutcome {
    fn panicked() -> Self {
        TrackOutcome {
            processor: StreamProcessor::new(crate::stream::StreamConfig {
                tracker: Default::default(),
                frame_rate: None,
            }),
            busy: Duration::ZERO,
            done: 0,
            error: Some(panic_err("track")),
        }
    }
}

/// A stream's track stage: its processor and its track files. Without a video output it is the
/// last stage and returns the frame buffers.
fn track_loop(
    rx: Receiver<Segmented>,
    mut processor: StreamProcessor,
    mut results: Vec<ResultSinkBox>,
    tx: Option<Sender<Tracked>>,
    ctx: StreamCtx<'_>,
) -> TrackOutcome {
    let (mut busy, mut done, mut error) = (Duration::ZERO, 0u64, None);
    for Segmented { frame, dets } in rx.iter() {
        let t0 = Instant::now();
        let meta = FrameMeta { index: frame.index, pts: frame.pts };
        let result = match processor.process(frame.view(), meta, dets) {
            Ok(r) => r,
            Err(e) => {
                error = Some(stage_err("prompt", &frame, e));
                ctx.pool.give(frame.data);
                break;
            }
        };
        if let Some(e) = results.iter_mut().find_map(|s| s.write(&result).err()) {
            error = Some(stage_err("track files", &frame, e));
            ctx.pool.give(frame.data);
            break;
        }
        busy += t0.elapsed();
        match &tx {
            Some(tx) => {
                if let Err(e) = tx.send(Tracked { frame, result }) {
                    ctx.pool.give(e.into_inner().frame.data);
                    break;
                }
            }
            None => {
                ctx.pool.give(frame.data);
                done += 1;
                ctx.done(done);
            }
        }
    }
    if error.is_some() {
        ctx.halt.store(true, Ordering::Relaxed);
    }
    drop(rx);
    drop(tx);
    for sink in results {
        if let Err(e) = sink.finish() {
            error.get_or_insert(VideoError::Stage { stage: "track files", frame: done, cause: e.into() });
        }
    }
    TrackOutcome { processor, busy, done, error }
}

fn draw_loop(
    rx: Receiver<Tracked>,
    style: OverlayStyle,
    tx: Sender<Frame>,
    ctx: StreamCtx<'_>,
) -> (Duration, Option<VideoError>) {
    let mut overlay = Overlay::new(style);
    let mut busy = Duration::ZERO;
    for Tracked { mut frame, result } in rx.iter() {
        let t0 = Instant::now();
        let items: Vec<OverlayItem<'_>> = result.overlay_items().collect();
        let (w, h, stride) = (frame.width, frame.height, frame.stride());
        let drawn = overlay.draw(&mut frame.data, w, h, stride, PixelFormat::Rgb8, &items);
        drop(items);
        if let Err(e) = drawn {
            ctx.halt.store(true, Ordering::Relaxed);
            let err = stage_err("draw", &frame, e);
            ctx.pool.give(frame.data);
            return (busy, Some(err));
        }
        busy += t0.elapsed();
        if let Err(e) = tx.send(frame) {
            ctx.pool.give(e.into_inner().data);
            break;
        }
    }
    (busy, None)
}

/// The encode stage (on the stream's own thread): push, then finalise the output whatever
/// happened. Returns (busy, frames written to the file, frames finished, error).
fn encode_loop(rx: Receiver<Frame>, mut sink: SinkBox, ctx: StreamCtx<'_>) -> (Duration, u64, u64, Option<VideoError>) {
    let (mut busy, mut done, mut error) = (Duration::ZERO, 0u64, None);
    for frame in rx.iter() {
        let t0 = Instant::now();
        let pushed = sink.push(&frame);
        ctx.pool.give(frame.data);
        if let Err(e) = pushed {
            ctx.halt.store(true, Ordering::Relaxed);
            error = Some(e);
            break;
        }
        busy += t0.elapsed();
        done += 1;
        ctx.done(done);
    }
    drop(rx);
    let encoded = match sink.finish() {
        Ok(n) => n,
        Err(e) => {
            error.get_or_insert(e);
            0
        }
    };
    (busy, encoded, done, error)
}
