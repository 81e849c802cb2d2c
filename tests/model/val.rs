//! `val`: COCO box and mask mAP against pycocotools 2.0.11's statistics on the synthetic COCO
//! goldens (`golden/coco/`), mask encodings against the exact ground-truth areas, bad input, and
//! end to end with the synthetic model against pycocotools on Ultralytics' predictions.

use std::path::{Path, PathBuf};

use fastsam_track::eval::coco::{self, CocoError, EvalOptions, IouType, STAT_NAMES, rle};
use fastsam_track::model::{Device, FastSam, ModelOptions};
use fastsam_track::{ImageView, PixelFormat, Segmenter};
use serde_json::Value;

use crate::support::assets::require;

fn golden(file: &str) -> Option<PathBuf> {
    require(&format!("golden/coco/{file}"))
}

fn pycocotools_stats() -> Option<Value> {
    let p = golden("pycocotools_stats.json")?;
    Some(serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
}

/// Max |ours - pycocotools| over the 12 statistics.
fn max_diff(ours: &coco::CocoStats, theirs: &Value) -> f64 {
    STAT_NAMES
        .iter()
        .map(|n| (ours.get(n).unwrap() - theirs[*n].as_f64().unwrap_or_else(|| panic!("no {n}"))).abs())
        .fold(0.0, f64::max)
}

#[test]
fn stats_equal_pycocotools_for_every_predictions_file() {
    let (Some(gt_path), Some(stats)) = (golden("instances.json"), pycocotools_stats()) else { return };
    let gt = coco::load_gt(&gt_path).unwrap();
    assert_eq!(gt.images.len(), stats["images"].as_u64().unwrap() as usize);
    assert_eq!(gt.annotations.len(), stats["annotations"].as_u64().unwrap() as usize);
    let files = stats["stats"].as_object().unwrap();
    assert!(files.len() >= 2);
    for (file, by_type) in files {
        let Some(p) = golden(file) else { return };
        let preds = coco::load_results(&p, &gt).unwrap();
        assert_eq!(preds.len() as u64, stats["predictions"][file].as_u64().unwrap());
        for iou_type in [IouType::Bbox, IouType::Segm] {
            let s = coco::evaluate(&gt, &preds, iou_type, &EvalOptions::default()).unwrap();
            let d = max_diff(&s, &by_type[iou_type.name()]);
            eprintln!("{file} {}: max |ours - pycocotools| = {d:.3e}\n{}", iou_type.name(), s.summary());
            assert!(d <= 1e-4, "{file} {}: differs from pycocotools by {d}", iou_type.name());
            // class-aware evaluation of a one-category set is the same evaluation
            let aware = EvalOptions { class_agnostic: false, threads: 1 };
            assert_eq!(coco::evaluate(&gt, &preds, iou_type, &aware).unwrap(), s);
        }
    }
}

#[test]
fn class_aware_evaluation_averages_over_categories() {
    // Two categories that are exact copies of the golden one (annotations and predictions): with
    // categories matched as COCOeval does, each category scores what pycocotools gives the
    // original set, and so does their mean. Class-agnostic on the same data sees every object
    // twice and must differ.
    let (Some(gt_path), Some(pred_path), Some(stats)) =
        (golden("instances.json"), golden("preds_ultralytics.json"), pycocotools_stats())
    else {
        return;
    };
    let mut gt_json: Value = serde_json::from_slice(&std::fs::read(&gt_path).unwrap()).unwrap();
    let anns = gt_json["annotations"].as_array().unwrap().clone();
    let max_id = anns.iter().map(|a| a["id"].as_i64().unwrap()).max().unwrap();
    let copies = anns.iter().map(|a| {
        let mut c = a.clone();
        c["id"] = (c["id"].as_i64().unwrap() + max_id).into();
        c["category_id"] = 2.into();
        c
    });
    let both: Vec<Value> = anns.iter().cloned().chain(copies).collect();
    gt_json["annotations"] = Value::Array(both);
    gt_json["categories"].as_array_mut().unwrap().push(serde_json::json!({"id": 2, "name": "copy"}));
    let gt = coco::gt_from_slice(&serde_json::to_vec(&gt_json).unwrap(), "two-categories").unwrap();
    assert_eq!(gt.categories, vec![1, 2]);
    let preds_json: Value = serde_json::from_slice(&std::fs::read(&pred_path).unwrap()).unwrap();
    let preds_json: Vec<Value> = preds_json
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            let mut c = p.clone();
            c["category_id"] = 2.into();
            [p.clone(), c]
        })
        .collect();
    let preds = coco::results_from_slice(&serde_json::to_vec(&preds_json).unwrap(), "preds", &gt).unwrap();
    let aware = EvalOptions { class_agnostic: false, ..EvalOptions::default() };
    for t in [IouType::Bbox, IouType::Segm] {
        let s = coco::evaluate(&gt, &preds, t, &aware).unwrap();
        let d = max_diff(&s, &stats["stats"]["preds_ultralytics.json"][t.name()]);
        assert!(d <= 1e-4, "{}: {d}", t.name());
        let agnostic = coco::evaluate(&gt, &preds, t, &EvalOptions::default()).unwrap();
        assert!(max_diff(&agnostic, &stats["stats"]["preds_ultralytics.json"][t.name()]) > 1e-3);
    }
}

