//! `fastsam-track segment` end to end through the binary: outputs (overlay PNG + JSON with boxes,
//! scores and RLE masks in Ultralytics order) against the golden zidane case, prompts, and the
//! exit status and message for unreadable images.

use std::process::Command;

use crate::support::seg::*;
use fastsam_track::Rle;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
}

#[test]
fn segment_writes_overlay_and_json_matching_goldens() {
    let Some(case) = Case::load("zidane_640") else { return };
    let Some(model) = case.model_path() else { return };
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["segment", case.path("orig.png").to_str().unwrap(), "--device", "cpu", "-o"])
        .arg(out.path())
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let png = out.path().join("orig.overlay.png");
    let json = out.path().join("orig.json");
    assert!(stdout.contains(png.to_str().unwrap()) && stdout.contains(json.to_str().unwrap()), "{stdout}");
    let (w, h, _) = read_bgr(&png);
    assert_eq!((w, h), case.orig_wh());

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let dets = v["detections"].as_array().unwrap();
    // default retina_masks=false, like Ultralytics: masks are the original-size `scale_masks` ones
    let mode = case.mode(false);
    let gold = mode["detections"].as_array().unwrap();
    let origs = read_rles(&case.path(mode["mask_files"]["mask_orig"].as_str().unwrap()));
    assert_eq!(dets.len(), gold.len());
    for (i, (d, g)) in dets.iter().zip(gold).enumerate() {
        assert_eq!(d["index"].as_u64().unwrap() as usize, i);
        assert!(max_box_diff(&bbox(&d["xyxy"]), &bbox(&g["box_xyxy"])) <= 0.5, "det {i}");
        assert!((d["score"].as_f64().unwrap() - g["score"].as_f64().unwrap()).abs() <= 1e-4);
        let rle: Rle = serde_json::from_value(d["mask"].clone()).unwrap();
        assert!(rle.iou(&origs[i]).unwrap() >= 0.99, "det {i} mask");
    }

    // point prompt: the golden selection
    let p = &mode["prompts"].as_array().unwrap().iter().find(|p| p["name"] == "point_one_pos").unwrap();
    let pt = format!("{},{},1", p["points"][0][0], p["points"][0][1]);
    let o = bin()
        .args(["segment", case.path("orig.png").to_str().unwrap(), "--device", "cpu", "--point", &pt, "-o"])
        .arg(out.path())
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let got: Vec<u64> = v["detections"].as_array().unwrap().iter().map(|d| d["index"].as_u64().unwrap()).collect();
    let want: Vec<u64> = p["indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(got, want);
}

#[test]
fn unreadable_images_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.png");
    std::fs::write(&bad, "not an image").unwrap();
    let missing = dir.path().join("missing.jpg");
    for (p, msg) in [(&bad, "cannot read image"), (&missing, "does not exist")] {
        // the image is checked before the model is needed
        let o = bin().args(["segment", p.to_str().unwrap(), "--model", "unused.onnx"]).output().unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg) && err.contains(p.to_str().unwrap()), "{err}");
    }
    // bad arguments are clap errors (exit status 2)
    let o = bin().args(["segment", "a.png", "--point", "1"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}
