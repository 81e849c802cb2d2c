//! Parity with Ultralytics 8.4.190 on the golden cases `../shared/golden/seg/{bus_640,zidane_640}`:
//! letterboxed input, postprocessing of the recorded raw ONNX Runtime tensors (retina masks on and
//! off) and box/point prompts.

use crate::support::npy::read_f32;
use crate::support::seg::*;
use fastsam_track::model::prompt::{Prompt, select};
use fastsam_track::model::{Letterbox, PostConfig, Postprocessor, Preprocessor, Protos};
use fastsam_track::{BBox, Detection, ImageView, Mask, PixelFormat};

const CASES: [&str; 2] = ["bus_640", "zidane_640"];

fn golden_letterbox(case: &Case) -> Letterbox {
    let (w, h) = case.orig_wh();
    let l = &case.json["letterbox"];
    let t = &l["predictor_imgsz"];
    let lb = Letterbox::new(
        w,
        h,
        t[1].as_u64().unwrap() as u32,
        t[0].as_u64().unwrap() as u32,
        l["auto"].as_bool().unwrap(),
        l["stride"].as_u64().unwrap() as u32,
    );
    let g = |k: &str| l[k].as_u64().unwrap() as u32;
    assert_eq!(
        (lb.pad_top, lb.pad_bottom, lb.pad_left, lb.pad_right),
        (g("pad_top"), g("pad_bottom"), g("pad_left"), g("pad_right"))
    );
    assert_eq!(
        [lb.new_w, lb.new_h],
        [l["new_unpad_wh"][0].as_u64().unwrap() as u32, l["new_unpad_wh"][1].as_u64().unwrap() as u32]
    );
    assert_eq!(
        [lb.input_h, lb.input_w],
        [l["input_shape"][0].as_u64().unwrap() as u32, l["input_shape"][1].as_u64().unwrap() as u32]
    );
    assert!((lb.ratio - l["ratio"][0].as_f64().unwrap()).abs() < 1e-12);
    lb
}

#[test]
fn letterbox_matches_golden_input() {
    for name in CASES {
        let Some(case) = Case::load(name) else { return };
        let lb = golden_letterbox(&case);
        let (w, h, bgr) = read_bgr(&case.path("orig.png"));
        assert_eq!((w, h), case.orig_wh());
        let (iw, ih, want_bgr) = read_bgr(&case.path("input.png"));
        assert_eq!((iw, ih), (lb.input_w, lb.input_h));
        let want = bgr_to_rgb(want_bgr);
        let mut pre = Preprocessor::new();
        // BGR input (as cv2.imread) and the same pixels as RGB must give the same network input
        let got = pre.letterboxed_rgb8(&ImageView::packed(w, h, PixelFormat::Bgr8, &bgr).unwrap(), &lb).unwrap();
        let rgb = bgr_to_rgb(bgr.clone());
        let got_rgb = pre.letterboxed_rgb8(&ImageView::packed(w, h, PixelFormat::Rgb8, &rgb).unwrap(), &lb).unwrap();
        assert_eq!(got, got_rgb, "{name}: channel order handling");
        let diffs: Vec<i16> = got.iter().zip(&want).map(|(&a, &b)| a as i16 - b as i16).filter(|&d| d != 0).collect();
        let max = diffs.iter().map(|d| d.abs()).max().unwrap_or(0);
        eprintln!("{name}: {} of {} channel values differ from input.png (max |diff| {max})", diffs.len(), got.len());
        assert!(max <= 1, "{name}: letterbox differs by more than 1 LSB");
        assert!(diffs.len() * 1000 <= got.len(), "{name}: more than 0.1% of values differ by 1 LSB");
        // the float tensor is the same pixels / 255 in CHW RGB order
        pre.run(&ImageView::packed(w, h, PixelFormat::Bgr8, &bgr).unwrap(), &lb).unwrap();
        let plane = (iw * ih) as usize;
        for (i, px) in got.chunks_exact(3).enumerate().step_by(997) {
            for (c, &v) in px.iter().enumerate() {
                assert_eq!(pre.tensor[c * plane + i], v as f32 / 255.0);
            }
        }
    }
}