#[test]
fn golden_edge_cases_are_present() {
    // The parity test is only as good as its data: check that the edge cases it claims are there.
    let (Some(gt_path), Some(edge)) = (golden("instances.json"), golden("preds_edge.json")) else { return };
    let gt_json: Value = serde_json::from_slice(&std::fs::read(&gt_path).unwrap()).unwrap();
    let anns = gt_json["annotations"].as_array().unwrap();
    assert!(anns.iter().any(|a| a["iscrowd"].as_u64() == Some(1)), "crowd regions");
    assert!(anns.iter().any(|a| a["segmentation"].as_array().is_some_and(|p| p.len() > 1)), "multi-part polygons");
    assert!(anns.iter().any(|a| a["segmentation"]["counts"].is_array()), "uncompressed RLE ground truth");
    assert!(anns.iter().any(|a| a["segmentation"]["counts"].is_string()), "compressed RLE ground truth");
    let gt = coco::load_gt(&gt_path).unwrap();
    let preds = coco::load_results(&edge, &gt).unwrap();
    let mut per_image = vec![0usize; gt.images.len()];
    for p in &preds {
        per_image[p.image] += 1;
    }
    assert!(per_image.contains(&0), "images without predictions");
    assert!(per_image.iter().any(|&n| n > 100), "more than 100 predictions per image");
    assert!(preds.iter().any(|p| matches!(p.mask, coco::DetMask::Counts(_))), "uncompressed RLE predictions");
}

#[test]
fn ground_truth_masks_have_their_exact_areas_and_boxes() {
    // instances.json holds exact masks: `area` is the mask's pixel count and `bbox` its box, so
    // both RLE forms must decode to them. Polygons are outlines through boundary pixels (holes
    // filled), which pycocotools' rule (pixel centres inside) rasterises differently: the mask
    // stays inside the exact box and keeps most of the area (exactness of the rule itself is
    // tested against pycocotools' own masks in `eval::coco::rle`, and by the segm parity).
    let Some(gt_path) = golden("instances.json") else { return };
    let gt = coco::load_gt(&gt_path).unwrap();
    let gt_json: Value = serde_json::from_slice(&std::fs::read(&gt_path).unwrap()).unwrap();
    let (mut rles, mut polys) = (0, 0);
    for (a, raw) in gt.annotations.iter().zip(gt_json["annotations"].as_array().unwrap()) {
        if raw["segmentation"].is_object() {
            assert_eq!(a.mask.area as f64, a.area, "annotation {}", a.id);
            assert_eq!(a.mask.bbox(), a.bbox, "annotation {}", a.id);
            rles += 1;
        } else {
            let [x, y, w, h] = a.mask.bbox();
            let b = a.bbox;
            assert!(x >= b[0] && y >= b[1] && x + w <= b[0] + b[2] && y + h <= b[1] + b[3], "annotation {}", a.id);
            assert!((a.mask.area as f64) >= 0.4 * a.area, "annotation {}", a.id);
            polys += 1;
        }
    }
    assert!(rles > 100 && polys > 100);
}

