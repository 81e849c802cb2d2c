//! Video input/output and the threaded segmentation + tracking pipeline.
//!
//! - [`source`]: a GStreamer decode pipeline (template in `pipelines/decode.txt`, `uridecodebin` by
//!   default) ending in an RGB appsink; frames (with PTS) are copied into recycled buffers from a
//!   [`FramePool`].
//! - [`sink`]: an appsrc-fed encode pipeline (template in `pipelines/encode.txt`: `x264enc`, falling
//!   back to `openh264enc`) writing an MP4 that keeps the input timestamps.
//! - [`pipeline`]: decode → segment (shared, batching) → track → draw → encode, one thread per
//!   stage, bounded channels; one or many streams.
//! - [`io`]: the source and sink as the stream core's edge traits.
//! - [`job`]: template resolution, per-stream output naming, building a stream.
//! - [`templates`]: loading and checking the editable pipeline templates (missing elements are
//!   reported with the Debian package that provides them).

pub mod bench;
pub mod io;
pub mod job;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod templates;
pub mod yuv;

use std::time::Duration;

pub use crate::frame::{Frame, FramePool, VideoInfo};
use crate::types::ImageView;

pub use pipeline::{MultiReport, PipelineConfig, RunReport, StageTimes, Stream};
pub use sink::{SinkConfig, VideoSink};
pub use source::{SourceConfig, VideoSource};

/// Errors of the video module.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("input file not found: {0}")]
    InputNotFound(String),
    #[error("input file is empty (0 bytes): {0}")]
    EmptyInput(String),
    #[error("input is not a regular file: {0}")]
    NotAFile(String),
    #[error("{input}: not a video GStreamer can read ({message})")]
    NotAVideo { input: String, message: String },
    #[error(
        "{input}: no decoder for this video codec ({caps}). Install the decoder: for most codecs \
         `apt-get install gstreamer1.0-libav` (avdec_*), else gstreamer1.0-plugins-bad / -ugly"
    )]
    UnsupportedCodec { input: String, caps: String },
    #[error("{input}: contains no video frame")]
    NoFrames { input: String },
    #[error("timed out after {0:?} waiting for the first video frame")]
    OpenTimeout(Duration),
    #[error(
        "GStreamer element `{element}` is not installed (needed by the {role} pipeline). \
         Install the Debian package `{package}`{hint}"
    )]
    MissingElement { element: String, role: &'static str, package: &'static str, hint: &'static str },
    #[error("invalid {role} pipeline template: {message}\n  template: {template}")]
    Template { role: &'static str, template: String, message: String },
    #[error("decode error at frame {frame}: {message}")]
    Decode { frame: u64, message: String },
    #[error(
        "input ended at frame {decoded} but its header announces {expected} frames: the file is \
         truncated or corrupt from frame {} on", decoded + 1
    )]
    Truncated { decoded: u64, expected: u64 },
    #[error("encoder error after {frames} frames: {message}")]
    Encode { frames: u64, message: String },
    #[error("{stage} stage failed at frame {frame}: {cause}")]
    Stage { stage: &'static str, frame: u64, cause: StageError },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// What failed inside a pipeline stage (each module's own error).
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Overlay(#[from] crate::overlay::OverlayError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
}

impl VideoError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        VideoError::Io { context: context.into(), source }
    }
}

/// Initialise GStreamer once (cheap to call again).
pub fn init() -> Result<(), VideoError> {
    gstreamer::init().map_err(|e| VideoError::Init(e.to_string()))
}

/// Convert a local path or URI to the URI `uridecodebin` wants, checking local files first so a
/// missing or empty file gets a clear error before GStreamer is involved.
pub fn input_to_uri(input: &str) -> Result<String, VideoError> {
    if input.contains("://") {
        if let Some(path) = input.strip_prefix("file://") {
            check_local_file(std::path::Path::new(path))?;
        }
        return Ok(input.to_string());
    }
    let path = std::path::Path::new(input);
    check_local_file(path)?;
    let abs = std::fs::canonicalize(path).map_err(|e| VideoError::io(format!("cannot resolve {input}"), e))?;
    gstreamer::glib::filename_to_uri(&abs, None).map(|u| u.to_string()).map_err(|e| VideoError::Other(e.to_string()))
}

fn check_local_file(path: &std::path::Path) -> Result<(), VideoError> {
    let shown = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(VideoError::InputNotFound(shown)),
        Err(e) => return Err(VideoError::io(format!("cannot read {shown}"), e)),
    };
    if !meta.is_file() {
        return Err(VideoError::NotAFile(shown));
    }
    if meta.len() == 0 {
        return Err(VideoError::EmptyInput(shown));
    }
    Ok(())
}

/// `true` for inputs that are live streams by their scheme (rtsp, udp, …).
pub fn is_live_uri(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    ["rtsp://", "rtsps://", "rtspt://", "udp://", "rtp://", "srt://", "rtmp://"].iter().any(|s| lower.starts_with(s))
}

pub(crate) fn clock_to_duration(t: Option<gstreamer::ClockTime>) -> Option<Duration> {
    t.map(|t| Duration::from_nanos(t.nseconds()))
}

pub(crate) fn duration_to_clock(d: Duration) -> gstreamer::ClockTime {
    gstreamer::ClockTime::from_nseconds(d.as_nanos() as u64)
}

/// A segmenter that finds nothing: runs the pipeline's I/O without a model (`--null-model`,
/// tests, measuring pipeline overhead).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSegmenter;

impl crate::types::Segmenter for NullSegmenter {
    fn segment(&mut self, _image: ImageView<'_>) -> Result<Vec<crate::types::Detection>, crate::model::ModelError> {
        Ok(Vec::new())
    }
    fn describe(&self) -> String {
        "no model (null segmenter)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.mp4");
        assert!(matches!(input_to_uri(missing.to_str().unwrap()), Err(VideoError::InputNotFound(_))));
        let empty = dir.path().join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(input_to_uri(empty.to_str().unwrap()), Err(VideoError::EmptyInput(_))));
        assert!(matches!(input_to_uri(dir.path().to_str().unwrap()), Err(VideoError::NotAFile(_))));
        assert!(is_live_uri("RTSP://host/x"));
        assert!(!is_live_uri("file:///x.mp4"));
    }
}

/// Replace the user-info part of every URL in `text` (`rtsp://user:password@host/...`) with `***`,
/// so credentials never reach logs, progress lines or error messages.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#', whitespace or quote.
        let end =
            tail.find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'') || c.is_whitespace()).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact_credentials;

    #[test]
    fn credentials_are_removed_and_everything_else_kept() {
        assert_eq!(
            redact_credentials("failed: rtsp://admin:s3cr@t@10.0.0.2:554/live?x=1 (timeout)"),
            "failed: rtsp://***@10.0.0.2:554/live?x=1 (timeout)"
        );
        assert_eq!(redact_credentials("http://cam/a and rtsp://u@h/b"), "http://cam/a and rtsp://***@h/b");
        assert_eq!(redact_credentials("file:///tmp/v@1.mp4"), "file:///tmp/v@1.mp4");
        assert_eq!(redact_credentials("no url here"), "no url here");
    }
}
