//! The threaded pipeline: decode → segment → track → draw → encode.
//!
//! Each stage runs on its own thread; stages are connected by bounded crossbeam channels of
//! capacity [`PipelineConfig::channel_capacity`], so a slow stage blocks the ones before it
//! (backpressure) and memory stays bounded. File input never drops a frame (blocking sends); live
//! input uses `try_send` from the decoder and counts the frames it drops. Frame buffers travel
//! through the stages and go back to a [`FramePool`] after encoding, so steady state allocates no
//! full-size image.
//!
//! Stopping: when `stop` is set (Ctrl-C), the decoder stops reading, the stages drain what is in
//! flight, the encoder sends EOS (a playable MP4) and the track files are flushed. A failing stage
//! drops its input channel, which stops the stages before it; the stages after it drain, so the
//! output is always finalised with the frames that made it through.
//!
//! The segmenter is any [`Segmenter`]; the tracker runs on its [`Detection`]s. With a prompt, the
//! frame selector runs on the first frame: the tracks born from the selected detections are the
//! only ones drawn and exported from then on.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use serde::Serialize;

use super::deps::{ByteTracker, Overlay, OverlayItem, OverlayStyle, TrackedObject, TrackerConfig};
use super::{Frame, FramePool, SinkConfig, VideoError, VideoSink, VideoSource};
use crate::export::{ExportObject, TrackWriter};
use crate::types::{Detection, PixelFormat, Segmenter};

/// Picks, on the first frame, which detections (indices) the run follows.
pub type FrameSelector = Box<dyn FnOnce(&[Detection], u32, u32) -> Result<Vec<usize>, crate::Error> + Send>;

/// What to run and where to write.
pub struct PipelineConfig {
    /// Capacity (frames) of each channel between stages.
    pub channel_capacity: usize,
    pub tracker: TrackerConfig,
    pub overlay: OverlayStyle,
    /// Output video; `None` skips drawing and encoding (`--no-video`).
    pub output: Option<PathBuf>,
    pub sink: SinkConfig,
    pub tracks_mot: Option<PathBuf>,
    pub tracks_json: Option<PathBuf>,
    /// Prompt selection applied on the first frame (`None`: follow everything).
    pub selector: Option<FrameSelector>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 4,
            tracker: TrackerConfig::default(),
            overlay: OverlayStyle::default(),
            output: None,
            sink: SinkConfig::default(),
            tracks_mot: None,
            tracks_json: None,
            selector: None,
        }
    }
}

/// Busy time per stage, summed over the run (waiting on channels excluded).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimes {
    /// Waiting for and copying decoded frames.
    pub decode: Duration,
    pub pre: Duration,
    pub infer: Duration,
    pub post: Duration,
    /// Tracker update, prompt selection and track-file writing.
    pub track: Duration,
    pub draw: Duration,
    /// Copying into the encoder and waiting for it (appsrc blocks when the encoder lags).
    pub encode: Duration,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunReport {
    /// Frames that went through every stage.
    pub frames: u64,
    /// Frames decoded (including dropped ones).
    pub frames_decoded: u64,
    /// Frames written to the output video.
    pub frames_encoded: u64,
    /// Live frames dropped because the pipeline was behind.
    pub dropped: u64,
    /// Distinct track IDs exported/drawn.
    pub tracks: u64,
    /// Track IDs seeded by the prompt on the first frame (`None` without a prompt).
    pub seeded_tracks: Option<Vec<u64>>,
    pub elapsed: Duration,
    /// Frames per second between the first and the last finished frame (start-up excluded).
    pub steady_fps: f64,
    pub times: StageTimes,
    /// Stopped by the stop flag (Ctrl-C) before the end of the input.
    pub interrupted: bool,
    /// A decode error mid-stream: the frames before it were processed and the output finalised.
    pub input_error: Option<VideoError>,
    /// The encode pipeline used.
    pub encoder: Option<String>,
    /// Frame buffers allocated during the run (bounded by the channel capacities).
    pub buffer_allocations: u64,
}

