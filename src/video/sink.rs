//! The encode side: appsrc → (template: videoconvert → I420 → x264enc → h264parse → mp4mux →
//! filesink).
//!
//! Frames are copied into buffers from a GStreamer buffer pool (no per-frame allocation) and
//! pushed with the input's PTS and duration, so the output keeps the input's timing. When
//! appsrc's queue is full, [`VideoSink::push`] waits (backpressure reaches the pipeline's
//! channels) while watching the bus, so an encoder error ends the wait at once.
//!
//! Output safety ([`crate::outputs::PartialPath`]): the encoder writes `OUT.partial` next to the
//! output; [`VideoSink::finish`] sends EOS, waits for it (bounded by `eos_timeout`, and not at
//! all after an encoder error) and renames the partial file over `OUT`. An existing `OUT` is
//! never truncated or removed by a run that fails; a failed run removes only its own partial file
//! (or keeps it, named as such, when frames were encoded). Outputs that are not regular files
//! (`/dev/null`) are written in place and never removed. The default template writes a
//! fragmented MP4 (`fragment-duration=1000`), so a killed run leaves a playable partial file.
//!
//! Odd frame sizes: H.264 in 4:2:0 needs even sizes, so a 641x361 input is encoded as 642x362,
//! the extra column/row repeating the last one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::templates::{self, DEFAULT_ENCODE, DEFAULT_RECORD, FALLBACK_ENCODE};
use super::yuv::{I420Mut, rgb_to_i420};
use super::{Frame, VideoError, VideoInfo, duration_to_clock};
use crate::outputs::PartialPath;

/// Encode options.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Encode template (see `pipelines/encode.txt`).
    pub template: String,
    /// Tried when an element of `template` is missing (the default: openh264enc).
    pub fallback: Option<String>,
    /// How long [`VideoSink::finish`] waits for the encoder to drain (not waited at all after an
    /// encoder error).
    pub eos_timeout: Duration,
    /// How long [`VideoSink::push`] waits for room in a full encoder queue before giving up
    /// (an encoder that stopped consuming without posting an error).
    pub push_timeout: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            template: DEFAULT_ENCODE.to_string(),
            fallback: Some(FALLBACK_ENCODE.to_string()),
            eos_timeout: Duration::from_secs(120),
            push_timeout: Duration::from_secs(60),
        }
    }
}

/// A running encode pipeline.
pub struct VideoSink {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    pool: gst::BufferPool,
    vinfo: gst_video::VideoInfo,
    width: u32,
    height: u32,
    /// The encoded size: `width`/`height` rounded up to even.
    enc_width: u32,
    enc_height: u32,
    /// Padded RGB frame (odd sizes only).
    scratch: Vec<u8>,
    frame_duration: Option<Duration>,
    frames: u64,
    last_pts: Option<Duration>,
    output: PathBuf,
    /// The partial file the encoder writes; `None` once finished (and for segments).
    partial: Option<PartialPath>,
    /// Live recording in segments (splitmuxsink) instead of one file.
    segments: Option<super::record::Segments>,
    /// The first segment that could not be renamed (reported by the next push or `finish`).
    segment_error: std::cell::RefCell<Option<VideoError>>,
    description: String,
    eos_timeout: Duration,
    push_timeout: Duration,
    max_bytes: u64,
    /// An encoder error was seen: do not wait for EOS.
    failed: bool,
    stopped: bool,
}

impl std::fmt::Debug for VideoSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSink").field("output", &self.output).field("frames", &self.frames).finish()
    }
}

impl VideoSink {
    /// Start an encoder writing `output` for frames described by `info`.
    pub fn create(output: &Path, info: &VideoInfo, cfg: &SinkConfig) -> Result<Self, VideoError> {
        let template = Self::preflight(output, cfg)?;
        if info.width == 0 || info.height == 0 {
            return Err(VideoError::Encode {
                frames: 0,
                message: format!("invalid frame size {}x{}", info.width, info.height),
            });
        }
        let partial = PartialPath::create(output)?;
        let out = partial.path().display().to_string();
        let desc = templates::render(template, &[("output", &out)]);
        Self::start(output, Some(partial), None, desc, info, cfg)
    }

