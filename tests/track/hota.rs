//! `eval::evaluate_hota` / `eval::combine_hota` against TrackEval 1.3.0
//! (`metrics.HOTA.eval_sequence` / `combine_sequences`, no preprocessing) on the goldens in
//! `../shared/golden/hota/hota_shared.json` (FORMAT.md section 5): every field of every entry
//! to 1e-4.

use crate::support::assets;

use fastsam_track::eval::{self, HotaMetrics};

const TOL: f64 = 1e-4;

/// Compare every numeric field (scalars and `*_per_alpha` arrays) of a golden entry with ours;
/// returns the largest absolute difference.
fn compare(name: &str, golden: &serde_json::Value, ours: &HotaMetrics) -> f64 {
    let ours = serde_json::to_value(ours).unwrap();
    let mut max_diff = 0.0f64;
    let mut n_fields = 0;
    for (k, want) in golden.as_object().unwrap() {
        if k == "gt" || k == "pred" || k == "combined" {
            continue;
        }
        let got = ours.get(k).unwrap_or_else(|| panic!("{name}: we do not report field {k}"));
        let (want_v, got_v): (Vec<f64>, Vec<f64>) = match want {
            serde_json::Value::Array(a) => (
                a.iter().map(|v| v.as_f64().unwrap()).collect(),
                got.as_array()
                    .unwrap_or_else(|| panic!("{name}.{k} is not an array"))
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect(),
            ),
            v => {
                (vec![v.as_f64().unwrap()], vec![got.as_f64().unwrap_or_else(|| panic!("{name}.{k} is not a number"))])
            }
        };
        assert_eq!(want_v.len(), got_v.len(), "{name}.{k}: length");
        for (i, (w, g)) in want_v.iter().zip(&got_v).enumerate() {
            let d = (w - g).abs();
            assert!(d <= TOL, "{name}.{k}[{i}]: ours {g} vs TrackEval {w} (diff {d:e})");
            max_diff = max_diff.max(d);
        }
        n_fields += 1;
    }
    assert!(n_fields >= 24, "{name}: only {n_fields} fields compared");
    max_diff
}

#[test]
fn hota_equals_trackeval_goldens() {
    let Some(path) = assets::require("golden/hota/hota_shared.json") else { return };
    let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let want_alphas: Vec<f64> = golden["alphas"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    // (serde_json without `float_roundtrip` may read the last digit of 0.9500000000000001 off by an ulp.)
    assert_eq!(want_alphas.len(), eval::hota::NUM_ALPHAS);
    for (w, g) in want_alphas.iter().zip(eval::hota::alphas()) {
        assert!((w - g).abs() < 1e-12, "alpha {g} vs TrackEval {w}");
    }
    let results = golden["results"].as_object().unwrap();
    assert!(results.len() >= 5, "expected the four sequences and TUD_OVERALL");
    let mut per_seq = std::collections::HashMap::new();
    for (name, entry) in results {
        let (Some(gt), Some(pred)) = (entry["gt"].as_str(), entry["pred"].as_str()) else { continue };
        let (Some(gt), Some(pred)) = (assets::require(gt), assets::require(pred)) else { return };
        let m = eval::evaluate_hota(&eval::read_mot(&gt).unwrap(), &eval::read_mot(&pred).unwrap()).unwrap();
        let d = compare(name, entry, &m);
        eprintln!(
            "HOTA parity {name}: HOTA {:.4} DetA {:.4} AssA {:.4} LocA {:.4}; max abs diff {d:.2e}",
            m.hota, m.det_a, m.ass_a, m.loc_a
        );
        per_seq.insert(name.as_str(), m);
    }
    // The combined entries name their parts (`combined`); TUD_OVERALL must be among them.
    let mut n_combined = 0;
    for (name, entry) in results {
        let Some(parts) = entry.get("combined").and_then(|c| c.as_array()) else { continue };
        let parts: Vec<HotaMetrics> = parts
            .iter()
            .map(|p| per_seq.get(p.as_str().unwrap()).unwrap_or_else(|| panic!("{name}: no part {p}")).clone())
            .collect();
        let overall = eval::combine_hota(&parts);
        let d = compare(name, entry, &overall);
        eprintln!("HOTA parity {name} (combined): HOTA {:.4}; max abs diff {d:.2e}", overall.hota);
        n_combined += 1;
    }
    assert!(results.contains_key("TUD_OVERALL") && n_combined >= 1);
}
