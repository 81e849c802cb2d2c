//! Box vs mask vs fused association on synthetic crossing and occlusion scenes with masks
//! (generated in `support::scenes`). Prints the comparison table recorded in BENCHMARKS.md and
//! checks that the association chosen as the product default in `configs/bytetrack.toml` is
//! at least as good as box association on these scenes (by IDF1, then ID switches).

use std::path::Path;

use crate::support::scenes::{self, Scene, SceneParams};
use fastsam_track::eval::{self, MotMetrics, MotRow};
use fastsam_track::track::{Association, ByteTracker, TrackerConfig};

fn track_scene(scene: &Scene, cfg: &TrackerConfig) -> MotMetrics {
    let mut t = ByteTracker::new(cfg.clone());
    let mut rows: Vec<MotRow> = Vec::new();
    for (f, dets) in scene.frames.iter().enumerate() {
        let out = t.update(dets);
        eval::io::tracks_to_rows(f as i64 + 1, &out, &mut rows);
    }
    eval::evaluate(&scene.gt, &rows, 0.5).unwrap()
}

fn scene_sets() -> Vec<(&'static str, Vec<Scene>)> {
    let crossing: Vec<Scene> = (0..8)
        .flat_map(|seed| {
            [(8.0, 10.0), (5.0, 0.0), (12.0, 20.0)]
                .into_iter()
                .map(move |(speed, dy)| scenes::crossing_scene(60, speed, dy, true, seed))
        })
        .collect();
    let random: Vec<Scene> = (0..6).map(|seed| scenes::random_scene(&SceneParams::default(), 100 + seed)).collect();
    let crowded: Vec<Scene> = (0..4)
        .map(|seed| {
            scenes::random_scene(&SceneParams { num_objects: 12, accel: 0.6, ..Default::default() }, 200 + seed)
        })
        .collect();
    vec![
        ("crossing (24 seq)", crossing),
        ("random occlusion, 6 obj (6 seq)", random),
        ("crowded, 12 obj (4 seq)", crowded),
    ]
}

#[test]
fn compare_associations() {
    let toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/bytetrack.toml");
    let product = TrackerConfig::from_toml_file(&toml).unwrap();
    let modes = [Association::Box, Association::Mask, Association::Fused];
    let mut totals = [(0.0f64, 0u64, 0usize); 3];
    eprintln!("| scenes | association | MOTA | IDF1 | ID switches | fragmentations |");
    eprintln!("|---|---|---|---|---|---|");
    for (name, set) in scene_sets() {
        for (k, &assoc) in modes.iter().enumerate() {
            let cfg = TrackerConfig { association: assoc, ..product.clone() };
            let parts: Vec<MotMetrics> = set.iter().map(|s| track_scene(s, &cfg)).collect();
            let m = MotMetrics::overall(&parts);
            eprintln!(
                "| {name} | {assoc:?} | {:.3} | {:.3} | {} | {} |",
                m.mota, m.idf1, m.num_switches, m.num_fragmentations
            );
            totals[k].0 += m.idf1;
            totals[k].1 += m.num_switches;
            totals[k].2 += 1;
        }
    }
    for (k, &assoc) in modes.iter().enumerate() {
        eprintln!("{assoc:?}: mean IDF1 {:.4}, total ID switches {}", totals[k].0 / totals[k].2 as f64, totals[k].1);
    }
    let chosen = modes.iter().position(|&a| a == product.association).unwrap();
    let (bi, bs) = (totals[0].0, totals[0].1);
    let (ci, cs) = (totals[chosen].0, totals[chosen].1);
    assert!(
        ci > bi + 1e-9 || (ci >= bi - 1e-9 && cs <= bs),
        "the default association {:?} measures worse than box (IDF1 sum {ci} vs {bi}, switches {cs} vs {bs})",
        product.association
    );
}
