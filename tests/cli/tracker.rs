//! The `track-detections` and `eval-mot` commands end to end: tracking the golden CSV through
//! the MOTChallenge text output keeps Ultralytics parity (IDs, boxes within 1e-3 px), and
//! `eval-mot --json` reports what the library computes for the same files.

use crate::support::assets;

use std::path::Path;
use std::process::Command;

use fastsam_track::eval;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
}

#[test]
fn track_detections_output_keeps_parity() {
    let Some(dets) = assets::require("golden/tracker/TUD-Campus_seed0/detections.csv") else { return };
    let dir = dets.parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tracks.txt");
    let st = bin().arg("track-detections").arg(&dets).arg("-o").arg(&out).status().unwrap();
    assert!(st.success());
    let rows = eval::read_mot(&out).unwrap();
    let golden = std::fs::read_to_string(dir.join("tracks.csv")).unwrap();
    let golden: Vec<Vec<f64>> =
        golden.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), golden.len());
    for (r, g) in rows.iter().zip(&golden) {
        assert_eq!((r.frame, r.id), (g[0] as i64, g[1] as i64));
        let b = [r.x, r.y, r.x + r.w, r.y + r.h];
        for (x, y) in b.iter().zip(&g[2..6]) {
            assert!((x - y).abs() <= 1e-3, "frame {}: {x} vs {y}", r.frame);
        }
    }

    // eval-mot --json = library evaluate on the same files.
    let gt = assets::root().join("assets/mot/TUD-Campus/gt.txt");
    let o = bin().args(["eval-mot", "--json", "--gt"]).arg(&gt).arg("--pred").arg(&out).output().unwrap();
    assert!(o.status.success());
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let lib = eval::evaluate(&eval::read_mot(&gt).unwrap(), &rows, 0.5).unwrap();
    let want = serde_json::to_value(&lib).unwrap();
    for (k, v) in want.as_object().unwrap() {
        let (a, b) = (v.as_f64().unwrap(), json[k].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{k}: {b} vs {a}");
    }
    // ... and the HOTA fields (TrackEval names) = library evaluate_hota.
    let hota = eval::evaluate_hota(&eval::read_mot(&gt).unwrap(), &rows).unwrap();
    for (k, v) in [("HOTA", hota.hota), ("DetA", hota.det_a), ("AssA", hota.ass_a), ("LocA", hota.loc_a)] {
        let b = json[k].as_f64().unwrap_or_else(|| panic!("eval-mot --json has no {k}"));
        assert!((v - b).abs() <= 1e-12, "{k}: {b} vs {v}");
    }
    // The table form names the metrics.
    let o = bin().args(["eval-mot", "--gt"]).arg(&gt).arg("--pred").arg(&out).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("MOTA") && text.contains("IDF1") && text.contains("HOTA"), "{text}");
}

#[test]
fn parameter_overrides_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // A MOTChallenge det.txt: one object over 50 frames, missing in frames 11-45 (35 frames).
    let mut det = String::new();
    for f in (1..=10).chain(46..=50) {
        det.push_str(&format!("{f},-1,{},100,40,80,0.9,-1,-1,-1\n", 100 + f));
    }
    let det_path = tmp.path().join("det.txt");
    std::fs::write(&det_path, det).unwrap();
    let ids = |extra: &[&str]| -> usize {
        let out = tmp.path().join("t.txt");
        let st = bin().arg("track-detections").arg(&det_path).arg("-o").arg(&out).args(extra).status().unwrap();
        assert!(st.success());
        let mut ids: Vec<i64> = eval::read_mot(&out).unwrap().iter().map(|r| r.id).collect();
        ids.dedup();
        ids.len()
    };
    assert_eq!(ids(&[]), 2, "35-frame gap > 30-frame buffer");
    assert_eq!(ids(&["--track-buffer", "40"]), 1);
    assert_eq!(ids(&["--frame-rate", "60"]), 1);
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/bytetrack.toml");
    assert_eq!(ids(&["--tracker", cfg.to_str().unwrap(), "--track-buffer", "20"]), 2);

    let o = bin().args(["track-detections", "/nonexistent/det.txt", "-o"]).arg(tmp.path().join("x")).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/det.txt"));
    let o = bin()
        .arg("track-detections")
        .arg(&det_path)
        .arg("-o")
        .arg(tmp.path().join("x"))
        .args(["--match-thresh", "3"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("match_thresh"));
}

#[test]
fn dedup_flag_drops_a_box_inside_another() {
    // Each frame: an object (box 40x80) and a part of it (box 20x20 inside it), both moving right.
    // Detection files carry no masks, so `--dedup true` decides on boxes: the part lies wholly in
    // the object's box (containment 1.0 > 0.8) and only the object is tracked.
    let tmp = tempfile::tempdir().unwrap();
    let mut det = String::new();
    for f in 1..=20 {
        let x = 100 + 2 * f;
        det.push_str(&format!("{f},-1,{x},100,40,80,0.9,-1,-1,-1\n"));
        det.push_str(&format!("{f},-1,{},130,20,20,0.7,-1,-1,-1\n", x + 10));
    }
    let det_path = tmp.path().join("det.txt");
    std::fs::write(&det_path, det).unwrap();
    let tracks = |extra: &[&str]| -> Vec<eval::MotRow> {
        let out = tmp.path().join("t.txt");
        let st = bin().arg("track-detections").arg(&det_path).arg("-o").arg(&out).args(extra).status().unwrap();
        assert!(st.success());
        eval::read_mot(&out).unwrap()
    };
    let ids = |rows: &[eval::MotRow]| rows.iter().map(|r| r.id).collect::<std::collections::BTreeSet<_>>().len();
    // Default (Ultralytics' tracker, no dedup): both are tracked.
    let plain = tracks(&[]);
    assert_eq!((ids(&plain), plain.len()), (2, 40));
    let dedup = tracks(&["--dedup", "true"]);
    assert_eq!((ids(&dedup), dedup.len()), (1, 20));
    assert!(dedup.iter().all(|r| (r.w - 40.0).abs() < 1.0 && (r.h - 80.0).abs() < 1.0), "the whole survives");
    // The shipped config turns dedup on.
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/bytetrack.toml");
    assert_eq!(ids(&tracks(&["--tracker", cfg.to_str().unwrap()])), 1);
}
