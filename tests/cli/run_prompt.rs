//! `fastsam-track CLIP --point X,Y` with the trained synthetic model: the point picks one object on
//! the first frame, and only its track is exported, starting on that object.

use crate::support::assets;
use crate::support::video;

use std::process::Command;

use fastsam_track::{BBox, Rle};

#[test]
fn point_prompt_follows_one_object() {
    let (Some(clip), Some(masks), Some(model)) = (
        assets::require("assets/synth/synth_track_a.mp4"),
        assets::require("assets/synth/synth_track_a/masks.jsonl"),
        assets::require("models/FastSAM-n-synth-dynamic.onnx"),
    ) else {
        return;
    };
    // A pixel well inside object 3 (the largest) on frame 1, from the exact ground-truth mask.
    let first = std::fs::read_to_string(&masks).unwrap().lines().next().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let obj = v["objects"].as_array().unwrap().iter().find(|o| o["id"] == 3).unwrap().clone();
    let bm = serde_json::from_value::<Rle>(obj["rle"].clone()).unwrap().to_bitmap().unwrap();
    let inside =
        |x: i64, y: i64| x >= 0 && y >= 0 && x < bm.width as i64 && y < bm.height as i64 && bm.get(x as u32, y as u32);
    let (mut sx, mut sy, mut n) = (0i64, 0i64, 0i64);
    for y in 0..bm.height as i64 {
        for x in 0..bm.width as i64 {
            if inside(x, y) {
                sx += x;
                sy += y;
                n += 1;
            }
        }
    }
    let (cx, cy) = (sx / n, sy / n);
    let (px, py) = (0..bm.height as i64)
        .flat_map(|y| (0..bm.width as i64).map(move |x| (x, y)))
        .filter(|&(x, y)| (-6..=6).all(|d| inside(x + d, y) && inside(x, y + d)))
        .min_by_key(|&(x, y)| (x - cx).pow(2) + (y - cy).pow(2))
        .expect("object 3 has an interior");
    let gt_box = {
        let r = fastsam_track::RoiBitmap::from_full(&bm).rect;
        BBox::new(r.x as f32, r.y as f32, r.right() as f32, r.bottom() as f32)
    };

    let dir = tempfile::tempdir().unwrap();
    let mot = dir.path().join("p.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
        .arg(&clip)
        .arg("--model")
        .arg(&model)
        .args(["--imgsz", "320", "--device", "cpu", "--no-video", "--point", &format!("{px},{py}"), "--tracks-mot"])
        .arg(&mot)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("FastSAM-n-synth-dynamic.onnx"), "names the model used: {err}");
    let line = err.lines().find(|l| l.contains("prompt: following track IDs")).expect("prompt summary");
    let ids: Vec<u64> =
        line.split('[').nth(1).unwrap().trim_end_matches(']').split(',').map(|s| s.trim().parse().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{line}");
    let rows = video::read_mot(&mot);
    assert!(rows.len() > 50, "the followed object is tracked for a while ({} rows)", rows.len());
    assert!(rows.iter().all(|r| r.1 == ids[0]), "only the followed ID is exported");
    let first = rows.iter().find(|r| r.0 == 1).expect("tracked from frame 1");
    assert!(first.2.iou(&gt_box) > 0.5, "frame 1 box {:?} vs object 3 {:?}", first.2, gt_box);
}
