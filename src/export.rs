//! Track files: MOTChallenge text and JSON Lines.
//!
//! - MOTChallenge (`--tracks-mot`): one line per track per frame,
//!   `frame,id,x,y,w,h,score,-1,-1,-1`, frames 1-based, box = top-left + size in pixels
//!   (the format of `gt.txt` and of `eval-mot`).
//! - JSON Lines (`--tracks-json`): one line per frame,
//!   `{"frame":1,"pts":0.04,"objects":[{"id":3,"bbox":[x,y,w,h],"score":0.9,"class_id":0,"rle":{"size":[h,w],"counts":[..]}}]}`
//!   with `pts` in seconds (`null` when unknown) and the mask as COCO uncompressed RLE
//!   (column-major, counts start with zeros; omitted when the detection had no mask).
//!
//! Both are written through [`crate::outputs::AtomicFile`]: to `FILE.partial` next to `FILE`,
//! flushed every [`FLUSH_EVERY`] frames (so a killed run leaves complete lines in the partial
//! file), and renamed over `FILE` by [`TrackWriter::finish`]. Until then a previous `FILE` is
//! untouched; a writer dropped without `finish` removes its partial files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::mask::Rle;
use crate::outputs::AtomicFile;
use crate::types::BBox;

/// Frames between flushes.
pub const FLUSH_EVERY: u64 = 50;

/// Errors writing a track file.
#[derive(Debug, thiserror::Error)]
#[error("cannot write track file {path}: {source}")]
pub struct ExportError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// One exported track in one frame.
#[derive(Debug, Clone, Serialize)]
pub struct ExportObject {
    pub id: u64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    pub class_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rle: Option<Rle>,
    /// Filled in by [`GapFiller`] (the track was not matched in this frame); JSON only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interpolated: bool,
}

impl ExportObject {
    pub fn new(id: u64, bbox: &BBox, score: f32, class_id: u32, rle: Option<Rle>) -> Self {
        Self { id, bbox: [bbox.x1, bbox.y1, bbox.width(), bbox.height()], score, class_id, rle, interpolated: false }
    }
}

/// One frame held back by a [`GapFiller`].
#[derive(Debug, Clone)]
pub struct HeldFrame {
    /// 1-based frame number.
    pub frame: u64,
    pub pts: Option<Duration>,
    pub objects: Vec<ExportObject>,
}

/// Offline gap interpolation for track files (`interpolate_gap` in the tracker config): a
/// track that is missing for at most `max_gap` frames and then seen again gets linearly
/// interpolated boxes (and scores) in the frames between, flagged `interpolated`, without a mask.
///
/// It is a delay line: each frame is held back `max_gap` frames (the longest gap it can still
/// fill) and then released, in order; [`GapFiller::drain`] releases the rest at the end. The
/// tracker's own output (and the video) is not delayed. Only for recorded input: a live stream's
/// consumers want each frame now.
#[derive(Debug, Default)]
pub struct GapFiller {
    max_gap: u64,
    held: std::collections::VecDeque<HeldFrame>,
    /// Each track's last real observation: frame, box, score, class.
    last: std::collections::HashMap<u64, (u64, [f32; 4], f32, u32)>,
}

impl GapFiller {
    /// Fill gaps of up to `max_gap` frames (0: pass frames straight through).
    pub fn new(max_gap: u64) -> Self {
        Self { max_gap, ..Self::default() }
    }

    /// Add frame `frame` (1-based, increasing) and append the frames now released to `ready`.
    pub fn push(&mut self, frame: u64, pts: Option<Duration>, objects: &[ExportObject], ready: &mut Vec<HeldFrame>) {
        for o in objects {
            if let Some(&(f0, b0, s0, _)) = self.last.get(&o.id) {
                let gap = frame.saturating_sub(f0);
                if gap > 1 && gap <= self.max_gap + 1 {
                    for h in self.held.iter_mut().filter(|h| h.frame > f0 && h.frame < frame) {
                        if h.objects.iter().any(|x| x.id == o.id) {
                            continue;
                        }
                        let t = (h.frame - f0) as f32 / gap as f32;
                        let lerp = |a: f32, b: f32| a + (b - a) * t;
                        let bbox = std::array::from_fn(|k| lerp(b0[k], o.bbox[k]));
                        h.objects.push(ExportObject {
                            id: o.id,
                            bbox,
                            score: lerp(s0, o.score),
                            class_id: o.class_id,
                            rle: None,
                            interpolated: true,
                        });
                    }
                }
            }
            self.last.insert(o.id, (frame, o.bbox, o.score, o.class_id));
        }
        self.held.push_back(HeldFrame { frame, pts, objects: objects.to_vec() });
        while self.held.len() as u64 > self.max_gap {
            let Some(h) = self.held.pop_front() else { break };
            ready.push(h);
        }
        // Tracks unseen for longer than any gap we fill are forgotten.
        let horizon = frame.saturating_sub(self.max_gap + 1);
        if frame.is_multiple_of(64) {
            self.last.retain(|_, v| v.0 >= horizon);
        }
    }

