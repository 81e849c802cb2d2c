//! Parity with Ultralytics 8.4.190 `BYTETracker` on the golden sequences of
//! `../shared/golden/tracker`: the same track ID for every (frame, det_index) and Kalman boxes
//! within 1e-3 px, in the same output order; plus motmetrics on the resulting tracks.

use crate::support::assets;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use fastsam_track::eval::{self, MotRow};
use fastsam_track::track::{Association, ByteTracker, TrackedObject, TrackerConfig};

struct GoldenRow {
    frame: i64,
    track_id: u64,
    bbox: [f64; 4],
    score: f64,
    det_index: usize,
}

fn read_golden_tracks(p: &Path) -> Vec<GoldenRow> {
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "frame,track_id,x1,y1,x2,y2,score,det_index");
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
            GoldenRow {
                frame: f[0] as i64,
                track_id: f[1] as u64,
                bbox: [f[2], f[3], f[4], f[5]],
                score: f[6],
                det_index: f[7] as usize,
            }
        })
        .collect()
}

fn run(seq: &eval::DetectionSequence, cfg: TrackerConfig) -> Vec<(i64, TrackedObject)> {
    let mut tracker = ByteTracker::new(cfg);
    let mut out = Vec::new();
    for (k, dets) in seq.frames.iter().enumerate() {
        let frame = seq.first_frame + k as i64;
        for o in tracker.update(dets) {
            out.push((frame, o));
        }
    }
    out
}

fn check_sequence(name: &str) {
    let Some(dir) = assets::require(&format!("golden/tracker/{name}/tracks.csv")) else { return };
    let dir = dir.parent().unwrap().to_path_buf();
    let seq = eval::read_detections(&dir.join("detections.csv")).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(seq.first_frame, meta["first_frame"].as_i64().unwrap());
    assert_eq!(seq.frames.len() as i64, meta["num_frames"].as_i64().unwrap());
    assert_eq!(seq.num_detections() as i64, meta["num_detections"].as_i64().unwrap());
    let golden = read_golden_tracks(&dir.join("tracks.csv"));

    // Default config = Ultralytics bytetrack.yaml with box association.
    let cfg = TrackerConfig::default();
    assert_eq!(cfg.association, Association::Box);
    let ours = run(&seq, cfg);
    assert_eq!(ours.len(), golden.len(), "{name}: number of output rows");
    let mut max_err = 0.0f64;
    for (k, ((frame, o), g)) in ours.iter().zip(&golden).enumerate() {
        assert_eq!(*frame, g.frame, "{name} row {k}: frame");
        assert_eq!(o.det_index, g.det_index, "{name} row {k} (frame {frame}): det_index");
        assert_eq!(o.track_id, g.track_id, "{name} row {k} (frame {frame}, det {}): track id", g.det_index);
        assert!((o.score as f64 - g.score).abs() < 1e-6, "{name} row {k}: score");
        let b = [o.bbox.x1 as f64, o.bbox.y1 as f64, o.bbox.x2 as f64, o.bbox.y2 as f64];
        for (x, y) in b.iter().zip(&g.bbox) {
            max_err = max_err.max((x - y).abs());
        }
    }
    eprintln!("{name}: {} rows, max box error {max_err:.2e} px", ours.len());
    assert!(max_err <= 1e-3, "{name}: max box error {max_err} px > 1e-3");

    // The product config file, switched to box association, Ultralytics IDs, Ultralytics'
    // thresholds and lost-track buffer, Kalman boxes, and no duplicate suppression or re-ID
    // (not part of Ultralytics' tracker), is identical too.
    let toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/bytetrack.toml");
    let mut file_cfg = TrackerConfig::from_toml_file(&toml).unwrap();
    file_cfg.association = Association::Box;
    file_cfg.lazy_ids = false;
    file_cfg.dedup.enabled = false;
    file_cfg.reid.enabled = false;
    file_cfg.report_box = fastsam_track::track::ReportBox::Kalman;
    file_cfg.track_high_thresh = 0.25;
    file_cfg.new_track_thresh = 0.25;
    file_cfg.track_buffer = 30;
    let again = run(&seq, file_cfg.clone());
    assert!(again.iter().zip(&ours).all(|(a, b)| a == b) && again.len() == ours.len());

    // Lazy IDs: same partition, IDs renumbered densely in order of first appearance.
    file_cfg.lazy_ids = true;
    let lazy = run(&seq, file_cfg);
    assert_eq!(lazy.len(), ours.len());
    let mut distinct: Vec<u64> = ours.iter().map(|(_, o)| o.track_id).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let rank: HashMap<u64, u64> = distinct.iter().enumerate().map(|(i, &id)| (id, i as u64 + 1)).collect();
    for ((_, a), (_, b)) in lazy.iter().zip(&ours) {
        assert_eq!(a.track_id, rank[&b.track_id]);
        assert_eq!((a.det_index, a.bbox), (b.det_index, b.bbox));
    }

    // motmetrics on the tracks vs the golden motmetrics.json (the hypothesis is tracks.csv).
    let gt_path = match meta["gt"].as_str().unwrap() {
        p if p.starts_with("mot/") => assets::root().join("assets").join(p),
        p => assets::root().join("golden").join(p),
    };
    // motmetrics' loadtxt moves the ground truth by (-1, -1) (MATLAB convention) while the
    // golden's hypothesis frame was built from tracks.csv directly, so do the same here.
    let gt: Vec<MotRow> =
        eval::read_mot(&gt_path).unwrap().into_iter().map(|r| MotRow { x: r.x - 1.0, y: r.y - 1.0, ..r }).collect();
    let mut rows = Vec::new();
    let mut by_frame: BTreeMap<i64, Vec<TrackedObject>> = BTreeMap::new();
    for (f, o) in &ours {
        by_frame.entry(*f).or_default().push(o.clone());
    }
    for (f, objs) in &by_frame {
        eval::io::tracks_to_rows(*f, objs, &mut rows);
    }
    // Round trip through the MOTChallenge text format.
    let text = eval::io::format_mot(&rows);
    let rows2: Vec<MotRow> = eval::io::parse_mot(&text, Path::new("mem")).unwrap();
    let m = eval::evaluate(&gt, &rows2, 0.5).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("motmetrics.json")).unwrap()).unwrap();
    let got = serde_json::to_value(&m).unwrap();
    for (k, v) in want["metrics"].as_object().unwrap() {
        let (w, g) = (v.as_f64().unwrap(), got[k].as_f64().unwrap_or_else(|| panic!("missing {k}")));
        assert!((w - g).abs() < 1e-4, "{name}: {k} = {g}, motmetrics {w}");
    }
}

#[test]
fn tud_campus_seed0_matches_ultralytics() {
    check_sequence("TUD-Campus_seed0");
}

#[test]
fn crossing_matches_ultralytics() {
    check_sequence("crossing");
}
