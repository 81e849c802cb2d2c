//! One `ByteTracker::update` with N confirmed tracks and N detections (N = 10, 100, 500), for
//! box, mask and fused association. Objects sit on a grid in a 1920x1080 frame and move a few pixels
//! per frame; masks are filled ellipses. The tracker state is cloned outside the timed region.

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use fastsam_track::track::{Association, ByteTracker, TrackerConfig};
use fastsam_track::{BBox, Detection, Mask};

#[path = "../tests/support/scenes.rs"]
mod scenes;

fn frame(n: usize, f: usize, masks: bool, rng: &mut scenes::Rng) -> Vec<Detection> {
    let cols = (n as f64 * 16.0 / 9.0).sqrt().ceil() as usize;
    let (cw, ch) = (1900.0 / cols as f32, 1060.0 / n.div_ceil(cols) as f32);
    (0..n)
        .map(|k| {
            let (gx, gy) = ((k % cols) as f32, (k / cols) as f32);
            let w = cw * 0.6;
            let h = ch * 0.8;
            let x = 5.0 + gx * cw + 0.7 * f as f32 + rng.normal() as f32 * 0.5;
            let y = 5.0 + gy * ch + 0.3 * f as f32 + rng.normal() as f32 * 0.5;
            let bbox = BBox::new(x, y, x + w, y + h);
            let mask = masks.then(|| Mask::from_roi(scenes::ellipse_roi(&bbox, 1920, 1080)));
            Detection { bbox, score: 0.6 + 0.3 * rng.f() as f32, class_id: 0, mask }
        })
        .collect()
}

fn bench_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("tracker_update");
    for assoc in [Association::Box, Association::Mask, Association::Fused] {
        for n in [10usize, 100, 500] {
            let masks = assoc != Association::Box;
            let mut rng = scenes::Rng::new(n as u64);
            let mut tracker = ByteTracker::new(TrackerConfig { association: assoc, ..Default::default() });
            for f in 0..5 {
                tracker.update(&frame(n, f, masks, &mut rng));
            }
            let next = frame(n, 5, masks, &mut rng);
            // Render the lazy masks once, as the pipeline's overlay would anyway.
            for d in &next {
                if let Some(m) = &d.mask {
                    m.roi();
                }
            }
            assert_eq!(tracker.clone().update(&next).len(), n, "all {n} objects tracked");
            g.bench_with_input(BenchmarkId::new(format!("{assoc:?}").to_lowercase(), n), &n, |b, _| {
                b.iter_batched(|| tracker.clone(), |mut t| t.update(&next), BatchSize::LargeInput)
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_update);
criterion_main!(benches);
