//! Crash-safe recording of a live stream in segments (splitmuxsink).
//!
//! `-o cam.mp4` on a live input records `cam-20261203T081500Z.mp4`, `cam-20261203T081600Z.mp4`,
//! … (each named by its start time, UTC), one per `--segment-seconds`. A segment is written as
//! `NAME.mp4.partial` and renamed to `NAME.mp4` as soon as splitmuxsink reports it closed, so a
//! crash loses at most the open segment, and a file without `.partial` is always complete. An
//! existing file is never overwritten: a name that is taken gets `-1`, `-2`, … appended.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::VideoError;

/// Suffix of a segment still being written.
pub const PARTIAL: &str = ".partial";

/// The segment files of one recording.
#[derive(Debug, Clone)]
pub struct Segments {
    dir: PathBuf,
    stem: String,
    /// Segment length.
    pub length: Duration,
    /// Closed (renamed, complete) segments, in order.
    closed: Arc<Mutex<Vec<PathBuf>>>,
}

impl Segments {
    /// Segments named after `output` (`DIR/STEM.mp4` → `DIR/STEM-<start>.mp4`).
    pub fn new(output: &Path, length: Duration) -> Self {
        let dir = output.parent().map(Path::to_path_buf).unwrap_or_default();
        let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "segment".into());
        Segments { dir, stem, length, closed: Arc::default() }
    }

    /// The next segment's partial path: named by the current UTC time, never an existing file.
    pub fn next_location(&self) -> PathBuf {
        let stamp = gst::glib::DateTime::now_utc()
            .and_then(|t| t.format("%Y%m%dT%H%M%SZ"))
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "segment".into());
        let taken = |name: &str| {
            let final_path = self.dir.join(name);
            final_path.exists() || partial_of(&final_path).exists()
        };
        let mut name = format!("{}-{stamp}.mp4", self.stem);
        let mut k = 1;
        while taken(&name) {
            name = format!("{}-{stamp}-{k}.mp4", self.stem);
            k += 1;
        }
        partial_of(&self.dir.join(name))
    }

    /// Closed segments so far.
    pub fn closed(&self) -> Vec<PathBuf> {
        self.closed.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Name every segment at its start time (splitmuxsink's `format-location`).
    pub fn attach(&self, mux: &gst::Element) {
        let me = self.clone();
        mux.connect("format-location", false, move |_| {
            let loc = me.next_location();
            tracing::info!("recording segment {}", loc.display());
            Some(loc.display().to_string().to_value())
        });
    }

    /// Handle splitmuxsink's bus messages: rename each closed segment to its final name.
    pub fn on_message(&self, msg: &gst::Message) -> Result<(), VideoError> {
        let gst::MessageView::Element(el) = msg.view() else { return Ok(()) };
        let Some(s) = el.structure().filter(|s| s.name() == "splitmuxsink-fragment-closed") else { return Ok(()) };
        let Ok(location) = s.get::<String>("location") else { return Ok(()) };
        let partial = PathBuf::from(location);
        let Some(done) = final_of(&partial) else { return Ok(()) };
        if done.exists() {
            // never overwrite: keep the segment under its partial name
            tracing::warn!("{} appeared meanwhile; the segment stays {}", done.display(), partial.display());
            return Ok(());
        }
        std::fs::rename(&partial, &done)
            .map_err(|e| VideoError::io(format!("cannot rename segment {}", partial.display()), e))?;
        tracing::info!("segment closed: {}", done.display());
        if let Ok(mut c) = self.closed.lock() {
            c.push(done);
        }
        Ok(())
    }
}

fn partial_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(PARTIAL);
    PathBuf::from(s)
}

fn final_of(p: &Path) -> Option<PathBuf> {
    p.to_str()?.strip_suffix(PARTIAL).map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_carry_the_start_time_and_never_reuse_a_file() {
        let _ = gst::init();
        let dir = tempfile::tempdir().unwrap();
        let seg = Segments::new(&dir.path().join("cam.mp4"), Duration::from_secs(60));
        let first = seg.next_location();
        let name = first.file_name().unwrap().to_string_lossy().to_string();
        // cam-YYYYmmddTHHMMSSZ.mp4.partial
        assert!(name.starts_with("cam-") && name.ends_with("Z.mp4.partial"), "{name}");
        assert_eq!(name.len(), "cam-".len() + 16 + ".mp4.partial".len(), "{name}");
        // the same second again: a suffix, never the same file
        std::fs::write(&first, b"x").unwrap();
        let second = seg.next_location();
        assert_ne!(first, second);
        assert!(!second.exists());
        assert_eq!(final_of(&first).unwrap().extension().unwrap(), "mp4");
    }

    #[test]
    fn a_recording_is_cut_into_complete_segments() {
        use crate::frame::{Frame, VideoInfo};
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cam.mp4");
        let info =
            VideoInfo { width: 64, height: 48, fps: Some((25, 1)), duration: None, live: true, uri: String::new() };
        let mut sink =
            super::super::VideoSink::create_segmented(&out, &info, &Default::default(), Duration::from_secs(1))
                .unwrap();
        for i in 0..130u64 {
            let data = vec![(i * 2) as u8; 64 * 48 * 3];
            let frame = Frame {
                index: i,
                pts: Some(Duration::from_millis(40 * i)),
                duration: Some(Duration::from_millis(40)),
                width: 64,
                height: 48,
                data,
            };
            sink.push(&frame).unwrap();
        }
        let closed_before_end = sink.closed_segments().len();
        assert_eq!(sink.finish().unwrap(), 130);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        eprintln!("{files:?}, {closed_before_end} closed before the end");
        assert!(closed_before_end >= 3, "segments are renamed as they close, not at the end");
        assert!(files.iter().all(|p| p.extension().is_some_and(|e| e == "mp4")), "no partial file left: {files:?}");
        assert!(files.len() >= 5, "130 frames at 25 fps in 1 s segments: {files:?}");
    }
}
