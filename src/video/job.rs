//! Job setup shared by every front end: template resolution, per-stream output naming, and
//! building a pipeline [`Stream`] from an opened source.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::pipeline::Stream;
use super::templates::{self, PipelinesFile};
use super::{SinkConfig, SourceConfig, VideoError, VideoSink, VideoSource};
use crate::export::TrackWriter;
use crate::overlay::OverlayStyle;
use crate::stream::io::TrackFiles;
use crate::stream::{PromptSelector, StreamConfig, StreamProcessor};
use crate::track::TrackerConfig;

/// The placeholder for an input's file stem in output paths (`--tracks-mot out/{stem}.txt`).
pub const STEM: &str = "{stem}";

/// Decode/encode templates and channel capacity from a pipeline config file and flags (flags win).
#[derive(Debug, Clone)]
pub struct Templates {
    pub source: SourceConfig,
    pub sink: SinkConfig,
    /// The config file's channel capacity, if it sets one.
    pub channel_capacity: Option<usize>,
}

impl Templates {
    /// `file`: a `configs/pipeline.toml`-style file; `decode`/`encode`: a template path or an
    /// inline description each.
    pub fn resolve(file: Option<&Path>, decode: Option<&str>, encode: Option<&str>) -> Result<Self, VideoError> {
        let file_cfg = match file {
            Some(p) => PipelinesFile::load(p)?,
            None => PipelinesFile::default(),
        };
        let decode_t = match decode {
            Some(t) => templates::load_template(t)?,
            None => file_cfg.decode.clone().unwrap_or_else(|| templates::DEFAULT_DECODE.to_string()),
        };
        let encode_t = match encode {
            Some(t) => Some(templates::load_template(t)?),
            None => file_cfg.encode.clone(),
        };
        let sink = match encode_t {
            Some(t) => SinkConfig { template: t, fallback: None, ..SinkConfig::default() },
            None => SinkConfig::default(),
        };
        Ok(Self {
            source: SourceConfig { template: decode_t, ..SourceConfig::default() },
            sink,
            channel_capacity: file_cfg.channel_capacity,
        })
    }
}

/// Errors of naming per-stream outputs.
#[derive(Debug, thiserror::Error)]
pub enum NamingError {
    #[error(
        "inputs {first} and {second} have the same name `{stem}`, so their outputs would overwrite each \
         other; rename one (or link it under another name)"
    )]
    SameStem { stem: String, first: String, second: String },
    #[error(
        "{what} `{path}` is one file, but there are {n} inputs: use a directory (ending in /) or put \
         {{stem}} in the name, e.g. `out/{{stem}}{suffix}`"
    )]
    NotPerStream { what: &'static str, path: String, n: usize, suffix: &'static str },
}

/// The file stem of an input path or URL (`stream` when it has none).
pub fn stem_of(input: &str) -> String {
    if let Some((scheme, rest)) = input.split_once("://")
        && !scheme.eq_ignore_ascii_case("file")
    {
        // A URL: its last path segment, else its host; never its credentials, query or port.
        let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host =
            host.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())).map_or(host, |(h, _)| h);
        let last = path.rsplit('/').find(|s| !s.is_empty());
        let stem = last
            .map(|l| Path::new(l).file_stem().and_then(|s| s.to_str()).unwrap_or(l))
            .filter(|s| !s.is_empty())
            .unwrap_or(host);
        let clean: String =
            stem.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        return if clean.is_empty() { "stream".into() } else { clean };
    }
    let path = Path::new(input.strip_prefix("file://").unwrap_or(input));
    path.file_stem().and_then(|s| s.to_str()).filter(|s| !s.is_empty()).unwrap_or("stream").to_string()
}

/// The default overlay video: `INPUT_STEM.tracked.mp4` next to a local input, in the current
/// directory for a URL.
pub fn default_output(input: &str) -> PathBuf {
    let local = !input.contains("://") || input.starts_with("file://");
    let path = Path::new(input.strip_prefix("file://").unwrap_or(input));
    let name = format!("{}.tracked.mp4", stem_of(input));
    match path.parent() {
        Some(dir) if local => dir.join(name),
        _ => PathBuf::from(name),
    }
}

