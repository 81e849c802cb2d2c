//! Editable GStreamer pipeline templates (`pipelines/*.txt`, `configs/pipeline.toml`).
//!
//! A template is a `gst-launch` description with placeholders (`{uri}`, `{path}`, `{output}`) and
//! `#` comment lines. The defaults are compiled in, so the binary works from any directory; users
//! swap in other elements (e.g. `nvh264dec`, `nvh264enc`) with a flag or the config file, without
//! recompiling. Before launching, every element named in a template is looked up, and a missing one
//! is reported with the Debian package that provides it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::VideoError;

/// The default decode template (`pipelines/decode.txt`).
pub const DEFAULT_DECODE: &str = include_str!("../../pipelines/decode.txt");
/// The default encode template (`pipelines/encode.txt`, x264enc).
pub const DEFAULT_ENCODE: &str = include_str!("../../pipelines/encode.txt");
/// The live recording template (`pipelines/record-live.txt`): segments through splitmuxsink.
pub const DEFAULT_RECORD: &str = include_str!("../../pipelines/record-live.txt");
/// The fallback encode template (`pipelines/encode-openh264.txt`), used when x264enc is missing.
pub const FALLBACK_ENCODE: &str = include_str!("../../pipelines/encode-openh264.txt");

/// `configs/pipeline.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesFile {
    pub decode: Option<String>,
    pub encode: Option<String>,
    pub channel_capacity: Option<usize>,
}

impl PipelinesFile {
    /// Read the config; template paths in it are resolved (cwd first, then the file's directory)
    /// and replaced by the template text.
    pub fn load(path: &Path) -> Result<Self, VideoError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| VideoError::io(format!("cannot read {}", path.display()), e))?;
        let mut cfg: PipelinesFile = toml::from_str(&text)
            .map_err(|e| VideoError::Other(format!("invalid pipeline config {}: {e}", path.display())))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for t in [&mut cfg.decode, &mut cfg.encode].into_iter().flatten() {
            *t = load_template_relative(t, Some(&base))?;
        }
        Ok(cfg)
    }
}

/// A template given on the command line: a path to a file holding it, or the description itself.
pub fn load_template(spec: &str) -> Result<String, VideoError> {
    load_template_relative(spec, None)
}

fn load_template_relative(spec: &str, base: Option<&Path>) -> Result<String, VideoError> {
    let mut candidates = vec![PathBuf::from(spec)];
    if let Some(b) = base {
        candidates.push(b.join(spec));
        // configs/pipeline.toml names pipelines/… relative to the repository root.
        if let Some(parent) = b.parent() {
            candidates.push(parent.join(spec));
        }
    }
    for c in candidates {
        if c.is_file() {
            return std::fs::read_to_string(&c).map_err(|e| VideoError::io(format!("cannot read {}", c.display()), e));
        }
    }
    if !spec.contains('!') && (spec.ends_with(".txt") || spec.contains('/')) {
        return Err(VideoError::InputNotFound(format!("pipeline template file {spec}")));
    }
    Ok(spec.to_string())
}

/// Remove comment lines and join the rest into one description.
pub fn strip_comments(template: &str) -> String {
    template.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect::<Vec<_>>().join(" ")
}

/// Quote-safe value for a `key="{placeholder}"` slot.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Fill the placeholders (`{name}` → escaped value) of a comment-stripped template.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = strip_comments(template);
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), &escape(v));
    }
    out
}

/// The element factory names used in a description (`a ! b prop=1 ! caps/x ! c`), skipping
/// caps, pad references (`name.`) and properties.
pub fn element_names(description: &str) -> Vec<String> {
    let mut names = Vec::new();
    for seg in description.split('!') {
        let Some(first) = seg.split_whitespace().next() else { continue };
        if first.contains('/') || first.contains('=') || first.ends_with('.') || first.contains('"') {
            continue;
        }
        // "( ... )" bins and "name.pad" references
        let first = first.trim_start_matches('(');
        if first.is_empty() || first.contains('.') {
            continue;
        }
        names.push(first.to_string());
    }
    names
}

