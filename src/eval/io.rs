//! Reading and writing MOTChallenge text files and the tracker golden CSVs.
//!
//! * MOTChallenge rows: `frame,id,x,y,w,h,conf[,...]` (comma or whitespace separated; extra
//!   columns ignored) — ground truth, tracker results and public detections (`det.txt`, id -1).
//! * Detection CSV (`../shared/golden/tracker/*/detections.csv`): a header
//!   `frame,x1,y1,x2,y2,score` then one row per detection.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::EvalError;
use crate::track::TrackedObject;
use crate::types::{BBox, Detection};

/// One MOTChallenge row. Boxes are `x, y` top-left plus `w, h`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MotRow {
    pub frame: i64,
    pub id: i64,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub conf: f64,
}

fn read_text(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|err| EvalError::Io { path: path.display().to_string(), err })
}

fn split_fields(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| c == ',' || c.is_whitespace()).filter(|f| !f.is_empty())
}

fn parse_num(path: &Path, line_no: usize, field: &str, what: &str) -> Result<f64, EvalError> {
    field.trim().parse::<f64>().map_err(|_| EvalError::Parse {
        path: path.display().to_string(),
        line: line_no,
        message: format!("{what} `{field}` is not a number"),
    })
}

/// Parse MOTChallenge text (`frame,id,x,y,w,h[,conf,...]`); blank lines and `#` comments are
/// skipped. A missing confidence column reads as 1.
pub fn parse_mot(text: &str, path: &Path) -> Result<Vec<MotRow>, EvalError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = split_fields(t).collect();
        if f.len() < 6 {
            return Err(EvalError::Parse {
                path: path.display().to_string(),
                line: line_no,
                message: format!(
                    "expected at least 6 columns `frame,id,x,y,w,h[,conf,...]` (MOTChallenge format), found {}",
                    f.len()
                ),
            });
        }
        let names = ["frame", "id", "x", "y", "w", "h", "conf"];
        let mut v = [0.0f64; 7];
        v[6] = 1.0;
        for k in 0..f.len().min(7) {
            v[k] = parse_num(path, line_no, f[k], names[k])?;
        }
        if v[0].fract() != 0.0 || v[1].fract() != 0.0 {
            return Err(EvalError::Parse {
                path: path.display().to_string(),
                line: line_no,
                message: "frame and id must be integers".into(),
            });
        }
        if let Some(k) = (0..f.len().min(7)).find(|&k| !v[k].is_finite()) {
            return Err(EvalError::Parse {
                path: path.display().to_string(),
                line: line_no,
                message: format!("{} `{}` is not a finite number", names[k], f[k]),
            });
        }
        rows.push(MotRow { frame: v[0] as i64, id: v[1] as i64, x: v[2], y: v[3], w: v[4], h: v[5], conf: v[6] });
    }
    Ok(rows)
}

/// Read a MOTChallenge file.
pub fn read_mot(path: &Path) -> Result<Vec<MotRow>, EvalError> {
    parse_mot(&read_text(path)?, path)
}

/// Format rows as MOTChallenge results (`frame,id,x,y,w,h,conf,-1,-1,-1`, 3+ decimals).
pub fn format_mot(rows: &[MotRow]) -> String {
    let mut s = String::with_capacity(rows.len() * 64);
    for r in rows {
        let _ = writeln!(s, "{},{},{:.4},{:.4},{:.4},{:.4},{:.4},-1,-1,-1", r.frame, r.id, r.x, r.y, r.w, r.h, r.conf);
    }
    s
}

/// Write MOTChallenge results atomically ([`crate::outputs::AtomicFile`]): a previous file is
/// replaced only once the new one is complete.
pub fn write_mot(path: &Path, rows: &[MotRow]) -> Result<(), EvalError> {
    crate::outputs::AtomicFile::write_all_to(path, format_mot(rows).as_bytes())
        .map(|_| ())
        .map_err(|e| EvalError::Io { path: path.display().to_string(), err: e.into() })
}