#[test]
fn compressed_rle_strings_round_trip() {
    // Decoding then encoding a compressed RLE written by pycocotools gives the same string, and
    // uncompressed predictions re-encoded equal the same masks.
    let (Some(gt_path), Some(preds_path)) = (golden("instances.json"), golden("preds_ultralytics.json")) else {
        return;
    };
    let gt_json: Value = serde_json::from_slice(&std::fs::read(&gt_path).unwrap()).unwrap();
    let preds: Value = serde_json::from_slice(&std::fs::read(&preds_path).unwrap()).unwrap();
    let mut n = 0;
    let strings = gt_json["annotations"].as_array().unwrap().iter().chain(preds.as_array().unwrap().iter().take(2000));
    for a in strings {
        let Some(s) = a["segmentation"]["counts"].as_str() else { continue };
        let counts = rle::decode_counts(s).unwrap();
        let size = &a["segmentation"]["size"];
        rle::check_counts(&counts, size[0].as_u64().unwrap() as u32, size[1].as_u64().unwrap() as u32).unwrap();
        assert_eq!(rle::encode_counts(&counts), s);
        n += 1;
    }
    assert!(n > 2000);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (Some(gt_path), Some(p)) = (golden("instances.json"), golden("preds_edge.json")) else { return };
    let gt = coco::load_gt(&gt_path).unwrap();
    let preds = coco::load_results(&p, &gt).unwrap();
    for iou_type in [IouType::Bbox, IouType::Segm] {
        let one = coco::evaluate(&gt, &preds, iou_type, &EvalOptions { threads: 1, ..EvalOptions::default() });
        let many = coco::evaluate(&gt, &preds, iou_type, &EvalOptions { threads: 7, ..EvalOptions::default() });
        assert_eq!(one.unwrap(), many.unwrap());
    }
}

fn entry_error(r: Result<impl std::fmt::Debug, CocoError>) -> String {
    match r {
        Err(e @ CocoError::Entry { .. }) => e.to_string(),
        other => panic!("expected an error naming the entry, got {other:?}"),
    }
}