    /// Release every held frame (end of input, or an interrupted run).
    pub fn drain(&mut self, ready: &mut Vec<HeldFrame>) {
        ready.extend(self.held.drain(..));
    }
}

#[derive(Serialize)]
struct JsonFrame<'a> {
    frame: u64,
    pts: Option<f64>,
    objects: &'a [ExportObject],
}

/// The path that means standard output: JSON Lines (or MOT rows) for another program to follow
/// live, flushed after every frame.
pub const STDOUT: &str = "-";

/// Where a track file's bytes go.
enum Dest {
    /// A file written atomically (committed by [`TrackWriter::finish`]).
    File(AtomicFile),
    Stdout(std::io::Stdout),
}

impl Write for Dest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Dest::File(f) => f.write(buf),
            Dest::Stdout(s) => s.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Dest::File(f) => f.write_all(buf),
            Dest::Stdout(s) => s.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Dest::File(f) => f.flush(),
            Dest::Stdout(s) => s.flush(),
        }
    }
}

struct Out {
    path: PathBuf,
    w: Dest,
}

impl Out {
    fn create(path: &Path) -> Result<Self, ExportError> {
        let w = if path.as_os_str() == STDOUT {
            Dest::Stdout(std::io::stdout())
        } else {
            Dest::File(
                AtomicFile::create(path).map_err(|e| ExportError { path: path.to_path_buf(), source: e.into() })?,
            )
        };
        Ok(Self { path: path.to_path_buf(), w })
    }
    fn is_stdout(&self) -> bool {
        matches!(self.w, Dest::Stdout(_))
    }
    fn err(&self, source: std::io::Error) -> ExportError {
        ExportError { path: self.path.clone(), source }
    }
}

/// Writes the MOT and/or JSON Lines track files.
pub struct TrackWriter {
    mot: Option<Out>,
    json: Option<Out>,
    frames: u64,
    line: String,
}

impl TrackWriter {
    /// Create the requested files (either may be `None`).
    pub fn create(mot: Option<&Path>, json: Option<&Path>) -> Result<Self, ExportError> {
        Ok(Self {
            mot: mot.map(Out::create).transpose()?,
            json: json.map(Out::create).transpose()?,
            frames: 0,
            line: String::new(),
        })
    }

