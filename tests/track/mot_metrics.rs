//! `eval::evaluate` against py-motmetrics 1.4.0's own expected values for TUD-Campus and
//! TUD-Stadtmitte (`test.txt` vs `gt.txt`, IoU 0.5; see `../shared/golden/mot/EXPECTED.md`),
//! and hand-checkable cases of the accumulator rules.

use crate::support::assets;

use std::path::Path;

use fastsam_track::eval::{self, MotMetrics, MotRow};

/// Full-precision values reproduced with motmetrics 1.4.0 (EXPECTED.md).
fn expected() -> Vec<(&'static str, [f64; 15])> {
    vec![
        (
            "TUD-Campus",
            [
                0.5576592082616179,
                0.7297297297297297,
                0.45125348189415043,
                0.5821727019498607,
                0.9414414414414415,
                8.0,
                1.0,
                6.0,
                1.0,
                13.0,
                150.0,
                7.0,
                7.0,
                0.5264623955431755,
                0.2772010846394618,
            ],
        ),
        (
            "TUD-Stadtmitte",
            [
                0.6446194225721785,
                0.8197596795727636,
                0.5311418685121108,
                0.6089965397923875,
                0.9399198931909212,
                10.0,
                5.0,
                4.0,
                1.0,
                45.0,
                452.0,
                7.0,
                6.0,
                0.5640138408304498,
                0.34590429554400914,
            ],
        ),
        (
            "OVERALL",
            [
                0.6242960579243765,
                0.7991761071060762,
                0.5122112211221123,
                0.6026402640264027,
                0.9402677651905252,
                18.0,
                6.0,
                10.0,
                2.0,
                58.0,
                602.0,
                14.0,
                13.0,
                0.5551155115511551,
                0.33017705449357054,
            ],
        ),
    ]
}

fn values(m: &MotMetrics) -> [f64; 15] {
    [
        m.idf1,
        m.idp,
        m.idr,
        m.recall,
        m.precision,
        m.num_unique_objects as f64,
        m.mostly_tracked as f64,
        m.partially_tracked as f64,
        m.mostly_lost as f64,
        m.num_false_positives as f64,
        m.num_misses as f64,
        m.num_switches as f64,
        m.num_fragmentations as f64,
        m.mota,
        m.motp,
    ]
}

const NAMES: [&str; 15] = [
    "idf1",
    "idp",
    "idr",
    "recall",
    "precision",
    "num_unique_objects",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_false_positives",
    "num_misses",
    "num_switches",
    "num_fragmentations",
    "mota",
    "motp",
];

#[test]
fn tud_sequences_match_motmetrics() {
    let mut parts = Vec::new();
    for (name, want) in expected() {
        let m = if name == "OVERALL" {
            MotMetrics::overall(&parts)
        } else {
            let Some(dir) = assets::require(&format!("assets/mot/{name}/gt.txt")) else { return };
            let dir = dir.parent().unwrap();
            let gt = eval::read_mot(&dir.join("gt.txt")).unwrap();
            let pred = eval::read_mot(&dir.join("test.txt")).unwrap();
            let m = eval::evaluate(&gt, &pred, 0.5).unwrap();
            parts.push(m.clone());
            m
        };
        let got = values(&m);
        for k in 0..15 {
            assert!((got[k] - want[k]).abs() < 1e-4, "{name}: {} = {}, motmetrics {}", NAMES[k], got[k], want[k]);
        }
    }
}

fn row(frame: i64, id: i64, x: f64) -> MotRow {
    MotRow { frame, id, x, y: 0.0, w: 10.0, h: 10.0, conf: 1.0 }
}

#[test]
fn switch_fragmentation_and_idf1_by_hand() {
    // One object over 6 frames; hypothesis 1 covers frames 1-2, nothing in frame 3,
    // hypothesis 2 frames 4-6 (a switch after a gap), plus a far-away false positive in frame 5.
    let gt: Vec<MotRow> = (1..=6).map(|f| row(f, 1, 0.0)).collect();
    let mut pred = vec![row(1, 1, 1.0), row(2, 1, 1.0), row(4, 2, 0.0), row(5, 2, 0.0), row(6, 2, 0.0)];
    pred.push(row(5, 3, 100.0));
    let m = eval::evaluate(&gt, &pred, 0.5).unwrap();
    assert_eq!((m.num_matches, m.num_switches, m.num_misses, m.num_false_positives), (4, 1, 1, 1));
    assert_eq!(m.num_fragmentations, 1);
    assert_eq!((m.mostly_tracked, m.num_unique_objects), (1, 1));
    // IDF1: best identity pairing is (1 <-> 2) with 3 frames: IDTP 3, IDFN 3, IDFP 3.
    assert_eq!((m.idtp, m.idfn, m.idfp), (3, 3, 3));
    assert!((m.idf1 - 6.0 / 12.0).abs() < 1e-12);
    // IoU of boxes shifted by 1 px: 90/110.
    let want_motp = 2.0 * (1.0 - 90.0 / 110.0) / 5.0;
    assert!((m.motp - want_motp).abs() < 1e-12);
    assert!((m.mota - (1.0 - 3.0 / 6.0)).abs() < 1e-12);
}

#[test]
fn previous_match_is_kept_over_a_better_one() {
    // Frame 1: object 1 matched to hyp 1. Frame 2: hyp 2 overlaps better, but hyp 1 is still
    // within the threshold, so the correspondence is kept (no switch).
    let gt = vec![row(1, 1, 0.0), row(2, 1, 0.0)];
    let pred = vec![row(1, 1, 0.0), row(2, 1, 2.0), row(2, 2, 0.0)];
    let m = eval::evaluate(&gt, &pred, 0.5).unwrap();
    assert_eq!((m.num_matches, m.num_switches, m.num_false_positives), (2, 0, 1));
}

#[test]
fn duplicate_ids_and_bad_lines_are_errors() {
    let gt = vec![row(1, 1, 0.0), row(1, 1, 5.0)];
    let e = eval::evaluate(&gt, &[], 0.5).unwrap_err().to_string();
    assert!(e.contains("id 1") && e.contains("frame 1"), "{e}");
    let e = eval::io::parse_mot("1,2,3\n", Path::new("x.txt")).unwrap_err().to_string();
    assert!(e.contains("x.txt:1") && e.contains("6 columns"), "{e}");
    let e = eval::io::parse_mot("1,2,a,4,5,6\n", Path::new("x.txt")).unwrap_err().to_string();
    assert!(e.contains("`a`"), "{e}");
}

#[test]
fn mot_text_round_trip() {
    let rows = vec![MotRow { frame: 3, id: 7, x: 1.23456, y: -2.5, w: 10.0, h: 20.125, conf: 0.9 }];
    let back = eval::io::parse_mot(&eval::io::format_mot(&rows), Path::new("mem")).unwrap();
    assert_eq!(back.len(), 1);
    assert!((back[0].x - 1.23456).abs() < 1e-4 && back[0].id == 7 && back[0].frame == 3);
}