    /// Start an encoder recording a live stream in segments of `length` named after `output`
    /// (see [`super::record`]): `DIR/STEM-<start time>.mp4`, each complete once closed.
    pub fn create_segmented(
        output: &Path,
        info: &VideoInfo,
        cfg: &SinkConfig,
        length: Duration,
    ) -> Result<Self, VideoError> {
        super::init()?;
        crate::outputs::OutputCheck::new().output(crate::outputs::Role::OutputVideo, output).check()?;
        if info.width == 0 || info.height == 0 || length.is_zero() {
            return Err(VideoError::Encode {
                frames: 0,
                message: format!("invalid frame size {}x{} or segment length {length:?}", info.width, info.height),
            });
        }
        let keyint = info.fps_f64().map_or(25, |f| f.round().max(1.0) as u64).to_string();
        let ns = length.as_nanos().min(u64::MAX as u128).to_string();
        let desc = templates::render(DEFAULT_RECORD, &[("keyint", &keyint), ("max_size_time", &ns)]);
        templates::check_elements(&desc, "record")?;
        let segments = super::record::Segments::new(output, length);
        Self::start(output, None, Some(segments), desc, info, cfg)
    }

    /// The recording's closed (complete) segments, for a segmented sink.
    pub fn closed_segments(&self) -> Vec<PathBuf> {
        self.segments.as_ref().map(|s| s.closed()).unwrap_or_default()
    }