    pub fn is_active(&self) -> bool {
        self.mot.is_some() || self.json.is_some()
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Whether the JSON file (which needs mask RLEs) is being written.
    pub fn wants_masks(&self) -> bool {
        self.json.is_some()
    }

    /// Write frame `frame` (1-based).
    pub fn write_frame(
        &mut self,
        frame: u64,
        pts: Option<Duration>,
        objects: &[ExportObject],
    ) -> Result<(), ExportError> {
        use std::fmt::Write as _;
        if let Some(out) = &mut self.mot {
            self.line.clear();
            for o in objects {
                let [x, y, w, h] = o.bbox;
                let _ = writeln!(self.line, "{frame},{},{x:.2},{y:.2},{w:.2},{h:.2},{:.4},-1,-1,-1", o.id, o.score);
            }
            out.w.write_all(self.line.as_bytes()).map_err(|e| out.err(e))?;
        }
        if let Some(out) = &mut self.json {
            let rec = JsonFrame { frame, pts: pts.map(|d| d.as_secs_f64()), objects };
            serde_json::to_writer(&mut out.w, &rec).map_err(|e| out.err(e.into()))?;
            out.w.write_all(b"\n").map_err(|e| out.err(e))?;
        }
        self.frames += 1;
        if self.frames.is_multiple_of(FLUSH_EVERY) {
            self.flush()?;
        } else {
            // A live follower of standard output sees every frame as soon as it is done.
            for out in [&mut self.mot, &mut self.json].into_iter().flatten().filter(|o| o.is_stdout()) {
                out.w.flush().map_err(|e| out.err(e))?;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), ExportError> {
        for out in [&mut self.mot, &mut self.json].into_iter().flatten() {
            out.w.flush().map_err(|e| out.err(e))?;
        }
        Ok(())
    }

    /// Flush, close and rename the partial files over the targets.
    pub fn finish(mut self) -> Result<(), ExportError> {
        self.flush()?;
        for out in [self.mot.take(), self.json.take()].into_iter().flatten() {
            let path = out.path;
            if let Dest::File(f) = out.w {
                f.commit().map_err(|e| ExportError { path, source: e.into() })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let (m, j) = (dir.path().join("t.txt"), dir.path().join("t.jsonl"));
        let mut w = TrackWriter::create(Some(&m), Some(&j)).unwrap();
        let rle = Rle { size: [2, 2], counts: vec![1, 2, 1] };
        let objs = [ExportObject::new(7, &BBox::new(1.0, 2.0, 4.0, 6.0), 0.5, 0, Some(rle.clone()))];
        w.write_frame(1, Some(Duration::from_millis(40)), &objs).unwrap();
        w.write_frame(2, None, &[]).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&m).unwrap(), "1,7,1.00,2.00,3.00,4.00,0.5000,-1,-1,-1\n");
        let lines: Vec<serde_json::Value> =
            std::fs::read_to_string(&j).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["frame"], 1);
        assert_eq!(lines[0]["pts"], 0.04);
        assert_eq!(lines[0]["objects"][0]["id"], 7);
        assert_eq!(lines[0]["objects"][0]["bbox"], serde_json::json!([1.0, 2.0, 3.0, 4.0]));
        let back: Rle = serde_json::from_value(lines[0]["objects"][0]["rle"].clone()).unwrap();
        assert_eq!(back, rle);
        assert!(lines[1]["pts"].is_null());
        assert_eq!(lines[1]["objects"].as_array().unwrap().len(), 0);
    }

    fn obj(id: u64, x: f32) -> ExportObject {
        ExportObject::new(id, &BBox::new(x, 0.0, x + 10.0, 20.0), 0.5, 0, None)
    }

    #[test]
    fn gap_filler_interpolates_short_gaps_and_releases_frames_in_order() {
        let mut g = GapFiller::new(3);
        let mut ready = Vec::new();
        // Track 1: frames 1 and 4 (gap of 2 frames: filled). Track 2: frames 1 and 6 (gap of 4
        // frames, more than 3: not filled).
        let frames: [Vec<ExportObject>; 6] =
            [vec![obj(1, 0.0), obj(2, 100.0)], vec![], vec![], vec![obj(1, 30.0)], vec![], vec![obj(2, 150.0)]];
        for (i, objs) in frames.iter().enumerate() {
            g.push(i as u64 + 1, None, objs, &mut ready);
            // A frame is held back exactly max_gap frames.
            assert_eq!(ready.last().map(|h| h.frame), (i >= 3).then(|| i as u64 - 2));
        }
        g.drain(&mut ready);
        assert_eq!(ready.iter().map(|h| h.frame).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
        let at = |f: usize| -> Vec<(u64, f32, bool)> {
            ready[f - 1].objects.iter().map(|o| (o.id, o.bbox[0], o.interpolated)).collect()
        };
        assert_eq!(at(2), vec![(1, 10.0, true)]);
        assert_eq!(at(3), vec![(1, 20.0, true)]);
        assert_eq!(at(4), vec![(1, 30.0, false)]);
        assert_eq!(at(5), vec![]);
        assert!(ready[1].objects[0].rle.is_none());
        // The flag appears in JSON only when set.
        let j = serde_json::to_value(&ready[1].objects[0]).unwrap();
        assert_eq!(j["interpolated"], true);
        assert!(serde_json::to_value(&ready[3].objects[0]).unwrap().get("interpolated").is_none());
    }

    #[test]
    fn previous_files_survive_until_finish_and_a_dropped_writer_leaves_them() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("t.txt");
        std::fs::write(&m, "previous\n").unwrap();
        let mut w = TrackWriter::create(Some(&m), None).unwrap();
        let objs = [ExportObject::new(1, &BBox::new(0.0, 0.0, 1.0, 1.0), 0.5, 0, None)];
        for f in 1..=FLUSH_EVERY {
            w.write_frame(f, None, &objs).unwrap();
        }
        // flushed to the partial file, the target untouched
        let partial = dir.path().join("t.txt.partial");
        assert_eq!(std::fs::read_to_string(&partial).unwrap().lines().count(), FLUSH_EVERY as usize);
        assert_eq!(std::fs::read_to_string(&m).unwrap(), "previous\n");
        drop(w);
        assert!(!partial.exists());
        assert_eq!(std::fs::read_to_string(&m).unwrap(), "previous\n");
    }
}
