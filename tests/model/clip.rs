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
