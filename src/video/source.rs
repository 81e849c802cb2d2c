//! The decode side: a GStreamer pipeline from a template ending in an RGB appsink.
//!
//! [`VideoSource::open`] starts the pipeline and waits for the first frame, so bad input (not a
//! video, unsupported codec, no video stream) fails before any output is created.
//! [`VideoSource::next_frame`] copies each sample into a recycled buffer from a [`FramePool`],
//! tightly packed, with its PTS and duration. Live sources (rtsp, …) get `drop=true max-buffers=1`
//! on the appsink so stale frames are dropped instead of piling up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::templates::{self, DEFAULT_DECODE};
use super::yuv::{I420, YuvRange, i420_to_rgb};
use super::{Frame, FramePool, VideoError, VideoInfo, clock_to_duration};

/// Decode options.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Decode template (see `pipelines/decode.txt`).
    pub template: String,
    /// Treat the input as live (drop stale frames). `None`: decide from the URI scheme and
    /// whether the pipeline prerolls.
    pub live: Option<bool>,
    /// How long to wait for the first frame.
    pub open_timeout: Duration,
    /// Network inputs (any scheme but `file://`): how long the source may deliver nothing (before
    /// the first frame or between two frames) before the run fails with
    /// [`VideoError::Stalled`], naming the host (a live input reconnects instead, see
    /// [`super::LiveSource`]). Local files are not limited.
    pub stall_timeout: Duration,
    /// RTSP lower transport (rtspsrc `protocols`).
    pub rtsp_transport: RtspTransport,
    /// Network jitter buffer (rtspsrc `latency`): frames are held this long to reorder packets.
    pub latency: Duration,
}

/// The default [`SourceConfig::stall_timeout`].
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// RTSP lower transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (through firewalls and NAT, no packet loss).
    Tcp,
    /// RTP over UDP (lowest latency on a clean network).
    Udp,
    /// UDP first, then TCP (rtspsrc's default).
    #[default]
    Auto,
}

impl RtspTransport {
    /// The rtspsrc `protocols` flags.
    fn protocols(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp+udp-mcast",
            RtspTransport::Auto => "tcp+udp+udp-mcast",
        }
    }
}

impl std::str::FromStr for RtspTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(RtspTransport::Tcp),
            "udp" => Ok(RtspTransport::Udp),
            "auto" => Ok(RtspTransport::Auto),
            _ => Err(format!("unknown RTSP transport `{s}`: use tcp, udp or auto")),
        }
    }
}

impl std::fmt::Display for RtspTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
            RtspTransport::Auto => "auto",
        })
    }
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            template: DEFAULT_DECODE.to_string(),
            live: None,
            open_timeout: Duration::from_secs(30),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            rtsp_transport: RtspTransport::Auto,
            latency: Duration::from_millis(200),
        }
    }
}

/// An open decode pipeline.
pub struct VideoSource {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    info: VideoInfo,
    pending: Option<gst::Sample>,
    next_index: u64,
    input: String,
    done: bool,
    /// Caps of a stream no decoder was found for (from a `missing-plugin` message).
    missing: Option<String>,
    /// For network inputs: the host (for messages) and the stall timeout.
    stall: Option<(String, Duration)>,
}

impl std::fmt::Debug for VideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSource").field("info", &self.info).field("next_index", &self.next_index).finish()
    }
}

