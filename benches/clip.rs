//! Text-prompt cost per frame with 50 candidate masks (`cargo bench --bench clip`), side by side
//! with FastSAM's inference on the same CPU:
//!
//! - `select_50_tiny`: the whole text selection (50 masked crops, CLIP preprocessing, one batched
//!   run of the tiny random CLIP image encoder, cosine similarity, pick) with the text embedding
//!   cached, as on every frame after the first;
//! - `crops_preprocess_50`: the model-independent part (crops + resize/normalise);
//! - `image_encoder_50_tiny`: one `session.run` of the tiny image encoder on the 50 preprocessed
//!   crops (the part that scales with the encoder's FLOPs: ×290 for ViT-B/32, see BENCHMARKS.md);
//! - `text_encoder_tiny`: one prompt through the tiny text encoder (paid once per prompt);
//! - `fastsam_s_640`: FastSAM-s (random weights, same graph and cost as the real one) on the frame.
//!
//! It also prints how many tracks a video stream scores per frame (new tracks only, and with
//! `--text-every 30`) on a synthetic 50-object scene, the factor that amortises CLIP in video.
//! Needs `../shared` (tiny CLIP goldens, the BPE vocabulary, the FastSAM-s model); skips without.
//!
//! With `FASTSAM_CLIP_EXPORT=DIR` (a folder written by `scripts/export-clip.py`, e.g. ViT-B/32
//! with `--random-weights`: real shapes and cost, meaningless scores) it also measures that pair:
//! `select_50_export` (the whole selection as above), `text_encoder_export`, and the video cost
//! per frame on the same 50-object scene (one timed pass of 300 frames with the real scorer,
//! minus the same pass with a free scorer), for both scoring policies.

use criterion::{Criterion, criterion_group, criterion_main};
use fastsam_track::clip::preprocess::preprocess_into;
use fastsam_track::clip::select::masked_crop;
use fastsam_track::clip::{ClipModel, ClipPaths, TextPromptConfig, TextSelector};
use fastsam_track::engine::{Device, EngineConfig};
use fastsam_track::model::{FastSam, ModelOptions};
use fastsam_track::stream::{FrameMeta, PromptSelector, StreamConfig, StreamProcessor, TextScoring, TrackScorer};
use fastsam_track::{BBox, Detection, ImageView, Mask, PixelFormat, Segmenter};
use std::time::Instant;

#[path = "../tests/support/assets.rs"]
mod assets;
#[path = "../tests/support/scenes.rs"]
mod scenes;

const W: u32 = 640;
const H: u32 = 480;

/// A noisy 640x480 frame and 50 elliptical candidates on a 10x5 grid (boxes a little larger than
/// their masks, so neighbours reach into them).
fn scene() -> (Vec<u8>, Vec<Detection>) {
    let mut rng = scenes::Rng::new(7);
    let px: Vec<u8> = (0..W * H * 3).map(|_| (rng.f() * 255.0) as u8).collect();
    let dets = (0..50)
        .map(|k| {
            let (gx, gy) = ((k % 10) as f32, (k / 10) as f32);
            let b = BBox::new(gx * 64.0 + 4.0, gy * 96.0 + 6.0, gx * 64.0 + 60.0, gy * 96.0 + 90.0);
            let mask = Mask::from_roi(scenes::ellipse_roi(&b, W, H));
            let loose = BBox::new(b.x1 - 3.0, b.y1 - 3.0, b.x2 + 3.0, b.y2 + 3.0);
            Detection { bbox: loose, score: 0.8, class_id: 0, mask: Some(mask) }
        })
        .collect();
    (px, dets)
}

fn cpu() -> EngineConfig {
    EngineConfig { intra_threads: Some(2), ..EngineConfig::with_device(Device::Cpu) }
}

