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
pub mod live;
pub mod pipeline;
pub mod record;
pub mod serve;
pub mod sink;
pub mod source;
pub mod templates;
pub mod yuv;

use std::time::Duration;

pub use crate::frame::{Frame, FramePool, VideoInfo};
use crate::types::ImageView;

pub use live::{LiveSource, ReconnectPolicy};
pub use pipeline::{MultiReport, PipelineConfig, RunReport, StageTimes, Stream};
pub use sink::{SinkConfig, VideoSink};
pub use source::{RtspTransport, SourceConfig, VideoSource};

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
    /// An output that may not be written (see [`crate::outputs`]).
    #[error(transparent)]
    Output(Box<crate::outputs::OutputError>),
    #[error(
        "{input}: unsupported URI scheme `{scheme}://` (no GStreamer source handles it; use a file path, file://, http(s)://, rtsp:// …)"
    )]
    UnsupportedScheme { input: String, scheme: String },
    #[error("{input}: cannot connect to {host}: {reason}")]
    Network { input: String, host: String, reason: String },
    #[error("{input}: {host} sent no data for {:.1} s (stall timeout){after}", timeout.as_secs_f64())]
    Stalled { input: String, host: String, timeout: Duration, after: String },
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
/// missing or empty file gets a clear error before GStreamer is involved. `file://` URIs are
/// percent-decoded (`file:///a%20b.mp4` is the file `/a b.mp4`) and checked like paths; a scheme
/// no GStreamer source handles is [`VideoError::UnsupportedScheme`].
pub fn input_to_uri(input: &str) -> Result<String, VideoError> {
    if let Some(scheme) = crate::outputs::uri_scheme(input) {
        if scheme.eq_ignore_ascii_case("file") {
            let path = crate::outputs::file_uri_to_path(input).ok_or_else(|| {
                VideoError::Other(format!(
                    "{input}: not a local file URI (expected file:///absolute/path, with %XX escapes)"
                ))
            })?;
            return local_file_uri(&path, input);
        }
        init()?;
        if gstreamer::Element::make_from_uri(gstreamer::URIType::Src, input, None).is_err() {
            return Err(VideoError::UnsupportedScheme {
                input: redact_credentials(input),
                scheme: scheme.to_ascii_lowercase(),
            });
        }
        return Ok(input.to_string());
    }
    // A camera device (`/dev/video0`): v4l2src's URI.
    if input.starts_with("/dev/video") {
        return Ok(format!("v4l2://{input}"));
    }
    local_file_uri(std::path::Path::new(input), input)
}

fn local_file_uri(path: &std::path::Path, input: &str) -> Result<String, VideoError> {
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

/// The `host:port` of a network URI (credentials removed; default port by scheme), `None` for
/// local inputs or schemes without a TCP port we know.
pub fn network_host(uri: &str) -> Option<(String, u16)> {
    let scheme = crate::outputs::uri_scheme(uri)?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        "rtsp" | "rtspt" => 554,
        "rtsps" => 322,
        "rtmp" => 1935,
        _ => return None,
    };
    let rest = &uri[scheme.len() + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6.split_once(']')?;
        (h.to_string(), tail.strip_prefix(':').and_then(|p| p.parse().ok()))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (hostport.to_string(), None),
        }
    };
    (!host.is_empty()).then(|| (host, port.unwrap_or(default_port)))
}

/// Before GStreamer opens a network input: resolve its host and open a TCP connection (closed at
/// once), so that "host not found", "connection refused" and timeouts are reported as such, with
/// the host (GStreamer's HTTP source reports them all as "Internal data stream error").
pub fn probe_network_input(uri: &str, timeout: Duration) -> Result<(), VideoError> {
    use std::net::{TcpStream, ToSocketAddrs};
    let Some((host, port)) = network_host(uri) else { return Ok(()) };
    let shown = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let err = |reason: String| VideoError::Network { input: redact_credentials(uri), host: shown.clone(), reason };
    let addrs: Vec<_> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Err(err(format!("host not found ({e})"))),
    };
    if addrs.is_empty() {
        return Err(err("host not found (no address)".into()));
    }
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    let reason = match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is the server running, is the port right?)".to_string()
        }
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock => {
            format!("no answer within {:.1} s (timeout)", timeout.as_secs_f64())
        }
        Some(e) => e.to_string(),
        None => "no address to connect to".into(),
    };
    Err(err(reason))
}

/// `true` for inputs that are live streams by their scheme (rtsp, udp, …).
pub fn is_live_uri(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    ["rtsp://", "rtsps://", "rtspt://", "udp://", "rtp://", "srt://", "rtmp://", "v4l2://"]
        .iter()
        .any(|s| lower.starts_with(s))
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
        // a camera device is v4l2src's URI, and live
        assert_eq!(input_to_uri("/dev/video0").unwrap(), "v4l2:///dev/video0");
        assert!(is_live_uri("v4l2:///dev/video0"));
        // file:// URIs are percent-decoded and checked like paths
        let spaced = dir.path().join("a b.mp4");
        std::fs::write(&spaced, b"x").unwrap();
        let uri = format!("file://{}/a%20b.mp4", dir.path().display());
        assert!(input_to_uri(&uri).unwrap().ends_with("/a%20b.mp4"));
        let uri = format!("file://{}/nope%20.mp4", dir.path().display());
        assert!(matches!(input_to_uri(&uri), Err(VideoError::InputNotFound(_))));
        assert!(matches!(input_to_uri("foo://u:pw@x/y"), Err(VideoError::UnsupportedScheme { .. })));
        let msg = input_to_uri("foo://u:pw@x/y").unwrap_err().to_string();
        assert!(msg.contains("foo://") && !msg.contains("pw"), "{msg}");
    }

    #[test]
    fn network_hosts() {
        assert_eq!(network_host("http://u:p@example.com/x"), Some(("example.com".into(), 80)));
        assert_eq!(network_host("rtsp://10.0.0.2:8554/live"), Some(("10.0.0.2".into(), 8554)));
        assert_eq!(network_host("https://[::1]:8443/a"), Some(("::1".into(), 8443)));
        assert_eq!(network_host("file:///x"), None);
        assert_eq!(network_host("udp://0.0.0.0:5000"), None);
        let e = probe_network_input("http://nonexistent.invalid/x.mp4", Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("nonexistent.invalid:80") && e.to_string().contains("host not found"), "{e}");
        // a port nobody listens on: refused
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e =
            probe_network_input(&format!("http://u:secret@127.0.0.1:{port}/x"), Duration::from_secs(5)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("refused") && msg.contains(&format!("127.0.0.1:{port}")) && !msg.contains("secret"),
            "{msg}"
        );
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

impl From<crate::outputs::OutputError> for VideoError {
    fn from(e: crate::outputs::OutputError) -> Self {
        VideoError::Output(Box::new(e))
    }
}