impl RunReport {
    pub fn mean_fps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.frames as f64 / s } else { 0.0 }
    }
}

struct Segmented {
    frame: Frame,
    dets: Vec<Detection>,
}

struct Tracked {
    frame: Frame,
    dets: Vec<Detection>,
    tracks: Vec<TrackedObject>,
}

/// Records the first error raised by any stage.
#[derive(Default)]
struct FirstError(Mutex<Option<crate::Error>>);

impl FirstError {
    fn set(&self, e: crate::Error) {
        tracing::error!("{e}");
        if let Ok(mut g) = self.0.lock()
            && g.is_none()
        {
            *g = Some(e);
        }
    }
    fn take(&self) -> Option<crate::Error> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
}

fn stage_err(stage: &'static str, frame: &Frame, e: crate::Error) -> crate::Error {
    VideoError::Stage { stage, frame: frame.index + 1, source: Box::new(e) }.into()
}

/// Run the whole pipeline until the input ends or `stop` is set. `progress` is called with the
/// number of finished frames after each one.
pub fn run(
    mut source: VideoSource,
    mut segmenter: Box<dyn Segmenter>,
    cfg: PipelineConfig,
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RunReport, crate::Error> {
    let started = Instant::now();
    let info = source.info().clone();
    let cap = cfg.channel_capacity.max(1);
    // Frames in flight: every channel full + one per stage, plus slack.
    let pool = FramePool::new(4 * cap + 8);
    let mut sink = match &cfg.output {
        Some(out) => Some(VideoSink::create(out, &info, &cfg.sink)?),
        None => None,
    };
    let encoder = sink.as_ref().map(|s| s.description().to_string());
    let mut writer = TrackWriter::create(cfg.tracks_mot.as_deref(), cfg.tracks_json.as_deref())
        .map_err(|e| crate::Error::io(e.path.display().to_string(), e.source))?;
    let (w, h) = (info.width, info.height);
    let live = info.live;
    let expected_frames = if live { None } else { info.expected_frames() };
    let errors = FirstError::default();

    let (dec_tx, dec_rx) = bounded::<Frame>(cap);
    let (seg_tx, seg_rx) = bounded::<Segmented>(cap);
    let (trk_tx, trk_rx): (Sender<Tracked>, Receiver<Tracked>) = bounded(cap);
    let (drw_tx, drw_rx) = bounded::<Frame>(cap);
    let video = sink.is_some();
    let mut tracker_cfg = Some(cfg.tracker);
    let mut selector = cfg.selector;
    let overlay_style = cfg.overlay;

    let mut times = StageTimes::default();
    let (mut dropped, mut frames_decoded, mut input_error) = (0u64, 0u64, None);
    let mut frames_done = 0u64;
    // first and last finished frame, for the steady-state rate
    let first_last = Mutex::new((None::<Instant>, None::<Instant>));
    let on_done_fn = |n: u64| {
        if let Ok(mut g) = first_last.lock() {
            let now = Instant::now();
            g.0.get_or_insert(now);
            g.1 = Some(now);
        }
        progress(n);
    };
    let on_done = &on_done_fn;
    let mut ids: HashSet<u64> = HashSet::new();
    let mut seeded: Option<Vec<u64>> = None;

    std::thread::scope(|s| {
        // ---- decode
        let pool_d = pool.clone();
        let dec = s.spawn(move || {
            let (mut busy, mut dropped, mut err) = (Duration::ZERO, 0u64, None);
            loop {
                let t0 = Instant::now();
                match source.next_frame(&pool_d, stop) {
                    Ok(Some(frame)) => {
                        busy += t0.elapsed();
                        if live {
                            match dec_tx.try_send(frame) {
                                Ok(()) => {}
                                Err(TrySendError::Full(f)) => {
                                    dropped += 1;
                                    pool_d.give(f.data);
                                }
                                Err(TrySendError::Disconnected(_)) => break,
                            }
                        } else if dec_tx.send(frame).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            (busy, dropped, err, source.frames_read())
        });

        // ---- segment
        let pool_s = pool.clone();
        let errors_s = &errors;
        let seg = s.spawn(move || {
            let mut t = StageTimes::default();
            for frame in dec_rx {
                match segmenter.segment(frame.view()) {
                    Ok(dets) => {
                        let st = segmenter.last_timings();
                        t.pre += st.pre;
                        t.infer += st.infer;
                        t.post += st.post;
                        if seg_tx.send(Segmented { frame, dets }).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        errors_s.set(stage_err("segment", &frame, e));
                        pool_s.give(frame.data);
                        break;
                    }
                }
            }
            t
        });

        // ---- track (+ track files)
        let pool_t = pool.clone();
        let errors_t = &errors;
        let writer_ref = &mut writer;
        let trk = s.spawn(move || {
            let mut tracker = ByteTracker::new(tracker_cfg.take().unwrap_or_default());
            let mut busy = Duration::ZERO;
            let mut allowed: Option<HashSet<u64>> = None;
            let mut seeded = None;
            let mut ids = HashSet::new();
            let mut done = 0u64;
            let mut objects: Vec<ExportObject> = Vec::new();
            for Segmented { frame, dets } in seg_rx {
                let t0 = Instant::now();
                let mut tracks = tracker.update(&dets);
                if let Some(sel) = selector.take() {
                    match sel(&dets, w, h) {
                        Ok(chosen) => {
                            let a: HashSet<u64> =
                                tracks.iter().filter(|t| chosen.contains(&t.det_index)).map(|t| t.track_id).collect();
                            if a.is_empty() {
                                tracing::warn!(
                                    "the prompt selected no object on the first frame ({} detections, {} selected): \
                                     nothing will be tracked",
                                    dets.len(),
                                    chosen.len()
                                );
                            }
                            let mut v: Vec<u64> = a.iter().copied().collect();
                            v.sort_unstable();
                            seeded = Some(v);
                            allowed = Some(a);
                        }
                        Err(e) => {
                            errors_t.set(stage_err("prompt", &frame, e));
                            pool_t.give(frame.data);
                            break;
                        }
                    }
                }
                if let Some(a) = &allowed {
                    tracks.retain(|t| a.contains(&t.track_id));
                }
                ids.extend(tracks.iter().map(|t| t.track_id));
                if writer_ref.is_active() {
                    let masks = writer_ref.wants_masks();
                    objects.clear();
                    objects.extend(tracks.iter().map(|t| {
                        let rle = if masks {
                            dets.get(t.det_index).and_then(|d| d.mask.as_ref()).map(|m| m.to_rle())
                        } else {
                            None
                        };
                        ExportObject::new(t.track_id, &t.bbox, t.score, t.class_id, rle)
                    }));
                    if let Err(e) = writer_ref.write_frame(frame.index + 1, frame.pts, &objects) {
                        errors_t.set(crate::Error::io(e.path.display().to_string(), e.source));
                        pool_t.give(frame.data);
                        break;
                    }
                }
                busy += t0.elapsed();
                if video {
                    if trk_tx.send(Tracked { frame, dets, tracks }).is_err() {
                        break;
                    }
                } else {
                    pool_t.give(frame.data);
                    done += 1;
                    on_done(done);
                }
            }
            drop(trk_tx);
            (busy, ids, seeded, done)
        });

        // ---- draw
        let errors_w = &errors;
        let pool_w = pool.clone();
        let drw = video.then(|| {
            s.spawn(move || {
                let mut overlay = Overlay::new(overlay_style);
                let mut busy = Duration::ZERO;
                for Tracked { mut frame, dets, tracks } in trk_rx {
                    let t0 = Instant::now();
                    let items: Vec<OverlayItem<'_>> = tracks
                        .iter()
                        .map(|t| OverlayItem {
                            mask: dets.get(t.det_index).and_then(|d| d.mask.as_ref()),
                            bbox: t.bbox,
                            color_key: t.track_id,
                            label: Some(t.track_id.to_string()),
                            score: Some(t.score),
                        })
                        .collect();
                    let stride = frame.stride();
                    if let Err(e) = overlay.draw(&mut frame.data, w, h, stride, PixelFormat::Rgb8, &items) {
                        errors_w.set(stage_err("draw", &frame, e));
                        pool_w.give(frame.data);
                        break;
                    }
                    drop(items);
                    busy += t0.elapsed();
                    if drw_tx.send(frame).is_err() {
                        break;
                    }
                }
                busy
            })
        });

        // ---- encode (this thread)
        let mut enc_busy = Duration::ZERO;
        if let Some(sk) = sink.as_mut() {
            let mut done = 0u64;
            for frame in drw_rx.iter() {
                let t0 = Instant::now();
                if let Err(e) = sk.push(&frame) {
                    errors.set(stage_err("encode", &frame, e.into()));
                    pool.give(frame.data);
                    break;
                }
                enc_busy += t0.elapsed();
                pool.give(frame.data);
                done += 1;
                on_done(done);
            }
            frames_done = done;
        }
        drop(drw_rx);
        times.encode = enc_busy;

        match dec.join() {
            Ok((busy, d, err, n)) => {
                times.decode = busy;
                dropped = d;
                input_error = err;
                frames_decoded = n;
            }
            Err(_) => errors.set(VideoError::Other("decode thread panicked".into()).into()),
        }
        match seg.join() {
            Ok(t) => {
                times.pre = t.pre;
                times.infer = t.infer;
                times.post = t.post;
            }
            Err(_) => errors.set(VideoError::Other("segment thread panicked".into()).into()),
        }
        match trk.join() {
            Ok((busy, i, sd, done)) => {
                times.track = busy;
                ids = i;
                seeded = sd;
                if !video {
                    frames_done = done;
                }
            }
            Err(_) => errors.set(VideoError::Other("track thread panicked".into()).into()),
        }
        if let Some(d) = drw {
            match d.join() {
                Ok(b) => times.draw = b,
                Err(_) => errors.set(VideoError::Other("draw thread panicked".into()).into()),
            }
        }
    });

    // Finalise outputs whatever happened above.
    let flush = writer.finish();
    let frames_encoded = match sink {
        Some(sk) => match sk.finish() {
            Ok(n) => n,
            Err(e) => {
                errors.set(e.into());
                0
            }
        },
        None => 0,
    };
    if let Err(e) = flush {
        errors.set(crate::Error::io(e.path.display().to_string(), e.source));
    }
    if let Some(e) = errors.take() {
        if let Some(out) = &cfg.output {
            if frames_encoded > 0 {
                tracing::warn!(
                    "{} was finalised with the {frames_encoded} frames processed before the error",
                    out.display()
                );
            } else {
                tracing::warn!("no frame was written; {} was not created", out.display());
            }
        }
        return Err(e);
    }
    let interrupted = stop.load(Ordering::Relaxed);
    if let (None, false, Some(expected)) = (&input_error, interrupted, expected_frames) {
        // A truncated file often just ends early without a decoder error: compare with what the
        // container announced (tolerance for rounding in duration × fps).
        if frames_decoded + 2 + expected / 50 < expected {
            input_error = Some(VideoError::Truncated { decoded: frames_decoded, expected });
        }
    }
    if let Some(e) = &input_error {
        tracing::error!("{e}");
    }
    let steady_fps = match first_last.into_inner().ok() {
        Some((Some(a), Some(b))) if frames_done > 1 && b > a => (frames_done - 1) as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    };
    Ok(RunReport {
        steady_fps,
        frames: frames_done,
        frames_decoded,
        frames_encoded,
        dropped,
        tracks: ids.len() as u64,
        seeded_tracks: seeded,
        elapsed: started.elapsed(),
        times,
        interrupted,
        input_error,
        encoder,
        buffer_allocations: pool.allocations(),
    })
}
