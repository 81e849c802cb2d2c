//! Busy scenes (issue 9): the track stage and drawing with 50, 200 and 300 real FastSAM masks per
//! frame at 720p and 1080p.
//!
//! Detections come from FastSAM-s with random weights (`models/FastSAM-s-random-640.onnx`) on the
//! zidane golden image (1280x720, and resized to 1920x1080), shifted 3 px per frame, with
//! `conf 0.0001` and `max_det N` so that N detections survive NMS, retina masks on (as the video
//! pipeline runs). Inference runs once per frame in the setup; only the raw tensors are kept, so
//! every iteration can postprocess afresh and get masks that are not rendered yet.
//!
//! * `track/<res>/<N>`: `ByteTracker::update` with the product tracker config
//!   (`configs/bytetrack.toml`: duplicate suppression + fused box/mask association) on frame 5,
//!   after frames 0..5; the masks are lazy, so rendering the ones the tracker looks at is
//!   included, as in the pipeline's track stage.
//! * `track_image/<res>/<N>`: the same with each frame's image (`update_with_image`, as the
//!   pipeline's stream processor calls it), so that `[reid]`'s colour histograms are included.
//!   With random weights most of the N detections score at most `track_low_thresh` (about 160 of
//!   200 at 720p), which the tracker ignores; the main job never passes it those (its detector
//!   runs at `conf = track_low_thresh` and keeps `score > conf`).
//! * `track_image_conf/<res>/<N>`: `track_image` on the main job's share of the N detections:
//!   those scoring above `track_low_thresh` (its count is printed).
//! * `reid_hist/<res>/<N>`: `[reid]`'s colour histograms (`reid::histogram`) of the N rendered
//!   masks on the frame (the tracker computes them only for the high detections that update or
//!   start a track).
//! * `render/<res>/<N>`: rendering the N lazy masks (pixels and packed bits, `Mask::bits`), the
//!   part of `track` spent in `model/masks.rs`.
//! * `track_rendered/<res>/<N>`: the same with every mask rendered beforehand (dedup and
//!   association alone).
//! * `rle/<res>/<N>`: COCO RLE of the N masks (the JSON track file's part of the track stage).
//! * `draw/<res>/<N>`: `Overlay::draw` of the N masks with contours and labels (default style).
//! * `draw_blend_only/<res>/<N>`: the same without contours and labels (the mask blending alone).
//! * `draw_tracked/<res>/<N>`: the draw stage as the pipeline runs it: a `StreamProcessor` with
//!   the product tracker (`configs/bytetrack.toml`, 30 fps) fed the clip's 12 frames of N
//!   detections, then `Overlay::draw` (default style, as `run` draws) of the last frame's
//!   `FrameResult::overlay_items`: the confirmed tracks only (their count is printed). The
//!   zidane sequence confirms only 6-8 tracks; the busy video of BENCHMARKS.md confirms ~26.
//! * `draw_26/<res>/200`: the draw stage with as many masks as the busy video's confirmed
//!   tracks: `Overlay::draw` (default style) of the 26 highest-scoring of the 200 detections,
//!   labelled 1..=26 like track IDs (their mask and contour sizes are printed).
//!
//! Skips (with a message) when the assets are missing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fastsam_track::model::{Device, FastSam, Letterbox, ModelOptions, PostConfig, Postprocessor, Protos};
use fastsam_track::overlay::{Overlay, OverlayItem, OverlayStyle};
use fastsam_track::stream::{FrameMeta, StreamConfig, StreamProcessor};
use fastsam_track::track::{ByteTracker, TrackerConfig};
use fastsam_track::{Detection, ImageView, PixelFormat};
use opencv::core::MatTraitConstManual;

#[path = "../tests/support/assets.rs"]
mod assets;

/// Raw model outputs of one frame.
struct Raw {
    out0: Vec<f32>,
    anchors: usize,
    protos: Protos,
    lb: Letterbox,
}

/// One resolution: its frames (RGB-ordered bytes as the model saw them) and raw outputs.
struct Clip {
    name: &'static str,
    w: u32,
    h: u32,
    /// The unshifted frame.
    base: Vec<u8>,
    first: Vec<u8>,
    /// `TRACK_FRAMES` frames of raw outputs (the first `FRAMES` serve the track/draw benches).
    raws: Vec<Raw>,
}

const FRAMES: usize = 6;
/// Frames fed to the stream processor for `draw_tracked`.
const TRACK_FRAMES: usize = 12;

