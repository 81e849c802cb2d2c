//! The element's `text` property (issue 12) against the CLI's `--text`: on the same clip, model
//! and tiny CLIP pair, the element follows exactly the tracks the CLI's main job writes; and bad
//! CLIP settings fail the state change with an element error that names the problem.

mod common;

use std::path::Path;
use std::process::Command;

use gst::prelude::*;

use common::*;

const CLIP_IMAGE: &str = "golden/clip/tiny_clip_image.onnx";
const CLIP_TEXT: &str = "golden/clip/tiny_clip_text.onnx";
const VOCAB: &str = "assets/clip/bpe_simple_vocab_16e6.txt.gz";

/// Per frame, the (ID, box) of every track the CLI writes to its JSON Lines (gap fillers, which
/// only the CLI's files hold, left out).
type FrameTracks = Vec<Vec<(u64, [f64; 4])>>;

fn cli_tracks(clip: &Path, model: &Path, clip_args: &[String]) -> FrameTracks {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("cli.jsonl");
    let out = Command::new(cli_binary())
        .arg(clip)
        .args(["--model", &model.display().to_string(), "--imgsz", "320", "--device", "cpu", "--no-video"])
        .args(clip_args)
        .arg("--tracks-json")
        .arg(&jsonl)
        .env_remove("FASTSAM_CLIP_IMAGE")
        .env_remove("FASTSAM_CLIP_TEXT")
        .env_remove("FASTSAM_CLIP_VOCAB")
        .output()
        .unwrap();
    assert!(out.status.success(), "CLI failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| {
            let js: serde_json::Value = serde_json::from_str(l).unwrap();
            js["objects"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o["interpolated"] != true)
                .map(|o| {
                    let b: Vec<f64> = o["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
                    (o["id"].as_u64().unwrap(), [b[0], b[1], b[2], b[3]])
                })
                .collect()
        })
        .collect()
}

/// The element on the frames the CLI decodes, through appsrc.
fn element_tracks(frames: &[RgbFrame], caps: gst::Caps, desc: &str) -> FrameTracks {
    run_through_appsrc(desc, &caps, frames)
        .into_iter()
        .map(|(_, tracks)| tracks.iter().map(|t| (t.id, t.bbox.map(|v| v as f64))).collect())
        .collect()
}

fn ids(run: &FrameTracks) -> std::collections::BTreeSet<u64> {
    run.iter().flatten().map(|t| t.0).collect()
}

fn assert_same(element: &FrameTracks, cli: &FrameTracks, what: &str) {
    assert_eq!(element.len(), cli.len(), "{what}: frame count");
    for (i, (e, c)) in element.iter().zip(cli).enumerate() {
        let (ei, ci): (Vec<u64>, Vec<u64>) = (e.iter().map(|t| t.0).collect(), c.iter().map(|t| t.0).collect());
        assert_eq!(ei, ci, "{what}: frame {}: track IDs (element vs CLI)", i + 1);
        for ((id, a), (_, b)) in e.iter().zip(c) {
            for k in 0..4 {
                assert!((a[k] - b[k]).abs() < 1e-3, "{what}: frame {} id {id}: bbox[{k}] {} vs {}", i + 1, a[k], b[k]);
            }
        }
    }
}