fn run_post(case: &Case, retina: bool) -> Vec<fastsam_track::model::RawDetection> {
    let lb = golden_letterbox(case);
    let o0 = read_f32(&case.path("output0.npy")).unwrap();
    let o1 = read_f32(&case.path("output1.npy")).unwrap();
    assert_eq!(o1.shape.len(), 4);
    let protos =
        Protos { nm: o1.shape[1], mh: o1.shape[2], mw: o1.shape[3], data: std::sync::Arc::new(o1.data.clone()) };
    let p = &case.json["params"];
    let cfg = PostConfig {
        conf: p["conf"].as_f64().unwrap() as f32,
        iou: p["iou"].as_f64().unwrap() as f32,
        max_det: p["max_det"].as_u64().unwrap() as usize,
        retina_masks: retina,
    };
    Postprocessor::new().run(&o0.data, o0.shape[2], &protos, &lb, &cfg).unwrap()
}

#[test]
fn postprocess_matches_golden_tensors() {
    for name in CASES {
        let Some(case) = Case::load(name) else { return };
        for retina in [false, true] {
            let dets = run_post(&case, retina);
            let gold = case.mode(retina)["detections"].as_array().unwrap().clone();
            for (i, (d, g)) in dets.iter().zip(&gold).enumerate() {
                let bd = max_box_diff(&d.input_box, &bbox(&g["nms_box_xyxy_input_space"]));
                assert!(bd <= 0.5, "{name}: det {i} NMS box {:?}", d.input_box);
            }
            let (mb, ms, mi, mo) = compare(&case, retina, &dets, true);
            eprintln!(
                "{name} retina={retina}: {} detections, max box diff {mb:.2e} px, max score diff {ms:.1e}, min mask IoU {mi:.5}, min original-size mask IoU {mo:.5}",
                dets.len()
            );
        }
    }
}

fn prompt_of(p: &serde_json::Value) -> Prompt {
    let boxes: Vec<BBox> =
        p.get("bboxes").map(|b| b.as_array().unwrap().iter().map(bbox).collect()).unwrap_or_default();
    let points: Vec<(f32, f32, bool)> = p
        .get("points")
        .map(|pts| {
            pts.as_array()
                .unwrap()
                .iter()
                .zip(p["labels"].as_array().unwrap())
                .map(|(xy, l)| {
                    (xy[0].as_f64().unwrap() as f32, xy[1].as_f64().unwrap() as f32, l.as_i64().unwrap() == 1)
                })
                .collect()
        })
        .unwrap_or_default();
    match (boxes.is_empty(), points.is_empty()) {
        (false, true) => Prompt::Boxes(boxes),
        (true, false) => Prompt::Points(points),
        _ => Prompt::BoxesAndPoints(boxes, points),
    }
}

#[test]
fn prompts_select_golden_indices() {
    for name in CASES {
        let Some(case) = Case::load(name) else { return };
        let (w, h) = case.orig_wh();
        for retina in [false, true] {
            let mode = case.mode(retina);
            // our masks, re-prompted without re-running anything
            let dets: Vec<Detection> = run_post(&case, retina).iter().map(|d| d.to_detection()).collect();
            // and the golden original-size masks, to test the prompt rule on its own
            let files = &mode["mask_files"];
            let f = files.get("mask_orig").unwrap_or(&files["mask"]).as_str().unwrap();
            let gold_dets: Vec<Detection> = read_rles(&case.path(f))
                .iter()
                .map(|r| Detection {
                    bbox: BBox::default(),
                    score: 1.0,
                    class_id: 0,
                    mask: Some(Mask::from_rle(r).unwrap()),
                })
                .collect();
            for p in mode["prompts"].as_array().unwrap() {
                let want: Vec<usize> =
                    p["indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
                let prompt = prompt_of(p);
                assert_eq!(
                    select(&gold_dets, &prompt, w, h).unwrap(),
                    want,
                    "{name} retina={retina} {} (golden masks)",
                    p["name"]
                );
                assert_eq!(select(&dets, &prompt, w, h).unwrap(), want, "{name} retina={retina} {}", p["name"]);
            }
        }
    }
}