fn read_bgr(path: &std::path::Path, w: u32, h: u32) -> Vec<u8> {
    let m = opencv::imgcodecs::imread(path.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    let mut out = opencv::core::Mat::default();
    let size = opencv::core::Size::new(w as i32, h as i32);
    opencv::imgproc::resize(&m, &mut out, size, 0.0, 0.0, opencv::imgproc::INTER_LINEAR).unwrap();
    out.data_bytes().unwrap().to_vec()
}

/// `img` moved right by `dx` pixels (wrapping around).
fn shifted(img: &[u8], w: u32, dx: u32) -> Vec<u8> {
    let row = w as usize * 3;
    let s = (dx as usize % w as usize) * 3;
    let mut out = Vec::with_capacity(img.len());
    for r in img.chunks_exact(row) {
        out.extend_from_slice(&r[row - s..]);
        out.extend_from_slice(&r[..row - s]);
    }
    out
}

fn clips() -> Option<Vec<Clip>> {
    let img = assets::require("golden/seg/zidane_640/orig.png")?;
    let model = assets::require("models/FastSAM-s-random-640.onnx")?;
    let opts = ModelOptions { device: Device::Cpu, ..ModelOptions::default() };
    let mut model = FastSam::load(&model, opts).ok()?;
    let mut out = Vec::new();
    for (name, w, h) in [("720p", 1280u32, 720u32), ("1080p", 1920, 1080)] {
        let base = read_bgr(&img, w, h);
        let mut raws = Vec::new();
        for f in 0..TRACK_FRAMES {
            let frame = shifted(&base, w, 3 * f as u32);
            let view = ImageView::packed(w, h, PixelFormat::Bgr8, &frame).unwrap();
            let lb = model.infer(&view).unwrap();
            let r = model.raw_outputs();
            raws.push(Raw { out0: r.out0.to_vec(), anchors: r.anchors, protos: r.protos.clone(), lb });
        }
        let first = shifted(&base, w, 3 * (FRAMES as u32 - 1));
        out.push(Clip { name, w, h, base, first, raws });
    }
    Some(out)
}

fn detections(pp: &mut Postprocessor, raw: &Raw, n: usize) -> Vec<Detection> {
    let cfg = PostConfig { conf: 0.0001, iou: 0.9, max_det: n, retina_masks: true };
    pp.run(&raw.out0, raw.anchors, &raw.protos, &raw.lb, &cfg).unwrap().iter().map(|d| d.to_detection()).collect()
}

fn benches(c: &mut Criterion) {
    let Some(clips) = clips() else { return };
    let mut g = c.benchmark_group("busy");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let mut pp = Postprocessor::new();
    for clip in &clips {
        for n in [50usize, 200, 300] {
            let mut tracker = ByteTracker::new(TrackerConfig::product().unwrap());
            for raw in &clip.raws[..FRAMES - 1] {
                tracker.update(&detections(&mut pp, raw, n));
            }
            let last = &clip.raws[FRAMES - 1];
            let rendered = detections(&mut pp, last, n);
            assert_eq!(rendered.len(), n, "{}: NMS keeps {} detections, not {n}", clip.name, rendered.len());
            let px: u64 = rendered.iter().map(|d| d.mask.as_ref().map_or(0, |m| m.area())).sum();
            let tracked = tracker.clone().update(&rendered).len();
            eprintln!(
                "{} N={n}: {:.0} mask px per detection, {tracked} confirmed tracks",
                clip.name,
                px as f64 / n as f64
            );
            let id = format!("{}/{n}", clip.name);
            g.bench_function(format!("track/{id}"), |b| {
                b.iter_batched(
                    || (tracker.clone(), detections(&mut pp, last, n)),
                    |(mut t, d)| black_box(t.update(&d).len()),
                    BatchSize::LargeInput,
                )
            });
            let mut tracker_img = ByteTracker::new(TrackerConfig::product().unwrap());
            let mut out = Vec::new();
            for (f, raw) in clip.raws[..FRAMES - 1].iter().enumerate() {
                let frame = shifted(&clip.base, clip.w, 3 * f as u32);
                let view = ImageView::packed(clip.w, clip.h, PixelFormat::Bgr8, &frame).unwrap();
                tracker_img.update_with_image(&detections(&mut pp, raw, n), Some(view), &mut out);
            }
            let view = ImageView::packed(clip.w, clip.h, PixelFormat::Bgr8, &clip.first).unwrap();
            g.bench_function(format!("track_image/{id}"), |b| {
                b.iter_batched(
                    || (tracker_img.clone(), detections(&mut pp, last, n), Vec::new()),
                    |(mut t, d, mut out)| {
                        t.update_with_image(&d, Some(view), &mut out);
                        black_box(out.len())
                    },
                    BatchSize::LargeInput,
                )
            });
            let mut feat = Vec::new();
            g.bench_function(format!("reid_hist/{id}"), |b| {
                b.iter(|| {
                    let mut ok = 0;
                    for d in &rendered {
                        if let Some(m) = &d.mask {
                            ok += fastsam_track::track::reid::histogram(&view, m.roi(), &mut feat) as u32;
                        }
                    }
                    black_box(ok)
                })
            });
            // The main job's detector keeps `score > conf` with `conf = track_low_thresh`.
            let low = TrackerConfig::product().unwrap().track_low_thresh;
            let above_low = |raw: &Raw, pp: &mut Postprocessor| {
                let mut d = detections(pp, raw, n);
                d.retain(|d| d.score > low);
                d
            };
            let mut tracker_conf = ByteTracker::new(TrackerConfig::product().unwrap());
            for (f, raw) in clip.raws[..FRAMES - 1].iter().enumerate() {
                let frame = shifted(&clip.base, clip.w, 3 * f as u32);
                let view = ImageView::packed(clip.w, clip.h, PixelFormat::Bgr8, &frame).unwrap();
                tracker_conf.update_with_image(&above_low(raw, &mut pp), Some(view), &mut out);
            }
            eprintln!("{} N={n}: {} detections above track_low_thresh", clip.name, above_low(last, &mut pp).len());
            g.bench_function(format!("track_image_conf/{id}"), |b| {
                b.iter_batched(
                    || (tracker_conf.clone(), above_low(last, &mut pp), Vec::new()),
                    |(mut t, d, mut out)| {
                        t.update_with_image(&d, Some(view), &mut out);
                        black_box(out.len())
                    },
                    BatchSize::LargeInput,
                )
            });
            g.bench_function(format!("render/{id}"), |b| {
                b.iter_batched(
                    || detections(&mut pp, last, n),
                    |d| black_box(d.iter().map(|d| d.mask.as_ref().map_or(0, |m| m.bits().area())).sum::<u64>()),
                    BatchSize::LargeInput,
                )
            });
            g.bench_function(format!("track_rendered/{id}"), |b| {
                b.iter_batched(|| tracker.clone(), |mut t| black_box(t.update(&rendered).len()), BatchSize::LargeInput)
            });
            g.bench_function(format!("rle/{id}"), |b| {
                b.iter(|| {
                    rendered.iter().map(|d| d.mask.as_ref().map_or(0, |m| m.to_rle().counts.len())).sum::<usize>()
                })
            });
            let items: Vec<OverlayItem<'_>> = rendered
                .iter()
                .enumerate()
                .map(|(i, d)| OverlayItem {
                    mask: d.mask.as_ref(),
                    bbox: d.bbox,
                    color_key: i as u64 + 1,
                    label: Some((i + 1).to_string()),
                    score: Some(d.score),
                })
                .collect();
            let stride = clip.w as usize * 3;
            let blend_only = OverlayStyle { contours: false, show_labels: false, ..OverlayStyle::default() };
            for (what, style) in [("draw", OverlayStyle::default()), ("draw_blend_only", blend_only)] {
                let mut overlay = Overlay::new(style);
                g.bench_function(format!("{what}/{id}"), |b| {
                    b.iter_batched_ref(
                        || clip.first.clone(),
                        |img| overlay.draw(img, clip.w, clip.h, stride, PixelFormat::Rgb8, &items).unwrap(),
                        BatchSize::LargeInput,
                    )
                });
            }
            // The draw stage of the pipeline: confirmed tracks of a processed stream.
            let mut processor = StreamProcessor::new(StreamConfig::product(Some(30.0)).unwrap());
            let mut result = None;
            let mut last_frame = Vec::new();
            for (f, raw) in clip.raws.iter().enumerate() {
                last_frame = shifted(&clip.base, clip.w, 3 * f as u32);
                let view = ImageView::packed(clip.w, clip.h, PixelFormat::Bgr8, &last_frame).unwrap();
                let meta = FrameMeta { index: f as u64, pts: None };
                result = Some(processor.process(view, meta, detections(&mut pp, raw, n)).unwrap());
            }
            let result = result.unwrap();
            let tracked: Vec<OverlayItem<'_>> = result.overlay_items().collect();
            eprintln!(
                "{} N={n}: draw_tracked draws {} confirmed tracks after {TRACK_FRAMES} frames",
                clip.name,
                tracked.len()
            );
            let mut overlay = Overlay::new(OverlayStyle::default());
            g.bench_function(format!("draw_tracked/{id}"), |b| {
                b.iter_batched_ref(
                    || last_frame.clone(),
                    |img| overlay.draw(img, clip.w, clip.h, stride, PixelFormat::Bgr8, &tracked).unwrap(),
                    BatchSize::LargeInput,
                )
            });
            if n == 200 {
                let items26: Vec<OverlayItem<'_>> =
                    items.iter().take(26).map(|it| OverlayItem { score: None, ..it.clone() }).collect();
                let stats = |items: &[OverlayItem<'_>]| {
                    let px: u64 = items.iter().map(|it| it.mask.map_or(0, |m| m.area())).sum();
                    let roi: u64 = items.iter().map(|it| it.mask.map_or(0, |m| m.roi().rect.area())).sum();
                    (px / items.len().max(1) as u64, roi / items.len().max(1) as u64)
                };
                let ((tp, tr), (p26, r26)) = (stats(&tracked), stats(&items26));
                eprintln!(
                    "{}: per mask, draw_tracked {tp} px in a {tr} px ROI, draw_26 {p26} px in a {r26} px ROI",
                    clip.name
                );
                g.bench_function(format!("draw_26/{id}"), |b| {
                    b.iter_batched_ref(
                        || last_frame.clone(),
                        |img| overlay.draw(img, clip.w, clip.h, stride, PixelFormat::Bgr8, &items26).unwrap(),
                        BatchSize::LargeInput,
                    )
                });
            }
        }
    }
    g.finish();
}

criterion_group!(busy, benches);
criterion_main!(busy);