    /// The checks [`VideoSink::create`] makes before it writes anything, for callers that want
    /// them before loading a model: the template has `{output}`, its elements (or the fallback's)
    /// exist, `output`'s directory exists and is writable, and `output` is not a directory.
    /// Returns the template that will be used.
    pub fn preflight<'a>(output: &Path, cfg: &'a SinkConfig) -> Result<&'a str, VideoError> {
        super::init()?;
        crate::outputs::OutputCheck::new().output(crate::outputs::Role::OutputVideo, output).check()?;
        if !templates::strip_comments(&cfg.template).contains("{output}") {
            return Err(VideoError::Template {
                role: "encode",
                template: templates::strip_comments(&cfg.template),
                message: format!(
                    "it has no {{output}} placeholder, so {} would not be written (use filesink location=\"{{output}}\")",
                    output.display()
                ),
            });
        }
        // Check the elements before creating anything on disk.
        let probe = templates::render(&cfg.template, &[("output", "/dev/null")]);
        let mut template = cfg.template.as_str();
        if let Err(e) = templates::check_elements(&probe, "encode") {
            match &cfg.fallback {
                Some(fb) => {
                    let fb_probe = templates::render(fb, &[("output", "/dev/null")]);
                    if templates::check_elements(&fb_probe, "encode").is_err() {
                        return Err(e);
                    }
                    tracing::warn!("{e}; falling back to: {fb_probe}");
                    template = fb;
                }
                None => return Err(e),
            }
        }
        Ok(template)
    }

    fn start(
        output: &Path,
        partial: Option<PartialPath>,
        segments: Option<super::record::Segments>,
        desc: String,
        info: &VideoInfo,
        cfg: &SinkConfig,
    ) -> Result<Self, VideoError> {
        let template_err = |message: String| VideoError::Template { role: "encode", template: desc.clone(), message };
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| template_err(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| template_err("not a pipeline".into()))?;
        let appsrc = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| template_err("needs an appsrc named \"src\" (appsrc name=src ! …)".into()))?;
        if let Some(seg) = &segments {
            let mux =
                pipeline.by_name("mux").ok_or_else(|| template_err("needs a splitmuxsink named \"mux\"".into()))?;
            seg.attach(&mux);
        }
        let (fn_, fd) = info.fps.unwrap_or((0, 1));
        // I420 from our exact BT.601 converter (videoconvert's RGB->I420 truncates); the template's
        // videoconvert then passes it through, or converts to what another encoder wants.
        let colorimetry: gst_video::VideoColorimetry =
            "bt601".parse().map_err(|e| VideoError::Other(format!("colorimetry: {e}")))?;
        // 4:2:0 H.264 needs even sizes: pad odd ones by one column/row.
        let (enc_width, enc_height) = (info.width + info.width % 2, info.height + info.height % 2);
        if (enc_width, enc_height) != (info.width, info.height) {
            tracing::info!(
                "{}x{} has an odd size: encoding {enc_width}x{enc_height} (last column/row repeated)",
                info.width,
                info.height
            );
        }
        let vinfo = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, enc_width, enc_height)
            .fps(gst::Fraction::new(fn_, fd))
            .colorimetry(&colorimetry)
            .build()
            .map_err(|e| VideoError::Other(format!("bad video info: {e}")))?;
        let caps = vinfo.to_caps().map_err(|e| VideoError::Other(format!("bad caps: {e}")))?;
        let frame_size = vinfo.size();
        appsrc.set_caps(Some(&caps));
        appsrc.set_format(gst::Format::Time);
        // Not blocking inside appsrc: `push` waits for room itself, watching the bus, so an encoder
        // error cannot leave it blocked forever.
        appsrc.set_block(false);
        let max_bytes = (frame_size * 3) as u64;
        appsrc.set_max_bytes(max_bytes);
        appsrc.set_property("is-live", false);

        let pool = gst::BufferPool::new();
        let mut pcfg = pool.config();
        pcfg.set_params(Some(&caps), frame_size as u32, 2, 0);
        pool.set_config(pcfg).map_err(|e| VideoError::Other(format!("buffer pool: {e}")))?;
        pool.set_active(true).map_err(|e| VideoError::Other(format!("buffer pool: {e}")))?;

        let sink = VideoSink {
            pipeline,
            appsrc,
            pool,
            vinfo: vinfo.clone(),
            width: info.width,
            height: info.height,
            enc_width,
            enc_height,
            scratch: Vec::new(),
            frame_duration: info.fps_f64().map(|f| Duration::from_secs_f64(1.0 / f)),
            frames: 0,
            last_pts: None,
            output: output.to_path_buf(),
            partial,
            segments,
            segment_error: std::cell::RefCell::new(None),
            description: desc,
            eos_timeout: cfg.eos_timeout,
            push_timeout: cfg.push_timeout,
            max_bytes,
            failed: false,
            stopped: false,
        };
        if sink.pipeline.set_state(gst::State::Playing).is_err() {
            let msg = sink.bus_error().unwrap_or_else(|| "could not start the encoder".into());
            // Drop stops the pipeline and removes the (empty) partial file.
            return Err(VideoError::Encode { frames: 0, message: msg });
        }
        Ok(sink)
    }

    /// The file the encoder writes until [`VideoSink::finish`] renames it over the output.
    pub fn partial_path(&self) -> Option<&Path> {
        self.partial.as_ref().map(PartialPath::path)
    }

    /// The encode pipeline description in use.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    /// Encode one frame (tightly packed RGB of the size given at creation).
    pub fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        if self.failed {
            return Err(self.encode_error("the encoder failed earlier".into()));
        }
        let r = self.push_inner(frame);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn push_inner(&mut self, frame: &Frame) -> Result<(), VideoError> {
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(VideoError::Encode {
                frames: self.frames,
                message: format!(
                    "frame size changed mid-stream from {}x{} to {}x{}",
                    self.width, self.height, frame.width, frame.height
                ),
            });
        }
        if frame.data.len() < frame.width as usize * frame.height as usize * 3 {
            return Err(self.encode_error(format!(
                "frame {} holds {} bytes, too few for its size",
                frame.index,
                frame.data.len()
            )));
        }
        let mut buffer = self.pool.acquire_buffer(None).map_err(|e| self.encode_error(format!("{e:?}")))?;
        {
            let buf = buffer.get_mut().ok_or_else(|| self.encode_error("pool buffer not writable".into()))?;
            // PTS: the input's; synthesised from the frame rate when absent; kept increasing.
            let dur = frame.duration.or(self.frame_duration);
            let mut pts = frame.pts.or_else(|| Some(dur? * frame.index as u32)).unwrap_or_default();
            if let Some(last) = self.last_pts
                && pts <= last
            {
                pts = last + Duration::from_micros(1);
            }
            self.last_pts = Some(pts);
            buf.set_pts(duration_to_clock(pts));
            buf.set_duration(dur.map(duration_to_clock));
            let mut vframe = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &self.vinfo)
                .map_err(|e| VideoError::Other(format!("cannot map output frame: {e}")))?;
            let strides = vframe.plane_stride();
            let (ys, us, vs) = (strides[0] as usize, strides[1] as usize, strides[2] as usize);
            let [y, u, v, _] = vframe.planes_data_mut();
            let mut planes = I420Mut { y, u, v, y_stride: ys, u_stride: us, v_stride: vs };
            if (self.enc_width, self.enc_height) == (self.width, self.height) {
                rgb_to_i420(&frame.data, self.width, self.height, &mut planes);
            } else {
                pad_rgb(&frame.data, self.width, self.height, self.enc_width, self.enc_height, &mut self.scratch);
                rgb_to_i420(&self.scratch, self.enc_width, self.enc_height, &mut planes);
            }
        }
        self.wait_for_room()?;
        if let Err(flow) = self.appsrc.push_buffer(buffer) {
            let msg = self.bus_error().unwrap_or_else(|| format!("appsrc refused the frame: {flow:?}"));
            return Err(self.encode_error(msg));
        }
        self.frames += 1;
        // (this also renames the segments whose close messages are waiting on the bus)
        if let Some(msg) = self.bus_error() {
            return Err(self.encode_error(msg));
        }
        self.segment_error.take().map_or(Ok(()), Err)
    }

    /// Wait until appsrc's queue has room, ending at once on an encoder error (bounded by
    /// `push_timeout`).
    fn wait_for_room(&mut self) -> Result<(), VideoError> {
        let start = std::time::Instant::now();
        let bus = self.pipeline.bus().ok_or_else(|| VideoError::Other("pipeline without bus".into()))?;
        while self.appsrc.current_level_bytes() >= self.max_bytes {
            if let Some(msg) = self.pop(&bus, gst::ClockTime::from_mseconds(2), &[gst::MessageType::Error]) {
                return Err(self.encode_error(error_text(&msg)));
            }
            if start.elapsed() > self.push_timeout {
                return Err(
                    self.encode_error(format!("the encoder accepted no frame for {:?} (stalled)", self.push_timeout))
                );
            }
        }
        Ok(())
    }

    fn encode_error(&self, message: String) -> VideoError {
        VideoError::Encode { frames: self.frames, message }
    }

    fn bus_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let msg = self.pop(&bus, gst::ClockTime::ZERO, &[gst::MessageType::Error])?;
        Some(error_text(&msg))
    }

    /// The next message of one of `types` within `timeout`. Element messages are taken on the way
    /// (a popping filter discards what it does not match): a segmented recording renames the
    /// segments they report closed.
    fn pop(&self, bus: &gst::Bus, timeout: gst::ClockTime, types: &[gst::MessageType]) -> Option<gst::Message> {
        let mut wanted = types.to_vec();
        wanted.push(gst::MessageType::Element);
        let deadline = std::time::Instant::now() + Duration::from_nanos(timeout.nseconds());
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // `timed_pop_filtered` with no time left returns at once without looking at the bus
            // (gstreamer-rs 0.25): a zero timeout is a plain non-blocking pop.
            let msg = if left.is_zero() {
                bus.pop_filtered(&wanted)?
            } else {
                bus.timed_pop_filtered(duration_to_clock(left), &wanted)?
            };
            if msg.type_() != gst::MessageType::Element || types.contains(&gst::MessageType::Element) {
                return Some(msg);
            }
            if let Some(seg) = &self.segments
                && let Err(e) = seg.on_message(&msg)
                && let Ok(mut first) = self.segment_error.try_borrow_mut()
            {
                first.get_or_insert(e);
            }
        }
    }

    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = self.pipeline.set_state(gst::State::Null);
            let _ = self.pool.set_active(false);
        }
    }

    /// Send EOS, wait until the muxer has written the file (not after an encoder error; at most
    /// `eos_timeout`), stop, and rename the partial file over the output. Returns frames written.
    /// With no frame written, the partial file is removed and the output left as it was; after
    /// an error with frames written, the partial file is kept (and named in the log).
    pub fn finish(mut self) -> Result<u64, VideoError> {
        let mut result = if self.failed { Err(self.encode_error("the encoder failed".into())) } else { self.drain() };
        if let (Some(_), Some(bus)) = (&self.segments, self.pipeline.bus()) {
            // segment-closed messages posted with or after EOS
            let _ = self.pop(&bus, gst::ClockTime::ZERO, &[]);
        }
        if let (Ok(()), Some(e)) = (&result, self.segment_error.take()) {
            result = Err(e);
        }
        self.stop();
        let partial = self.partial.take();
        match (result, partial) {
            (Ok(()), Some(p)) if self.frames > 0 => {
                p.commit()?;
                Ok(self.frames)
            }
            (Ok(()), p) => {
                if let Some(p) = p {
                    p.discard();
                }
                Ok(self.frames)
            }
            (Err(e), Some(p)) if self.frames > 0 && !p.in_place() => {
                let kept = p.keep();
                tracing::warn!(
                    "the encoder failed; {} is unchanged and the {} frames encoded are in {}",
                    self.output.display(),
                    self.frames,
                    kept.display()
                );
                Err(e)
            }
            (Err(e), p) => {
                if let Some(p) = p {
                    p.discard();
                }
                Err(e)
            }
        }
    }

    fn drain(&self) -> Result<(), VideoError> {
        if self.appsrc.end_of_stream().is_err() {
            let msg = self.bus_error().unwrap_or_else(|| "encoder refused end-of-stream".into());
            return Err(self.encode_error(msg));
        }
        let bus = self.pipeline.bus().ok_or_else(|| VideoError::Other("pipeline without bus".into()))?;
        let msg =
            self.pop(&bus, duration_to_clock(self.eos_timeout), &[gst::MessageType::Eos, gst::MessageType::Error]);
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(_)) => {
                Err(self.encode_error(msg.as_ref().map(error_text).unwrap_or_default()))
            }
            _ => Err(self.encode_error(format!("encoder did not finish within {:?}", self.eos_timeout))),
        }
    }
}