/// Parse a decode pipeline description and set up its `appsink name=sink` (caps, low latency).
fn build_decode_pipeline(desc: &str, cfg: &SourceConfig) -> Result<(gst::Pipeline, gst_app::AppSink), VideoError> {
    templates::check_elements(desc, "decode")?;
    let template_err = |message: String| VideoError::Template { role: "decode", template: desc.to_string(), message };
    let element = gst::parse::launch(desc).map_err(|e| template_err(e.to_string()))?;
    let pipeline = element.downcast::<gst::Pipeline>().map_err(|_| template_err("not a pipeline".into()))?;
    let appsink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| template_err("needs an appsink named \"sink\" (… ! appsink name=sink)".into()))?;
    // Network sources (rtspsrc defaults to 2000 ms of jitter buffer): keep latency low, and
    // choose the RTSP transport.
    let latency_ms = cfg.latency.as_millis().min(u32::MAX as u128).to_string();
    let protocols = cfg.rtsp_transport.protocols();
    for el in pipeline.iterate_recurse().into_iter().flatten() {
        if el.factory().is_some_and(|f| f.name().starts_with("uridecodebin")) {
            let latency_ms = latency_ms.clone();
            el.connect("source-setup", false, move |args| {
                if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
                    if src.find_property("latency").is_some() {
                        src.set_property_from_str("latency", &latency_ms);
                    }
                    if src.find_property("protocols").is_some() {
                        src.set_property_from_str("protocols", protocols);
                    }
                }
                None
            });
        }
    }
    // I420 preferred: converted to RGB by `yuv` (exact, OpenCV-like), not by videoconvert.
    let caps = gst_video::VideoCapsBuilder::new()
        .format_list([gst_video::VideoFormat::I420, gst_video::VideoFormat::Rgb])
        .build();
    appsink.set_caps(Some(&caps));
    appsink.set_property("sync", false);
    appsink.set_max_buffers(2);
    Ok((pipeline, appsink))
}