/// The Debian package providing a GStreamer element, and a hint.
pub fn debian_package(element: &str) -> (&'static str, &'static str) {
    match element {
        "x264enc" | "x264" => ("gstreamer1.0-plugins-ugly", ""),
        e if e.starts_with("avdec_")
            || e.starts_with("avenc_")
            || e.starts_with("avdemux_")
            || e.starts_with("avmux_") =>
        {
            ("gstreamer1.0-libav", "")
        }
        e if e.starts_with("nv") || e.starts_with("cuda") => {
            ("gstreamer1.0-plugins-bad", " (NVIDIA elements also need an NVIDIA GPU and driver)")
        }
        e if e.starts_with("vaapi") => ("gstreamer1.0-vaapi", ""),
        e if e.starts_with("va") && e.len() > 2 && !e.starts_with("valve") => ("gstreamer1.0-plugins-bad", ""),
        "openh264enc" | "openh264dec" | "h264parse" | "h265parse" | "mpegtsmux" | "tsdemux" | "rtmpsrc" => {
            ("gstreamer1.0-plugins-bad", "")
        }
        "mp4mux" | "qtmux" | "qtdemux" | "matroskamux" | "matroskademux" | "avimux" | "avidemux" | "rtspsrc"
        | "souphttpsrc" | "vp8enc" | "vp8dec" | "vp9enc" | "vp9dec" | "rtph264depay" | "rtph264pay" | "jpegenc"
        | "jpegdec" | "pngenc" | "udpsrc" | "flvdemux" => ("gstreamer1.0-plugins-good", ""),
        "uridecodebin" | "uridecodebin3" | "decodebin" | "decodebin3" | "playbin" | "videoconvert" | "videoscale"
        | "videorate" | "appsrc" | "appsink" | "videotestsrc" | "theoraenc" | "theoradec" | "oggdemux" => {
            ("gstreamer1.0-plugins-base", "")
        }
        "filesrc" | "filesink" | "queue" | "identity" | "fakesink" | "tee" | "capsfilter" => {
            ("gstreamer1.0-plugins-base", " (core elements: libgstreamer1.0-0)")
        }
        _ => ("the GStreamer plugin package providing it", " (try `apt-file search` or `gst-inspect-1.0`)"),
    }
}

/// Check that every element of a description exists.
pub fn check_elements(description: &str, role: &'static str) -> Result<(), VideoError> {
    super::init()?;
    for name in element_names(description) {
        if gstreamer::ElementFactory::find(&name).is_none() {
            let (package, hint) = debian_package(&name);
            return Err(VideoError::MissingElement { element: name, role, package, hint });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_names_skip_caps_and_properties() {
        let d = render(DEFAULT_ENCODE, &[("output", "/tmp/a \"b\".mp4")]);
        assert_eq!(element_names(&d), ["appsrc", "videoconvert", "x264enc", "h264parse", "mp4mux", "filesink"]);
        assert!(d.contains(r#"location="/tmp/a \"b\".mp4""#));
        assert!(!d.contains('#'));
        let d = render(DEFAULT_DECODE, &[("uri", "file:///x.mp4")]);
        assert_eq!(element_names(&d), ["uridecodebin", "videoconvert", "appsink"]);
    }

    #[test]
    fn missing_element_names_package() {
        let err = check_elements("appsrc name=src ! definitelynotanelement ! fakesink", "encode").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("definitelynotanelement"), "{msg}");
        assert_eq!(debian_package("x264enc").0, "gstreamer1.0-plugins-ugly");
        assert_eq!(debian_package("avdec_msmpeg4").0, "gstreamer1.0-libav");
        assert_eq!(debian_package("nvh264enc").0, "gstreamer1.0-plugins-bad");
        // the default templates only use installed elements on this machine
        check_elements(&render(DEFAULT_DECODE, &[("uri", "file:///x")]), "decode").unwrap();
    }
}
