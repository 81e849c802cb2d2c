//! COCO evaluation speed on the golden set (`golden/coco/`, 60 images, no model):
//!
//! * `coco/read_results/<file>`: parse a results file and check it against the ground truth;
//! * `coco/evaluate/<file>/<bbox|segm>`: COCOeval evaluate + accumulate + summarize.
//!
//! The comparison with pycocotools and faster-coco-eval on 5,000+ images is
//! `scripts/bench-coco.py` (BENCHMARKS.md, "COCO evaluation"). Skips (with a message) when the
//! assets are missing.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fastsam_track::eval::coco::{self, EvalOptions, IouType};

#[path = "../tests/support/assets.rs"]
#[allow(dead_code)]
mod assets;

fn bench(c: &mut Criterion) {
    let Some(gt_path) = assets::require("golden/coco/instances.json") else { return };
    let gt = coco::load_gt(&gt_path).expect("golden ground truth");
    let mut g = c.benchmark_group("coco");
    g.sample_size(20);
    for file in ["preds_ultralytics.json", "preds_edge.json"] {
        let Some(p) = assets::require(&format!("golden/coco/{file}")) else { continue };
        let bytes = std::fs::read(&p).expect("golden predictions");
        g.bench_function(format!("read_results/{file}"), |b| {
            b.iter(|| coco::results_from_slice(black_box(&bytes), file, &gt).expect("parse"))
        });
        let preds = coco::results_from_slice(&bytes, file, &gt).expect("parse");
        for iou_type in [IouType::Bbox, IouType::Segm] {
            g.bench_function(format!("evaluate/{file}/{}", iou_type.name()), |b| {
                b.iter(|| coco::evaluate(&gt, black_box(&preds), iou_type, &EvalOptions::default()).expect("eval"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