impl VideoSource {
    /// Open `input` (a path or URI) and wait for its first frame.
    pub fn open(input: &str, cfg: &SourceConfig) -> Result<Self, VideoError> {
        super::init()?;
        // A template without {uri} makes its own source: the input is only a label there.
        let uses_uri = templates::strip_comments(&cfg.template).contains("{uri}");
        let uri = match super::input_to_uri(input) {
            Err(VideoError::UnsupportedScheme { .. }) if !uses_uri => input.to_string(),
            r => r?,
        };
        let network = uses_uri && !uri.starts_with("file://");
        if network {
            super::probe_network_input(&uri, cfg.open_timeout.min(cfg.stall_timeout).min(Duration::from_secs(10)))?;
        }
        let stall = network.then(|| {
            let host = super::network_host(&uri).map(|(h, p)| format!("{h}:{p}")).unwrap_or_else(|| {
                let r = super::redact_credentials(&uri);
                r.split("://").nth(1).and_then(|t| t.split('/').next()).unwrap_or("the server").to_string()
            });
            (host, cfg.stall_timeout)
        });
        let path = if let Some(p) = uri.strip_prefix("file://") {
            gst::glib::filename_from_uri(&uri).map(|(p, _)| p.display().to_string()).unwrap_or_else(|_| p.to_string())
        } else {
            input.to_string()
        };
        let desc = templates::render(&cfg.template, &[("uri", &uri), ("path", &path)]);
        let (pipeline, appsink) = build_decode_pipeline(&desc, cfg)?;
        let mut live = cfg.live.unwrap_or_else(|| super::is_live_uri(&uri));
        if live {
            appsink.set_drop(true);
            appsink.set_max_buffers(1);
        }
        let mut src = VideoSource {
            pipeline,
            appsink,
            info: VideoInfo { width: 0, height: 0, fps: None, duration: None, live, uri: uri.clone() },
            pending: None,
            next_index: 0,
            input: input.to_string(),
            done: false,
            missing: None,
            stall,
        };
        if src.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(src.bus_error(0).unwrap_or_else(|| src.not_a_video("could not start decoding")));
        }
        let sample = src.first_sample(cfg.open_timeout)?;
        if cfg.live.is_none() && !live {
            // a live source (camera, network stream) says so in the latency query
            let mut q = gst::query::Latency::new();
            let upstream_live =
                src.appsink.static_pad("sink").is_some_and(|pad| pad.peer_query(&mut q) && q.result().0);
            if upstream_live {
                live = true;
                src.appsink.set_drop(true);
                src.appsink.set_max_buffers(1);
            }
        }
        let caps = sample.caps().ok_or_else(|| VideoError::Other("first sample has no caps".into()))?;
        let vinfo = gst_video::VideoInfo::from_caps(caps).map_err(|e| VideoError::Other(format!("bad caps: {e}")))?;
        let fps = vinfo.fps();
        let duration = if live { None } else { src.pipeline.query_duration::<gst::ClockTime>() };
        src.info = VideoInfo {
            width: vinfo.width(),
            height: vinfo.height(),
            fps: (fps.numer() > 0 && fps.denom() > 0).then(|| (fps.numer(), fps.denom())),
            duration: clock_to_duration(duration),
            live,
            uri,
        };
        tracing::debug!("opened {}: {}x{}", super::redact_credentials(input), src.info.width, src.info.height);
        src.pending = Some(sample);
        Ok(src)
    }

    /// Wait for the first decoded frame (or the error that prevents it).
    fn first_sample(&mut self, open_timeout: Duration) -> Result<gst::Sample, VideoError> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.appsink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
                return Ok(s);
            }
            if let Some(e) = self.bus_error(0) {
                return Err(e);
            }
            if self.appsink.is_eos() {
                return Err(self.bus_error(0).unwrap_or_else(|| self.no_frames()));
            }
            if let Some(e) = self.stalled(start, " before the first frame") {
                return Err(e);
            }
            if start.elapsed() > open_timeout {
                return Err(VideoError::OpenTimeout(open_timeout));
            }
        }
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Number of frames returned so far.
    pub fn frames_read(&self) -> u64 {
        self.next_index
    }

    /// The next frame, `Ok(None)` at end of stream (or when `stop` is set). A decode error
    /// mid-stream is returned once, carrying the number of the frame that failed (1-based);
    /// later calls return `Ok(None)`.
    pub fn next_frame(&mut self, pool: &FramePool, stop: &AtomicBool) -> Result<Option<Frame>, VideoError> {
        if self.done {
            return Ok(None);
        }
        let waiting = Instant::now();
        let sample = match self.pending.take() {
            Some(s) => s,
            None => loop {
                if stop.load(Ordering::Relaxed) {
                    self.done = true;
                    return Ok(None);
                }
                if let Some(s) = self.appsink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
                    break s;
                }
                if let Some(e) = self.bus_error(self.next_index + 1) {
                    self.done = true;
                    return Err(e);
                }
                if self.appsink.is_eos() {
                    self.done = true;
                    // an error may be posted just before EOS
                    if let Some(e) = self.bus_error(self.next_index + 1) {
                        return Err(e);
                    }
                    return Ok(None);
                }
                if let Some(e) = self.stalled(waiting, &format!(" after frame {}", self.next_index)) {
                    self.done = true;
                    return Err(e);
                }
            },
        };
        let frame = self.copy_sample(&sample, pool)?;
        Ok(Some(frame))
    }

    fn copy_sample(&mut self, sample: &gst::Sample, pool: &FramePool) -> Result<Frame, VideoError> {
        let caps = sample.caps().ok_or_else(|| VideoError::Other("sample without caps".into()))?;
        let vinfo = gst_video::VideoInfo::from_caps(caps).map_err(|e| VideoError::Other(format!("bad caps: {e}")))?;
        let buffer = sample.buffer().ok_or_else(|| VideoError::Other("sample without buffer".into()))?;
        let (w, h) = (vinfo.width(), vinfo.height());
        let vframe = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &vinfo)
            .map_err(|e| VideoError::Other(format!("cannot map frame: {e}")))?;
        let map_err = |e: gst::glib::BoolError| VideoError::Other(format!("cannot map frame: {e}"));
        let strides = vframe.plane_stride();
        let row = w as usize * 3;
        let mut data = pool.take(row * h as usize);
        match vinfo.format() {
            gst_video::VideoFormat::I420 => {
                let planes = I420 {
                    width: w,
                    height: h,
                    y: vframe.plane_data(0).map_err(map_err)?,
                    u: vframe.plane_data(1).map_err(map_err)?,
                    v: vframe.plane_data(2).map_err(map_err)?,
                    y_stride: strides[0] as usize,
                    u_stride: strides[1] as usize,
                    v_stride: strides[2] as usize,
                };
                let range = if vinfo.colorimetry().range() == gst_video::VideoColorRange::Range0_255 {
                    YuvRange::Full
                } else {
                    YuvRange::Limited
                };
                i420_to_rgb(&planes, range, &mut data);
            }
            _ => {
                let stride = strides[0] as usize;
                let src = vframe.plane_data(0).map_err(map_err)?;
                if stride == row {
                    data.copy_from_slice(&src[..row * h as usize]);
                } else {
                    for (y, dst) in data.chunks_exact_mut(row).enumerate() {
                        dst.copy_from_slice(&src[y * stride..y * stride + row]);
                    }
                }
            }
        }
        let index = self.next_index;
        self.next_index += 1;
        Ok(Frame {
            index,
            pts: clock_to_duration(buffer.pts()),
            duration: clock_to_duration(buffer.duration()),
            width: w,
            height: h,
            data,
        })
    }

    /// A network input that delivered nothing since `since` for longer than the stall timeout.
    fn stalled(&self, since: Instant, after: &str) -> Option<VideoError> {
        let (host, timeout) = self.stall.as_ref()?;
        (since.elapsed() > *timeout).then(|| VideoError::Stalled {
            input: super::redact_credentials(&self.input),
            host: host.clone(),
            timeout: *timeout,
            after: after.to_string(),
        })
    }

    fn not_a_video(&self, message: &str) -> VideoError {
        VideoError::NotAVideo { input: self.input.clone(), message: message.to_string() }
    }

    /// The first error (or missing-plugin report) waiting on the bus, mapped to a clear error.
    fn bus_error(&mut self, frame: u64) -> Option<VideoError> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Element]) {
            match msg.view() {
                gst::MessageView::Element(el) => {
                    if let Some(s) = el.structure().filter(|s| s.name() == "missing-plugin") {
                        let detail = s
                            .get::<gst::Caps>("detail")
                            .map(|c| c.to_string())
                            .or_else(|_| s.get::<String>("detail"))
                            .unwrap_or_else(|_| s.to_string());
                        tracing::warn!(
                            "no GStreamer decoder for a stream of {}: {detail}",
                            super::redact_credentials(&self.input)
                        );
                        self.missing = Some(detail);
                    }
                }
                gst::MessageView::Error(err) => {
                    let e = err.error();
                    let text = match err.debug() {
                        Some(d) => format!("{e} ({d})"),
                        None => e.to_string(),
                    };
                    if let Some(caps) = self.missing.take() {
                        return Some(VideoError::UnsupportedCodec { input: self.input.clone(), caps });
                    }
                    if e.matches(gst::CoreError::MissingPlugin) || e.matches(gst::StreamError::CodecNotFound) {
                        return Some(VideoError::UnsupportedCodec { input: self.input.clone(), caps: text });
                    }
                    if frame <= 1
                        && (e.matches(gst::StreamError::TypeNotFound)
                            || e.matches(gst::StreamError::WrongType)
                            || e.matches(gst::StreamError::Demux)
                            || e.matches(gst::StreamError::Format))
                    {
                        return Some(self.not_a_video(&e.to_string()));
                    }
                    if frame <= 1 && e.matches(gst::ResourceError::NotFound) {
                        return Some(VideoError::InputNotFound(format!("{} ({e})", self.input)));
                    }
                    if frame <= 1 && e.matches(gst::StreamError::Failed) && text.contains("not-linked") {
                        return Some(self.no_frames());
                    }
                    return Some(VideoError::Decode { frame, message: text });
                }
                _ => {}
            }
        }
        None
    }

    fn no_frames(&mut self) -> VideoError {
        match self.missing.take() {
            Some(caps) => VideoError::UnsupportedCodec { input: self.input.clone(), caps },
            None => VideoError::NoFrames { input: self.input.clone() },
        }
    }
}

impl Drop for VideoSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