#[test]
fn bad_input_names_the_file_and_the_entry() {
    let gt_json = br#"{"images": [{"id": 7, "width": 4, "height": 3}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "area": 2, "bbox": [0,0,1,2],
                         "segmentation": {"size": [3, 4], "counts": [0, 2, 10]}}],
        "categories": [{"id": 1}]}"#;
    let gt = coco::gt_from_slice(gt_json, "gt.json").unwrap();
    assert_eq!((gt.annotations[0].mask.area, gt.annotations[0].mask.bbox()), (2, [0.0, 0.0, 1.0, 2.0]));

    // malformed annotation file: a field of the wrong type, in the second annotation
    let bad = br#"{"images": [{"id": 7, "width": 4, "height": 3}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "area": 2, "bbox": [0,0,1,2]},
                        {"id": 2, "image_id": 7, "category_id": 1, "area": "big", "bbox": [0,0,1,2]}]}"#;
    let e = entry_error(coco::gt_from_slice(bad, "gt.json"));
    assert!(e.contains("gt.json") && e.contains("annotations[1] (id 2)"), "{e}");
    // not JSON at all
    let e = coco::gt_from_slice(b"{\"images\": [", "gt.json").unwrap_err().to_string();
    assert!(e.contains("gt.json") && e.contains("line 1"), "{e}");
    // ground-truth RLE whose size is not its image's
    let bad = br#"{"images": [{"id": 7, "width": 4, "height": 3}],
        "annotations": [{"id": 5, "image_id": 7, "category_id": 1, "area": 2, "bbox": [0,0,1,2],
                         "segmentation": {"size": [4, 4], "counts": [0, 2, 14]}}]}"#;
    let e = entry_error(coco::gt_from_slice(bad, "gt.json"));
    assert!(e.contains("gt.json") && e.contains("(id 5)") && e.contains("4x4") && e.contains("3x4"), "{e}");
    // counts that do not cover the image
    let bad = br#"{"images": [{"id": 7, "width": 4, "height": 3}],
        "annotations": [{"id": 5, "image_id": 7, "category_id": 1, "area": 2, "bbox": [0,0,1,2],
                         "segmentation": {"size": [3, 4], "counts": [0, 2, 3]}}]}"#;
    let e = entry_error(coco::gt_from_slice(bad, "gt.json"));
    assert!(e.contains("sum to 5") && e.contains("12 pixels"), "{e}");

    // predictions for an unknown image id
    let preds = br#"[{"image_id": 7, "category_id": 1, "bbox": [0,0,1,1], "score": 0.5},
                     {"image_id": 8, "category_id": 1, "bbox": [0,0,1,1], "score": 0.5}]"#;
    let e = entry_error(coco::results_from_slice(preds, "preds.json", &gt));
    assert!(e.contains("preds.json") && e.contains("entry 1") && e.contains("image_id 8"), "{e}");
    // a prediction RLE whose size disagrees with its image
    let preds = br#"[{"image_id": 7, "category_id": 1, "bbox": [0,0,1,1], "score": 0.5,
                      "segmentation": {"size": [5, 5], "counts": "05"}}]"#;
    let e = entry_error(coco::results_from_slice(preds, "preds.json", &gt));
    assert!(e.contains("preds.json") && e.contains("entry 0") && e.contains("5x5"), "{e}");
    // a malformed entry
    let preds = br#"[{"image_id": 7, "category_id": 1, "bbox": [0,0,1,1], "score": 0.5},
                     {"image_id": 7, "category_id": 1, "bbox": [0,0,1], "score": 0.5}]"#;
    let e = entry_error(coco::results_from_slice(preds, "preds.json", &gt));
    assert!(e.contains("preds.json") && e.contains("entry[1]"), "{e}");
    // a compressed string that is not an RLE of the image is reported when the mask is scored
    let preds = br#"[{"image_id": 7, "category_id": 1, "bbox": [0,0,1,1], "score": 0.5,
                      "segmentation": {"size": [3, 4], "counts": "05"}}]"#;
    let p = coco::results_from_slice(preds, "preds.json", &gt).unwrap();
    let e = entry_error(coco::evaluate(&gt, &p, IouType::Segm, &EvalOptions::default()));
    assert!(e.contains("entry 0") && e.contains("12 pixels"), "{e}");
}

#[test]
fn perfect_and_empty_predictions() {
    // Independent expectations: the ground truth as predictions scores 1 everywhere it is
    // defined; no predictions score 0; undefined entries are -1.
    let Some(gt_path) = golden("instances.json") else { return };
    let gt = coco::load_gt(&gt_path).unwrap();
    let gt_json: Value = serde_json::from_slice(&std::fs::read(&gt_path).unwrap()).unwrap();
    let as_preds: Vec<Value> = gt_json["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["iscrowd"].as_u64() != Some(1))
        .map(|a| {
            serde_json::json!({"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"],
                               "score": 1.0, "segmentation": a["segmentation"]})
        })
        .collect();
    let bytes = serde_json::to_vec(&as_preds).unwrap();
    let preds = coco::results_from_slice(&bytes, "gt-as-preds", &gt).unwrap();
    for iou_type in [IouType::Bbox, IouType::Segm] {
        let s = coco::evaluate(&gt, &preds, iou_type, &EvalOptions::default()).unwrap();
        for n in ["AP", "AP50", "AP75", "AR100", "AR_small", "AR_medium", "AR_large"] {
            assert_eq!(s.get(n), Some(1.0), "{n} {}", iou_type.name());
        }
        let none = coco::evaluate(&gt, &[], iou_type, &EvalOptions::default()).unwrap();
        assert!(none.stats.iter().all(|&v| v == 0.0), "{:?}", none.stats);
    }
}

fn read_bgr(path: &Path) -> (u32, u32, Vec<u8>) {
    crate::support::seg::read_bgr(path)
}