/// MOT rows of one frame's tracker output.
pub fn tracks_to_rows(frame: i64, objs: &[TrackedObject], out: &mut Vec<MotRow>) {
    out.extend(objs.iter().map(|o| MotRow {
        frame,
        id: o.track_id as i64,
        x: o.bbox.x1 as f64,
        y: o.bbox.y1 as f64,
        w: (o.bbox.x2 - o.bbox.x1) as f64,
        h: (o.bbox.y2 - o.bbox.y1) as f64,
        conf: o.score as f64,
    }));
}

/// Detections of consecutive frames `first_frame ..`, empty frames included.
#[derive(Debug, Clone, Default)]
pub struct DetectionSequence {
    pub first_frame: i64,
    pub frames: Vec<Vec<Detection>>,
}

impl DetectionSequence {
    pub fn num_detections(&self) -> usize {
        self.frames.iter().map(Vec::len).sum()
    }
}

/// Read detections from a MOTChallenge `det.txt` (`frame,id,x,y,w,h,score,...`) or a CSV with
/// the header `frame,x1,y1,x2,y2,score`. The format is recognised by that header. Frames run
/// from `min(1, first frame in the file)` to the last one, so that leading and interior frames
/// without detections are passed to the tracker as empty frames. Rows keep their file order
/// within a frame (that order defines `det_index`). Values are held as `f32`.
pub fn read_detections(path: &Path) -> Result<DetectionSequence, EvalError> {
    let text = read_text(path)?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let header: Vec<String> = first.split(',').map(|s| s.trim().to_ascii_lowercase()).collect();
    let mut rows: Vec<(i64, Detection)> = Vec::new();
    let det = |b: BBox, score: f32| Detection { bbox: b, score, class_id: 0, mask: None };
    if header.first().is_some_and(|h| h == "frame") {
        let col = |name: &str| header.iter().position(|h| h == name);
        let (Some(cf), Some(c1), Some(c2), Some(c3), Some(c4), Some(cs)) =
            (col("frame"), col("x1"), col("y1"), col("x2"), col("y2"), col("score"))
        else {
            return Err(EvalError::Parse {
                path: path.display().to_string(),
                line: 1,
                message: format!("CSV header must contain frame,x1,y1,x2,y2,score; found `{first}`"),
            });
        };
        for (i, line) in text.lines().enumerate().skip(1) {
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            let f: Vec<&str> = t.split(',').collect();
            let get = |c: usize, what: &str| -> Result<f64, EvalError> {
                let s = f.get(c).ok_or_else(|| EvalError::Parse {
                    path: path.display().to_string(),
                    line: i + 1,
                    message: format!("missing column {what}"),
                })?;
                parse_num(path, i + 1, s, what)
            };
            let frame = get(cf, "frame")? as i64;
            let b =
                BBox::new(get(c1, "x1")? as f32, get(c2, "y1")? as f32, get(c3, "x2")? as f32, get(c4, "y2")? as f32);
            rows.push((frame, det(b, get(cs, "score")? as f32)));
        }
    } else {
        for r in parse_mot(&text, path)? {
            let b = BBox::new(r.x as f32, r.y as f32, (r.x + r.w) as f32, (r.y + r.h) as f32);
            rows.push((r.frame, det(b, r.conf as f32)));
        }
    }
    let Some(last) = rows.iter().map(|r| r.0).max() else {
        return Ok(DetectionSequence { first_frame: 1, frames: Vec::new() });
    };
    let first_frame = rows.iter().map(|r| r.0).min().unwrap_or(1).min(1);
    let n = (last - first_frame + 1) as usize;
    if n > 10_000_000 {
        return Err(EvalError::Parse {
            path: path.display().to_string(),
            line: 0,
            message: format!("frame numbers span {first_frame}..{last}: too many frames"),
        });
    }
    let mut frames = vec![Vec::new(); n];
    for (f, d) in rows {
        frames[(f - first_frame) as usize].push(d);
    }
    Ok(DetectionSequence { first_frame, frames })
}