fn bench(c: &mut Criterion) {
    let (Some(img), Some(txt), Some(vocab), Some(fastsam)) = (
        assets::require("golden/clip/tiny_clip_image.onnx"),
        assets::require("golden/clip/tiny_clip_text.onnx"),
        assets::require("assets/clip/bpe_simple_vocab_16e6.txt.gz"),
        assets::require("models/FastSAM-s-random-640.onnx"),
    ) else {
        return;
    };
    let (px, dets) = scene();
    let view = ImageView::packed(W, H, PixelFormat::Rgb8, &px).unwrap();
    let paths = ClipPaths { image: img, text: txt, vocab: Some(vocab) };
    // One CLIP model for every measurement: ONNX Runtime's idle threads of a second session would
    // spin beside the one being timed.
    let mut model = ClipModel::load(&paths, &cpu()).unwrap();
    let mut g = c.benchmark_group("clip");
    g.sample_size(20);
    let crops: Vec<_> =
        dets.iter().map(|d| masked_crop(&view, d.mask.as_ref().unwrap().roi(), &d.bbox, [255; 3]).unwrap()).collect();
    g.bench_function("crops_preprocess_50", |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            buf.clear();
            for d in &dets {
                let c = masked_crop(&view, d.mask.as_ref().unwrap().roi(), &d.bbox, [255; 3]).unwrap();
                preprocess_into(&c, &mut buf);
            }
            buf.len()
        })
    });
    let mut input = Vec::new();
    for c in &crops {
        preprocess_into(c, &mut input);
    }
    g.bench_function("image_encoder_50_tiny", |b| {
        b.iter(|| model.image_encoder_mut().encode_images(&input, 50).unwrap().len())
    });
    let mut k = 0u64;
    g.bench_function("text_encoder_tiny", |b| {
        b.iter(|| {
            k += 1;
            // a new prompt each time: no cache hit
            model.text_embedding(&format!("a photo of dog number {k}")).unwrap().len()
        })
    });
    let mut sel = TextSelector::new(model, vec!["a photo of a dog".into()], TextPromptConfig::default()).unwrap();
    assert_eq!(PromptSelector::select(&mut sel, view, &dets).unwrap().len(), 1);
    g.bench_function("select_50_tiny", |b| b.iter(|| PromptSelector::select(&mut sel, view, &dets).unwrap()));
    drop(sel);
    let mut fs =
        FastSam::load(&fastsam, ModelOptions { device: Device::Cpu, intra_threads: Some(2), ..Default::default() })
            .unwrap();
    g.sample_size(10);
    g.bench_function("fastsam_s_640", |b| b.iter(|| fs.segment(view).unwrap().len()));
    drop(fs);

    // an exported pair (ViT-B/32), side by side in the same run
    let export = std::env::var_os("FASTSAM_CLIP_EXPORT").map(std::path::PathBuf::from);
    let mut export_model = None;
    if let Some(dir) = &export {
        let paths = ClipPaths { image: dir.join("clip-image.onnx"), text: dir.join("clip-text.onnx"), vocab: None };
        let mut m = ClipModel::load(&paths, &cpu()).unwrap();
        eprintln!("exported pair: {}", m.describe());
        let mut k = 0u64;
        g.bench_function("text_encoder_export", |b| {
            b.iter(|| {
                k += 1;
                m.text_embedding(&format!("a photo of dog number {k}")).unwrap().len()
            })
        });
        let mut sel = TextSelector::new(m, vec!["a photo of a dog".into()], TextPromptConfig::default()).unwrap();
        g.bench_function("select_50_export", |b| b.iter(|| PromptSelector::select(&mut sel, view, &dets).unwrap()));
        export_model = Some(paths);
    } else {
        eprintln!("FASTSAM_CLIP_EXPORT not set: ViT-B/32 (or another exported pair) not measured");
    }
    g.finish();

    // video amortisation: tracks scored per frame on a 50-object scene
    struct Count;
    impl TrackScorer for Count {
        fn score(
            &mut self,
            _: ImageView<'_>,
            _: &[Detection],
            which: &[usize],
        ) -> Result<Vec<Option<f32>>, fastsam_track::model::ModelError> {
            Ok(which.iter().map(|&i| Some(i as f32)).collect())
        }
        fn threshold(&self) -> Option<f32> {
            None
        }
    }
    let p = scenes::SceneParams { num_objects: 50, num_frames: 300, img_w: 1920, img_h: 1080, ..Default::default() };
    let sc = scenes::random_scene(&p, 3);
    let mut rng = scenes::Rng::new(11);
    let noise: Vec<u8> = (0..1920 * 1080 * 3).map(|_| (rng.f() * 255.0) as u8).collect();
    let frame = ImageView::packed(1920, 1080, PixelFormat::Rgb8, &noise).unwrap();
    // one pass over the scene; returns (crops scored, detections, seconds, slowest frame's seconds,
    // frames over 100 ms)
    let pass = |scorer: Box<dyn TrackScorer>, every: Option<u64>| {
        let mut sp = StreamProcessor::new(StreamConfig::product(Some(30.0)).unwrap())
            .with_text_scorer(scorer, TextScoring { every });
        let mut dets_total = 0usize;
        let (mut slowest, mut over) = (0.0f64, 0usize);
        let t = Instant::now();
        for (i, f) in sc.frames.iter().enumerate() {
            dets_total += f.len();
            let tf = Instant::now();
            sp.process(frame, FrameMeta { index: i as u64, pts: None }, f.clone()).unwrap();
            let s = tf.elapsed().as_secs_f64();
            slowest = slowest.max(s);
            over += usize::from(s > 0.1);
        }
        (sp.text_scored_detections(), dets_total, t.elapsed().as_secs_f64(), slowest, over)
    };
    let n = sc.frames.len() as f64;
    for every in [None, Some(30)] {
        let (scored, dets_total, free_s, _, _) = pass(Box::new(Count), every);
        eprintln!(
            "video amortisation (50 objects, {} frames, text-every {every:?}): {:.2} crops scored per frame of {:.1} detections ({:.1}%)",
            sc.frames.len(),
            scored as f64 / n,
            dets_total as f64 / n,
            100.0 * scored as f64 / dets_total as f64
        );
        if let Some(paths) = &export_model {
            let m = ClipModel::load(paths, &cpu()).unwrap();
            let sel = TextSelector::new(m, vec!["a photo of a dog".into()], TextPromptConfig::default()).unwrap();
            let (scored_c, _, clip_s, slowest, over) = pass(Box::new(sel), every);
            eprintln!(
                "  exported pair: {scored_c} crops scored, {:.1} ms per frame with CLIP vs {:.2} ms without: CLIP {:.1} ms per frame; slowest frame {:.0} ms, {over} frames over 100 ms",
                1e3 * clip_s / n,
                1e3 * free_s / n,
                1e3 * (clip_s - free_s) / n,
                1e3 * slowest
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