#[test]
fn model_end_to_end_matches_pycocotools_on_ultralytics_predictions() {
    let (Some(gt_path), Some(stats)) = (golden("instances.json"), pycocotools_stats()) else { return };
    let Some(model) = require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let gt = coco::load_gt(&gt_path).unwrap();
    let cfg = coco::ValConfig::default();
    let opts = ModelOptions {
        imgsz: Some(320),
        conf: cfg.conf,
        iou: cfg.iou,
        max_det: cfg.max_det,
        retina_masks: true,
        device: Device::Cpu,
        ..ModelOptions::default()
    };
    let mut m = FastSam::load(&model, opts).unwrap();
    let dir = gt_path.parent().unwrap().join("images");
    let mut records = Vec::new();
    for im in &gt.images {
        let (w, h, bgr) = read_bgr(&dir.join(im.file_name.as_deref().unwrap()));
        assert_eq!((w, h), (im.width, im.height));
        let dets = m.segment(ImageView::packed(w, h, PixelFormat::Bgr8, &bgr).unwrap()).unwrap();
        records.extend(dets.iter().map(|d| coco::detection_result(im.id, 1, d, w, h)));
    }
    let preds = coco::results_from_records(&records, &gt).unwrap();
    for iou_type in [IouType::Bbox, IouType::Segm] {
        let s = coco::evaluate(&gt, &preds, iou_type, &EvalOptions::default()).unwrap();
        let theirs = stats["stats"]["preds_ultralytics.json"][iou_type.name()]["AP"].as_f64().unwrap();
        let ours = s.get("AP").unwrap();
        eprintln!("end to end {}: mAP50-95 ours {ours:.4}, pycocotools on Ultralytics {theirs:.4}", iou_type.name());
        assert!((ours - theirs).abs() <= 0.005, "{}: {ours} vs {theirs}", iou_type.name());
    }
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;
    use std::process::Command;

    fn bin() -> Command {
        Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
    }

    fn stats_of(v: &Value, iou_type: &str) -> coco::CocoStats {
        let mut stats = [0.0; 12];
        for (s, n) in stats.iter_mut().zip(STAT_NAMES) {
            *s = v[iou_type][n].as_f64().unwrap_or_else(|| panic!("no {iou_type} {n} in {v}"));
        }
        coco::CocoStats { iou_type: if iou_type == "bbox" { IouType::Bbox } else { IouType::Segm }, stats }
    }

    #[test]
    fn val_pred_prints_pycocotools_statistics_as_json() {
        let (Some(gt), Some(pred), Some(stats)) =
            (golden("instances.json"), golden("preds_edge.json"), pycocotools_stats())
        else {
            return;
        };
        let o = bin().arg("val").arg("--pred").arg(&pred).arg("--ann").arg(&gt).arg("--json").output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["predictions"].as_u64(), stats["predictions"]["preds_edge.json"].as_u64());
        for t in ["bbox", "segm"] {
            let d = max_diff(&stats_of(&v, t), &stats["stats"]["preds_edge.json"][t]);
            assert!(d <= 1e-4, "{t}: {d}");
        }
    }

    #[test]
    fn val_with_the_model_saves_coco_results_and_matches_pycocotools() {
        let (Some(gt_path), Some(stats)) = (golden("instances.json"), pycocotools_stats()) else { return };
        let Some(model) = require("models/FastSAM-n-synth-dynamic.onnx") else { return };
        let out = tempfile::tempdir().unwrap();
        let saved = out.path().join("preds.json");
        let o = bin()
            .args(["val", "--imgsz", "320", "--device", "cpu", "--json", "--model"])
            .arg(&model)
            .arg("--images")
            .arg(gt_path.parent().unwrap().join("images"))
            .arg("--ann")
            .arg(&gt_path)
            .arg("--save-json")
            .arg(&saved)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        // The saved file is a COCO results file whose evaluation is what was printed.
        let gt = coco::load_gt(&gt_path).unwrap();
        let records: Vec<coco::CocoResult> = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
        assert_eq!(records.len() as u64, v["predictions"].as_u64().unwrap());
        assert!(records.iter().all(|r| r.score >= 0.001 && r.category_id == 1));
        let preds = coco::load_results(&saved, &gt).unwrap();
        for t in [IouType::Bbox, IouType::Segm] {
            let s = coco::evaluate(&gt, &preds, t, &EvalOptions::default()).unwrap();
            // (serde_json parses floats to within 1 ulp)
            let printed = stats_of(&v, t.name());
            assert!(s.stats.iter().zip(printed.stats).all(|(a, b)| (a - b).abs() < 1e-12), "{s:?} vs {printed:?}");
            let theirs = stats["stats"]["preds_ultralytics.json"][t.name()]["AP"].as_f64().unwrap();
            assert!((s.get("AP").unwrap() - theirs).abs() <= 0.005, "{}", t.name());
        }
    }

    #[test]
    fn val_bad_input_fails_naming_the_file_and_entry() {
        let Some(gt) = golden("instances.json") else { return };
        let dir = tempfile::tempdir().unwrap();
        let pred = dir.path().join("bad_preds.json");
        std::fs::write(&pred, r#"[{"image_id": 123456, "category_id": 1, "bbox": [0,0,1,1], "score": 0.5}]"#).unwrap();
        let o = bin().arg("val").arg("--pred").arg(&pred).arg("--ann").arg(&gt).output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("bad_preds.json") && err.contains("entry 0") && err.contains("123456"), "{err}");
        // neither --pred nor --images: a usage error
        let o = bin().arg("val").arg("--ann").arg(&gt).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
    }
}

