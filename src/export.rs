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

/// A frame's JSON line (without the newline), appended to `buf`: the bytes serde_json writes for
/// `{"frame":..,"pts":..,"objects":[..]}` with the objects' derived [`Serialize`], written by hand
/// (floats still formatted by serde_json), so that the RLE counts, most of the bytes, are one
/// tight loop into the buffer instead of serde's writes per element.
fn json_line(buf: &mut Vec<u8>, frame: u64, pts: Option<f64>, objects: &[ExportObject]) -> serde_json::Result<()> {
    buf.extend_from_slice(b"{\"frame\":");
    push_u64(buf, frame);
    buf.extend_from_slice(b",\"pts\":");
    serde_json::to_writer(&mut *buf, &pts)?;
    buf.extend_from_slice(b",\"objects\":[");
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"id\":");
        push_u64(buf, o.id);
        buf.extend_from_slice(b",\"bbox\":[");
        for (k, v) in o.bbox.iter().enumerate() {
            if k > 0 {
                buf.push(b',');
            }
            serde_json::to_writer(&mut *buf, v)?;
        }
        buf.extend_from_slice(b"],\"score\":");
        serde_json::to_writer(&mut *buf, &o.score)?;
        buf.extend_from_slice(b",\"class_id\":");
        push_u64(buf, o.class_id as u64);
        if let Some(rle) = &o.rle {
            buf.extend_from_slice(b",\"rle\":{\"size\":[");
            push_u64(buf, rle.size[0] as u64);
            buf.push(b',');
            push_u64(buf, rle.size[1] as u64);
            buf.extend_from_slice(b"],\"counts\":");
            push_counts(buf, &rle.counts);
            buf.push(b'}');
        }
        if o.interpolated {
            buf.extend_from_slice(b",\"interpolated\":true");
        }
        buf.push(b'}');
    }
    buf.extend_from_slice(b"]}");
    Ok(())
}

/// `v` in decimal (as serde_json writes integers: the `itoa` crate).
fn push_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `[c0,c1,..]` (as serde_json writes a `Vec<u32>`).
fn push_counts(buf: &mut Vec<u8>, counts: &[u32]) {
    buf.reserve(2 + 11 * counts.len());
    buf.push(b'[');
    let mut digits = itoa::Buffer::new();
    for (i, &c) in counts.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(digits.format(c).as_bytes());
    }
    buf.push(b']');
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
    /// The JSON line being written (reused).
    json_line: Vec<u8>,
}

impl TrackWriter {
    /// Create the requested files (either may be `None`).
    pub fn create(mot: Option<&Path>, json: Option<&Path>) -> Result<Self, ExportError> {
        Ok(Self {
            mot: mot.map(Out::create).transpose()?,
            json: json.map(Out::create).transpose()?,
            frames: 0,
            line: String::new(),
            json_line: Vec::new(),
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
            let buf = &mut self.json_line;
            buf.clear();
            json_line(buf, frame, pts.map(|d| d.as_secs_f64()), objects).map_err(|e| out.err(e.into()))?;
            buf.push(b'\n');
            out.w.write_all(buf).map_err(|e| out.err(e))?;
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
    use crate::test_rng::Rng;

    /// How the JSON lines were written before [`json_line`]: serde_json on this record (the
    /// reference the hand-written line must equal byte for byte).
    #[derive(Serialize)]
    struct JsonFrame<'a> {
        frame: u64,
        pts: Option<f64>,
        objects: &'a [ExportObject],
    }

    fn reference_line(frame: u64, pts: Option<Duration>, objects: &[ExportObject]) -> Vec<u8> {
        let rec = JsonFrame { frame, pts: pts.map(|d| d.as_secs_f64()), objects };
        let mut v = serde_json::to_vec(&rec).unwrap();
        v.push(b'\n');
        v
    }

    /// An integer with every decimal length, the extremes included.
    fn random_int(rng: &mut Rng, max: u64) -> u64 {
        let v = match rng.below(6) {
            0 => rng.below(10) as u64,
            1 => rng.next() % 1000,
            2 => 10u64.saturating_pow(rng.below(20)).saturating_sub(rng.below(2) as u64),
            3 => max - rng.below(3) as u64,
            _ => rng.next() >> rng.below(64),
        };
        v.min(max)
    }

    fn random_float(rng: &mut Rng) -> f32 {
        match rng.below(4) {
            0 => rng.special(),
            1 => (rng.below(20000) as f32 - 5000.0) / 4.0,
            _ => rng.unit() * 2000.0,
        }
    }

    fn random_object(rng: &mut Rng) -> ExportObject {
        let rle = (rng.below(4) != 0).then(|| {
            let n = match rng.below(5) {
                0 => rng.below(3),
                _ => rng.below(400),
            };
            let size = [random_int(rng, u32::MAX as u64) as u32, random_int(rng, u32::MAX as u64) as u32];
            Rle { size, counts: (0..n).map(|_| random_int(rng, u32::MAX as u64) as u32).collect() }
        });
        ExportObject {
            id: random_int(rng, u64::MAX),
            bbox: std::array::from_fn(|_| random_float(rng)),
            score: random_float(rng),
            class_id: random_int(rng, u32::MAX as u64) as u32,
            rle,
            interpolated: rng.below(3) == 0,
        }
    }

    #[test]
    fn json_lines_equal_serde_json_on_random_frames() {
        let mut rng = Rng(0x1150_0b1e_c7a5_0001);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut w = TrackWriter::create(None, Some(&path)).unwrap();
        let mut want = Vec::new();
        let mut buf = Vec::new();
        for case in 0..600u64 {
            let frame = if case % 7 == 0 { random_int(&mut rng, u64::MAX) } else { case + 1 };
            let pts = match rng.below(4) {
                0 => None,
                1 => Some(Duration::from_nanos(rng.next())),
                2 => Some(Duration::new(rng.next(), rng.below(1_000_000_000))),
                _ => Some(Duration::from_millis(40 * case)),
            };
            let objects: Vec<ExportObject> = (0..rng.below(6)).map(|_| random_object(&mut rng)).collect();
            let line = reference_line(frame, pts, &objects);
            buf.clear();
            json_line(&mut buf, frame, pts.map(|d| d.as_secs_f64()), &objects).unwrap();
            buf.push(b'\n');
            assert_eq!(String::from_utf8_lossy(&buf), String::from_utf8_lossy(&line), "case {case}: {objects:?}");
            w.write_frame(frame, pts, &objects).unwrap();
            want.extend_from_slice(&line);
        }
        w.finish().unwrap();
        assert!(std::fs::read(&path).unwrap() == want, "the file differs from serde_json's lines");
    }

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