impl Drop for VideoSink {
    /// A sink dropped without [`VideoSink::finish`] (an error elsewhere): stop the encoder; the
    /// partial file is removed by its own drop, the output is left as it was.
    fn drop(&mut self) {
        self.stop();
    }
}

fn error_text(msg: &gst::Message) -> String {
    match msg.view() {
        gst::MessageView::Error(e) => match e.debug() {
            Some(d) => format!("{} ({d})", e.error()),
            None => e.error().to_string(),
        },
        _ => String::new(),
    }
}

/// Copy a `w`x`h` RGB image into `ew`x`eh` (≥), repeating the last column and row.
fn pad_rgb(src: &[u8], w: u32, h: u32, ew: u32, eh: u32, out: &mut Vec<u8>) {
    let (w, h, ew, eh) = (w as usize, h as usize, ew as usize, eh as usize);
    out.resize(ew * eh * 3, 0);
    for y in 0..eh {
        let sy = y.min(h - 1);
        let srow = &src[sy * w * 3..(sy + 1) * w * 3];
        let drow = &mut out[y * ew * 3..(y + 1) * ew * 3];
        drow[..w * 3].copy_from_slice(srow);
        for x in w..ew {
            drow[x * 3..x * 3 + 3].copy_from_slice(&srow[(w - 1) * 3..w * 3]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_repeats_the_edges() {
        let src: Vec<u8> = (0..3 * 3 * 3).map(|v| v as u8).collect(); // 3x3
        let mut out = Vec::new();
        pad_rgb(&src, 3, 3, 4, 4, &mut out);
        assert_eq!(out.len(), 4 * 4 * 3);
        assert_eq!(&out[0..9], &src[0..9]);
        assert_eq!(&out[9..12], &src[6..9]); // last column repeated
        assert_eq!(&out[36..48], &out[24..36]); // last row repeated
    }
}