/// Refuse two inputs whose outputs would share a name.
pub fn check_unique_stems(inputs: &[String]) -> Result<(), NamingError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for input in inputs {
        let stem = stem_of(input);
        if let Some(first) = seen.insert(stem.clone(), input) {
            return Err(NamingError::SameStem {
                stem,
                first: super::redact_credentials(first),
                second: super::redact_credentials(input),
            });
        }
    }
    Ok(())
}

/// Expand an output path given for `n` inputs to the path of `input`'s output: `{stem}` is
/// replaced by the input's stem; a directory (existing, or written with a trailing `/`) gets
/// `STEM` + `suffix` inside it; a plain file name is only valid for one input.
pub fn per_stream_path(
    pattern: &Path,
    input: &str,
    n: usize,
    what: &'static str,
    suffix: &'static str,
) -> Result<PathBuf, NamingError> {
    let text = pattern.to_string_lossy();
    let stem = stem_of(input);
    if text.contains(STEM) {
        return Ok(PathBuf::from(text.replace(STEM, &stem)));
    }
    if text.ends_with('/') || pattern.is_dir() {
        return Ok(pattern.join(format!("{stem}{suffix}")));
    }
    if n > 1 {
        return Err(NamingError::NotPerStream { what, path: text.into_owned(), n, suffix });
    }
    Ok(pattern.to_path_buf())
}

/// Where one stream's results go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamOutputs {
    /// Overlay video (`None`: no drawing or encoding).
    pub video: Option<PathBuf>,
    pub tracks_mot: Option<PathBuf>,
    pub tracks_json: Option<PathBuf>,
    /// Mount path on the RTSP server of [`StreamSetup::serve`] (`None`: not served).
    pub serve_path: Option<String>,
}

/// What every stream of a job shares, besides the model.
pub struct StreamSetup<'a> {
    pub tracker: &'a TrackerConfig,
    pub overlay: &'a OverlayStyle,
    pub sink: &'a SinkConfig,
    /// A live input's video is recorded in segments of this length (`None`: one file).
    pub segment: Option<std::time::Duration>,
    /// The RTSP server streams with a [`StreamOutputs::serve_path`] are served on.
    pub serve: Option<&'a super::serve::RtspServer>,
}

/// The default segment length of a live recording (`--segment-seconds`).
pub const DEFAULT_SEGMENT: std::time::Duration = std::time::Duration::from_secs(60);

/// Open an input as the pipeline's frame source: a live input (camera, RTSP …) reconnects after
/// outages ([`super::LiveSource`], `policy`), anything else is a plain [`VideoSource`]. The first
/// connection must succeed either way (bad input fails here, with its clear error).
pub fn open_source(
    input: &str,
    cfg: &SourceConfig,
    policy: super::ReconnectPolicy,
) -> Result<super::pipeline::SourceBox, VideoError> {
    let source = VideoSource::open(input, cfg)?;
    if source.info().live && !source.info().uri.starts_with("file://") {
        Ok(Box::new(super::LiveSource::from_source(source, input, cfg, policy)))
    } else {
        Ok(Box::new(source))
    }
}