mod properties {
    use fastsam_track::eval::coco::rle::{self, RunMask};
    use fastsam_track::mask::Rle;
    use proptest::prelude::*;

    /// Run lengths (starting with zeros) of an `h` x `w` mask from random run sizes.
    fn counts(h: u32, w: u32, runs: &[u32]) -> Vec<u32> {
        let total = h * w;
        let mut out = Vec::new();
        let mut pos = 0;
        for &r in runs {
            let r = r.min(total - pos);
            out.push(r);
            pos += r;
        }
        out.push(total - pos);
        out
    }

    proptest! {
        #[test]
        fn compressed_strings_round_trip(c in proptest::collection::vec(0u32..5_000_000, 0..60)) {
            prop_assert_eq!(rle::decode_counts(&rle::encode_counts(&c)).unwrap(), c);
        }

        #[test]
        fn run_length_area_box_and_intersection_equal_the_bitmaps(
            h in 1u32..24, w in 1u32..24,
            a in proptest::collection::vec(0u32..40, 0..12),
            b in proptest::collection::vec(0u32..40, 0..12),
        ) {
            let (ca, cb) = (counts(h, w, &a), counts(h, w, &b));
            let (ba, bb) = (
                Rle { size: [h, w], counts: ca.clone() }.to_bitmap().unwrap(),
                Rle { size: [h, w], counts: cb.clone() }.to_bitmap().unwrap(),
            );
            let (ma, mb) = (RunMask::new(&ca, h), RunMask::new(&cb, h));
            prop_assert_eq!(ma.area, ba.area());
            let inter = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| ba.get(x, y) && bb.get(x, y)).count();
            prop_assert_eq!(ma.intersection(&mb), inter as u64);
            prop_assert_eq!(mb.intersection(&ma), inter as u64);
            // the box is the tight box of the set pixels
            let set: Vec<(u32, u32)> = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| ba.get(x, y)).collect();
            let expected = if set.is_empty() {
                [0.0; 4]
            } else {
                let (x0, x1) = (set.iter().map(|p| p.0).min().unwrap(), set.iter().map(|p| p.0).max().unwrap());
                let (y0, y1) = (set.iter().map(|p| p.1).min().unwrap(), set.iter().map(|p| p.1).max().unwrap());
                [x0 as f64, y0 as f64, (x1 - x0 + 1) as f64, (y1 - y0 + 1) as f64]
            };
            prop_assert_eq!(ma.bbox(), expected);
            // the union of the two masks covers what either covers
            let u = rle::union(&[Rle { size: [h, w], counts: ca }, Rle { size: [h, w], counts: cb }], h, w);
            prop_assert_eq!(RunMask::new(&u.counts, h).area, ma.area + mb.area - inter as u64);
        }
    }
}
