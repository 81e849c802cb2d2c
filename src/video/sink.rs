//! The encode side: appsrc → (template: videoconvert → I420 → x264enc → h264parse → mp4mux →
//! filesink).
//!
//! Frames are copied into buffers from a GStreamer buffer pool (no per-frame allocation) and
//! pushed with the input's PTS and duration, so the output keeps the input's timing. appsrc
//! blocks when its queue is full: backpressure reaches the pipeline's channels. [`VideoSink::finish`]
//! sends EOS and waits for it, which is when mp4mux writes a playable file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::templates::{self, DEFAULT_ENCODE, FALLBACK_ENCODE};
use super::yuv::{I420Mut, rgb_to_i420};
use super::{Frame, VideoError, VideoInfo, duration_to_clock};

/// Encode options.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Encode template (see `pipelines/encode.txt`).
    pub template: String,
    /// Tried when an element of `template` is missing (the default: openh264enc).
    pub fallback: Option<String>,
    /// How long [`VideoSink::finish`] waits for the encoder to drain.
    pub eos_timeout: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            template: DEFAULT_ENCODE.to_string(),
            fallback: Some(FALLBACK_ENCODE.to_string()),
            eos_timeout: Duration::from_secs(120),
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
    frame_duration: Option<Duration>,
    frames: u64,
    last_pts: Option<Duration>,
    output: PathBuf,
    description: String,
    eos_timeout: Duration,
}

impl std::fmt::Debug for VideoSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSink").field("output", &self.output).field("frames", &self.frames).finish()
    }
}

impl VideoSink {
    /// Start an encoder writing `output` for frames described by `info`.
    pub fn create(output: &Path, info: &VideoInfo, cfg: &SinkConfig) -> Result<Self, VideoError> {
        super::init()?;
        let out = output.display().to_string();
        let mut desc = templates::render(&cfg.template, &[("output", &out)]);
        if let Err(e) = templates::check_elements(&desc, "encode") {
            match &cfg.fallback {
                Some(fb) => {
                    let fb_desc = templates::render(fb, &[("output", &out)]);
                    if templates::check_elements(&fb_desc, "encode").is_err() {
                        return Err(e);
                    }
                    tracing::warn!("{e}; falling back to: {fb_desc}");
                    desc = fb_desc;
                }
                None => return Err(e),
            }
        }
        let template_err = |message: String| VideoError::Template { role: "encode", template: desc.clone(), message };
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| template_err(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| template_err("not a pipeline".into()))?;
        let appsrc = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| template_err("needs an appsrc named \"src\" (appsrc name=src ! …)".into()))?;
        let (fn_, fd) = info.fps.unwrap_or((0, 1));
        // I420 from our exact BT.601 converter (videoconvert's RGB->I420 truncates); the template's
        // videoconvert then passes it through, or converts to what another encoder wants.
        let colorimetry: gst_video::VideoColorimetry =
            "bt601".parse().map_err(|e| VideoError::Other(format!("colorimetry: {e}")))?;
        let vinfo = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, info.width, info.height)
            .fps(gst::Fraction::new(fn_, fd))
            .colorimetry(&colorimetry)
            .build()
            .map_err(|e| VideoError::Other(format!("bad video info: {e}")))?;
        let caps = vinfo.to_caps().map_err(|e| VideoError::Other(format!("bad caps: {e}")))?;
        let frame_size = vinfo.size();
        appsrc.set_caps(Some(&caps));
        appsrc.set_format(gst::Format::Time);
        appsrc.set_block(true);
        appsrc.set_max_bytes((frame_size * 3) as u64);
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
            frame_duration: info.fps_f64().map(|f| Duration::from_secs_f64(1.0 / f)),
            frames: 0,
            last_pts: None,
            output: output.to_path_buf(),
            description: desc,
            eos_timeout: cfg.eos_timeout,
        };
        if sink.pipeline.set_state(gst::State::Playing).is_err() {
            let msg = sink.bus_error().unwrap_or_else(|| "could not start the encoder".into());
            return Err(VideoError::Encode { frames: 0, message: msg });
        }
        Ok(sink)
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
            rgb_to_i420(&frame.data, self.width, self.height, &mut planes);
        }
        if let Err(flow) = self.appsrc.push_buffer(buffer) {
            let msg = self.bus_error().unwrap_or_else(|| format!("appsrc refused the frame: {flow:?}"));
            return Err(self.encode_error(msg));
        }
        self.frames += 1;
        if let Some(msg) = self.bus_error() {
            return Err(self.encode_error(msg));
        }
        Ok(())
    }

    fn encode_error(&self, message: String) -> VideoError {
        VideoError::Encode { frames: self.frames, message }
    }

    fn bus_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(match e.debug() {
                Some(d) => format!("{} ({d})", e.error()),
                None => e.error().to_string(),
            }),
            _ => None,
        }
    }

    /// Send EOS, wait until the muxer has written the file, stop. Returns frames written.
    /// With no frame written, the (unplayable) output file is removed.
    pub fn finish(self) -> Result<u64, VideoError> {
        let result = self.drain();
        let _ = self.pipeline.set_state(gst::State::Null);
        let _ = self.pool.set_active(false);
        if self.frames == 0 {
            let _ = std::fs::remove_file(&self.output);
        }
        result.map(|_| self.frames)
    }

    fn drain(&self) -> Result<(), VideoError> {
        if self.appsrc.end_of_stream().is_err() {
            let msg = self.bus_error().unwrap_or_else(|| "encoder refused end-of-stream".into());
            return Err(self.encode_error(msg));
        }
        let bus = self.pipeline.bus().ok_or_else(|| VideoError::Other("pipeline without bus".into()))?;
        let msg = bus
            .timed_pop_filtered(duration_to_clock(self.eos_timeout), &[gst::MessageType::Eos, gst::MessageType::Error]);
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(e)) => Err(self.encode_error(e.error().to_string())),
            _ => Err(self.encode_error(format!("encoder did not finish within {:?}", self.eos_timeout))),
        }
    }
}