/// Build a pipeline stream from an opened source: its processor (tracker scaled to the source's
/// frame rate, optional prompt), its encoder and its track files. Creates the output files.
pub fn build_stream(
    name: String,
    source: super::pipeline::SourceBox,
    prompt: Option<Box<dyn PromptSelector>>,
    outputs: &StreamOutputs,
    setup: &StreamSetup<'_>,
) -> Result<Stream, VideoError> {
    let info = source.info().clone();
    let mut processor =
        StreamProcessor::new(StreamConfig { tracker: setup.tracker.clone(), frame_rate: info.fps_f64() });
    if let Some(p) = prompt {
        processor = processor.with_prompt(p);
    }
    let mut sinks: Vec<super::pipeline::SinkBox> = Vec::new();
    match (&outputs.video, setup.segment) {
        (Some(out), Some(len)) if info.live => {
            sinks.push(Box::new(VideoSink::create_segmented(out, &info, setup.sink, len)?))
        }
        (Some(out), _) => sinks.push(Box::new(VideoSink::create(out, &info, setup.sink)?)),
        (None, _) => {}
    }
    if let (Some(path), Some(server)) = (&outputs.serve_path, setup.serve) {
        sinks.push(Box::new(server.mount(path, &info)?));
    }
    let video: Option<super::pipeline::SinkBox> = match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(Box::new(super::serve::TeeSink(sinks))),
    };
    let mut results: Vec<super::pipeline::ResultSinkBox> = Vec::new();
    if outputs.tracks_mot.is_some() || outputs.tracks_json.is_some() {
        let writer = TrackWriter::create(outputs.tracks_mot.as_deref(), outputs.tracks_json.as_deref())
            .map_err(|e| VideoError::Stage { stage: "track files", frame: 0, cause: e.into() })?;
        // Gap interpolation delays the files by the longest gap; live consumers want each frame now.
        let mut tracker = setup.tracker.clone();
        if let Some(fps) = info.fps_f64().filter(|f| f.is_finite() && *f > 0.0) {
            tracker.frame_rate = fps;
        }
        let gap = if info.live { 0 } else { tracker.interpolation_frames() };
        results.push(Box::new(TrackFiles::new(writer).with_gap_filling(gap)));
    }
    Ok(Stream { name, source, processor, video, results, overlay: setup.overlay.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_stems_never_carry_credentials() {
        assert_eq!(stem_of("rtsp://user:secret@10.0.0.2:554"), "10.0.0.2");
        assert_eq!(stem_of("rtsp://user:secret@cam.local:8554/live/main?token=abc"), "main");
        assert_eq!(stem_of("http://u:p@host/videos/clip.mp4"), "clip");
        assert_eq!(stem_of("/data/a.mp4"), "a");
        assert_eq!(stem_of("file:///data/b.mkv"), "b");
        assert!(!default_output("rtsp://admin:hunter2@cam").to_string_lossy().contains("hunter2"));
    }

    #[test]
    fn default_output_names() {
        assert_eq!(default_output("/data/clip.mp4"), PathBuf::from("/data/clip.tracked.mp4"));
        assert_eq!(default_output("clip.avi"), PathBuf::from("clip.tracked.mp4"));
        assert_eq!(default_output("rtsp://cam/live"), PathBuf::from("live.tracked.mp4"));
        assert_eq!(default_output("file:///v/a.mkv"), PathBuf::from("/v/a.tracked.mp4"));
    }

    #[test]
    fn per_stream_paths() {
        let p = |s: &str, n| per_stream_path(Path::new(s), "/v/cam1.mp4", n, "--tracks-mot", ".txt");
        assert_eq!(p("out/{stem}.txt", 3).unwrap(), PathBuf::from("out/cam1.txt"));
        assert_eq!(p("out/", 3).unwrap(), PathBuf::from("out/cam1.txt"));
        assert_eq!(p("t.txt", 1).unwrap(), PathBuf::from("t.txt"));
        let e = p("t.txt", 2).unwrap_err().to_string();
        assert!(e.contains("{stem}") && e.contains("2 inputs"), "{e}");
    }

    #[test]
    fn same_stems_are_refused() {
        let ok = ["a/x.mp4".to_string(), "b/y.mp4".to_string()];
        assert!(check_unique_stems(&ok).is_ok());
        let clash = ["a/x.mp4".to_string(), "rtsp://u:pw@cam/x".to_string()];
        let e = check_unique_stems(&clash).unwrap_err().to_string();
        assert!(e.contains("`x`") && !e.contains("pw"), "{e}");
    }
}
