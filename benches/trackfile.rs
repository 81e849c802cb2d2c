//! The JSON Lines track file (`--tracks-json`) on a busy frame: 26 tracked objects with large,
//! ragged masks at 720p, as on the busy clip of BENCHMARKS.md (~7,500 RLE counts per mask,
//! ~17 KB of JSON per object).
//!
//! * `rle/26`: `FrameResult::export_objects` with masks (the COCO RLE of every track's mask).
//! * `json/26`: `TrackWriter::write_frame` of the exported objects (JSON formatting and the
//!   buffered writes; to `/dev/null`, which `AtomicFile` writes in place).
//! * `frame/26`: both, through `TrackFiles` as the pipeline's result sink calls it.
//!
//! The masks are synthetic (ellipses with a mottled inside and ragged edges, some touching the
//! image borders), or, when `TRACKFILE_JSONL` names a JSON Lines track file, the masks of its
//! line `TRACKFILE_LINE` (default 100) decoded from their RLE.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use fastsam_track::export::TrackWriter;
use fastsam_track::stream::io::TrackFiles;
use fastsam_track::stream::{FrameMeta, FrameResult, ResultSink};
use fastsam_track::track::TrackedObject;
use fastsam_track::{BBox, Bitmap, Detection, Mask, Rle, RoiBitmap};

const W: u32 = 1280;
const H: u32 = 720;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % n.max(1) as u64) as u32
    }
}

/// A ragged, mottled ellipse of about `rw x rh` pixels centred at `(cx, cy)` (clipped to the image).
fn blob(rng: &mut Rng, cx: i32, cy: i32, rw: i32, rh: i32) -> Bitmap {
    let mut bm = Bitmap::zeros(W, H);
    // on/off cells of 4x4 pixels inside (holes), an edge jittered per row
    let cells_w = (W / 4) as usize;
    let cells: Vec<bool> = (0..cells_w * (H / 4 + 1) as usize).map(|_| rng.below(100) < 88).collect();
    for y in (cy - rh).max(0)..(cy + rh).min(H as i32) {
        let dy = (y - cy) as f32 / rh as f32;
        let half = ((1.0 - dy * dy).max(0.0).sqrt() * rw as f32) as i32 + rng.below(7) as i32 - 3;
        for x in (cx - half).max(0)..(cx + half).min(W as i32) {
            if cells[(y / 4) as usize * cells_w + (x / 4) as usize] {
                bm.data[y as usize * W as usize + x as usize] = 1;
            }
        }
    }
    bm
}

fn synthetic() -> Vec<(BBox, Mask)> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    (0..26)
        .map(|i| {
            let (rw, rh) = (40 + rng.below(200) as i32, 40 + rng.below(200) as i32);
            // a few at the borders
            let cx = if i % 9 == 0 { 0 } else { rng.below(W) as i32 };
            let cy = if i % 11 == 0 { H as i32 - 1 } else { rng.below(H) as i32 };
            let roi = RoiBitmap::from_full(&blob(&mut rng, cx, cy, rw, rh));
            let r = roi.rect;
            let b = BBox::new(r.x as f32 + 0.37, r.y as f32 + 0.61, r.right() as f32 - 0.13, r.bottom() as f32 - 0.29);
            (b, Mask::from_roi(roi))
        })
        .collect()
}

fn from_file(path: &Path, line: usize) -> Option<Vec<(BBox, Mask)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(text.lines().nth(line)?).ok()?;
    let mut out = Vec::new();
    for o in v["objects"].as_array()? {
        let b: Vec<f32> = serde_json::from_value(o["bbox"].clone()).ok()?;
        let Some(rle) = o.get("rle") else { continue };
        let rle: Rle = serde_json::from_value(rle.clone()).ok()?;
        out.push((BBox::from_xywh(b[0], b[1], b[2], b[3]), Mask::from_rle(&rle).ok()?));
    }
    Some(out)
}

fn bench(c: &mut Criterion) {
    let objs = match std::env::var_os("TRACKFILE_JSONL") {
        Some(p) => {
            let line = std::env::var("TRACKFILE_LINE").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
            from_file(Path::new(&p), line).expect("TRACKFILE_JSONL: a track file with that line")
        }
        None => synthetic(),
    };
    let n = objs.len();
    let detections: Vec<Detection> = objs
        .iter()
        .enumerate()
        .map(|(i, (b, m))| Detection { bbox: *b, score: 0.5 + i as f32 / 97.0, class_id: 0, mask: Some(m.clone()) })
        .collect();
    // rendered and packed beforehand, as the tracker leaves them
    for d in &detections {
        if let Some(m) = &d.mask {
            black_box(m.bits());
        }
    }
    let tracks: Vec<TrackedObject> = detections
        .iter()
        .enumerate()
        .map(|(i, d)| TrackedObject {
            track_id: 3 * i as u64 + 1,
            bbox: BBox::new(d.bbox.x1 * 1.0001, d.bbox.y1 * 0.9999, d.bbox.x2 + 0.3, d.bbox.y2 - 0.7),
            score: d.score,
            class_id: 0,
            det_index: i,
        })
        .collect();
    let result = FrameResult {
        meta: FrameMeta { index: 41, pts: Some(std::time::Duration::from_millis(1640)) },
        detections,
        tracks,
    };
    let mut exported = Vec::new();
    result.export_objects(true, &mut exported);
    let counts: usize = exported.iter().filter_map(|o| o.rle.as_ref()).map(|r| r.counts.len()).sum();
    let bytes = serde_json::to_string(&exported).map(|s| s.len()).unwrap_or(0);
    eprintln!("{n} objects, {} RLE counts per mask, {} bytes of JSON per object", counts / n.max(1), bytes / n.max(1));

    let mut g = c.benchmark_group("trackfile");
    g.bench_function(format!("rle/{n}"), |b| {
        let mut out = Vec::new();
        b.iter(|| {
            result.export_objects(true, &mut out);
            black_box(&out);
        })
    });
    g.bench_function(format!("json/{n}"), |b| {
        let mut w = TrackWriter::create(None, Some(Path::new("/dev/null"))).expect("/dev/null");
        let mut frame = 0;
        b.iter(|| {
            frame += 1;
            w.write_frame(frame, result.meta.pts, black_box(&exported)).expect("write");
        })
    });
    g.bench_function(format!("frame/{n}"), |b| {
        let w = TrackWriter::create(None, Some(Path::new("/dev/null"))).expect("/dev/null");
        let mut sink = TrackFiles::new(w);
        b.iter(|| sink.write(black_box(&result)).expect("write"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