/// `text=…` on the element follows the same tracks, frame by frame, as `--text …` in the CLI's main
/// job (best-track mode, and a threshold with re-scoring), and those are a proper subset of the
/// track boxes without a prompt (so the prompt did select).
#[test]
fn text_property_follows_the_same_tracks_as_the_cli() {
    init();
    let (Some(model), Some(clip), Some(image), Some(text), Some(vocab)) =
        (asset(MODEL), asset(SYNTH), asset(CLIP_IMAGE), asset(CLIP_TEXT), asset(VOCAB))
    else {
        return;
    };
    let (w, h, fps, frames) = decode(&clip, usize::MAX);
    let base = format!("fastsamtrack model={} imgsz=320 device=cpu draw=false", model.display());
    let unprompted = cli_tracks(&clip, &model, &[]);
    let all = ids(&unprompted);
    let all_boxes: usize = unprompted.iter().map(Vec::len).sum();
    let clip_args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--clip-image".into(),
            image.display().to_string(),
            "--clip-text".into(),
            text.display().to_string(),
            "--clip-vocab".into(),
            vocab.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let props = format!("clip-image={} clip-text={} clip-vocab={}", image.display(), text.display(), vocab.display());
    // The tiny random CLIP scores these tracks between about 0.11 and 0.15: at 0.13 with re-scoring
    // every 25 frames, tracks enter and leave the followed set (the CLI keeps 2 of 4 IDs).
    for (cli_extra, element_extra) in [
        (vec!["--text", "a red ball"], "text=\"a red ball\"".to_string()),
        (
            vec!["--text", "a red ball", "--text", "a blue box", "--text-threshold", "0.13", "--text-every", "25"],
            "text=\"a red ball;a blue box\" text-threshold=0.13 text-every=25".to_string(),
        ),
    ] {
        let what = element_extra.as_str();
        let cli = cli_tracks(&clip, &model, &clip_args(&cli_extra));
        let element = element_tracks(&frames, rgb_caps(w, h, fps), &format!("{base} {props} {element_extra}"));
        assert_same(&element, &cli, what);
        let chosen = ids(&cli);
        let boxes: usize = cli.iter().map(Vec::len).sum();
        eprintln!(
            "{what}: {boxes} of {all_boxes} track boxes, IDs {chosen:?} of {all:?}: element identical to the CLI"
        );
        assert!(boxes > 0 && boxes < all_boxes, "{what}: a proper subset: {boxes} of {all_boxes} boxes");
        assert!(chosen.is_subset(&all), "{what}: {chosen:?} of {all:?}");
    }
}

/// A missing CLIP file, a FastSAM model given as the CLIP image encoder, and `text` without the
/// encoders: an element error on the bus naming the problem; the state change fails.
#[test]
fn bad_clip_settings_are_element_errors() {
    init();
    let (Some(model), Some(image), Some(text), Some(vocab)) =
        (asset(MODEL), asset(CLIP_IMAGE), asset(CLIP_TEXT), asset(VOCAB))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-clip.onnx");
    let m = model.display().to_string();
    let cases = [
        (
            format!("clip-image={} clip-text={} clip-vocab={}", missing.display(), text.display(), vocab.display()),
            vec![missing.display().to_string()],
        ),
        (
            format!("clip-image={m} clip-text={} clip-vocab={}", text.display(), vocab.display()),
            vec![m.clone(), "not a CLIP image encoder".to_string()],
        ),
        (
            format!("clip-image={} clip-text={} clip-vocab={}", image.display(), text.display(), missing.display()),
            vec![missing.display().to_string(), "vocabulary".to_string()],
        ),
        (format!("clip-image={}", image.display()), vec!["clip-text".to_string()]),
    ];
    for (props, needles) in cases {
        let desc = format!(
            "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=64,height=48 ! \
             fastsamtrack name=f model={m} device=cpu text=\"a dog\" {props} ! fakesink"
        );
        let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
        let res = pipeline.set_state(gst::State::Playing);
        let bus = pipeline.bus().unwrap();
        let msg = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
            .unwrap_or_else(|| panic!("{props}: an error message on the bus"));
        let gst::MessageView::Error(e) = msg.view() else { unreachable!() };
        let text = format!("{} {}", e.error(), e.debug().unwrap_or_default());
        assert_eq!(msg.src().map(|s| s.name().to_string()).as_deref(), Some("f"), "posted by the element");
        for n in &needles {
            assert!(text.contains(n.as_str()), "{props}: the error names `{n}`: {text}");
        }
        assert!(res.is_err() || pipeline.state(gst::ClockTime::from_seconds(5)).0.is_err(), "{props}: state change");
        pipeline.set_state(gst::State::Null).unwrap();
        eprintln!("{props}:\n  {text}");
    }
}
