//! HOTA (Higher Order Tracking Accuracy, Luiten et al., IJCV 2020) with the semantics of
//! TrackEval 1.3.0's `metrics.HOTA` (`eval_sequence` and `combine_sequences`), re-implemented
//! here from the definition.
//!
//! Similarity is box IoU on the MOTChallenge `x, y, w, h` columns as written. Per sequence:
//! 1. a first pass over the frames accumulates, per (gt id, predicted id), the *potential match
//!    count*: the sum over frames of `S(g, p) / (Σ_p' S(g, p') + Σ_g' S(g', p) - S(g, p))`; with
//!    the number of frames each id appears in, this gives a global alignment score
//!    `A(g, p) = pot / (n_g + n_p - pot)`;
//! 2. in each frame, gt and predictions are matched one-to-one by the assignment that maximises
//!    `Σ A(g, p) · S(g, p)` (Hungarian); for each α in 0.05, 0.10, …, 0.95 a matched pair with
//!    `S ≥ α` is a true positive, everything else of that frame a FN (gt) or FP (prediction);
//! 3. per α: `DetA = TP / (TP + FN + FP)`, `AssA = Σ_TP Ass-IoU(g, p) / TP` with Ass-IoU the
//!    Jaccard index of the two ids' frame sets counted over TP matches (`AssRe`, `AssPr` likewise
//!    with the gt / predicted frame counts), `HOTA = √(DetA · AssA)`, `LocA` the mean similarity
//!    of the TPs, `OWTA = √(DetRe · AssA)`.
//!
//! The reported values are the means over the 19 α (`*_per_alpha` keep the arrays), plus
//! `HOTA(0)`, `LocA(0)` and `HOTALocA(0)` at the lowest α.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::EvalError;
use super::io::MotRow;
use super::mot::group_by_frame;
use crate::track::lap::{Assignment, LapSolver};

/// Number of localisation thresholds α.
pub const NUM_ALPHAS: usize = 19;

/// The α thresholds 0.05, 0.10, …, 0.95, bit for bit as `np.arange(0.05, 0.99, 0.05)` gives them.
#[allow(clippy::excessive_precision)]
const ALPHAS: [f64; NUM_ALPHAS] = [
    0.05,
    0.1,
    0.15000000000000002,
    0.2,
    0.25,
    0.3,
    0.35000000000000003,
    0.4,
    0.45,
    0.5,
    0.55,
    0.6000000000000001,
    0.6500000000000001,
    0.7000000000000001,
    0.7500000000000001,
    0.8,
    0.8500000000000001,
    0.9000000000000001,
    0.9500000000000001,
];

/// The α thresholds 0.05, 0.10, …, 0.95 (as TrackEval's `np.arange(0.05, 0.99, 0.05)`).
pub fn alphas() -> [f64; NUM_ALPHAS] {
    ALPHAS
}

const EPS: f64 = f64::EPSILON;

/// HOTA and its sub-metrics (names as TrackEval prints them). The scalar fields are the means of
/// the per-α arrays over the 19 α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotaMetrics {
    #[serde(rename = "HOTA")]
    pub hota: f64,
    #[serde(rename = "DetA")]
    pub det_a: f64,
    #[serde(rename = "AssA")]
    pub ass_a: f64,
    #[serde(rename = "DetRe")]
    pub det_re: f64,
    #[serde(rename = "DetPr")]
    pub det_pr: f64,
    #[serde(rename = "AssRe")]
    pub ass_re: f64,
    #[serde(rename = "AssPr")]
    pub ass_pr: f64,
    #[serde(rename = "LocA")]
    pub loc_a: f64,
    #[serde(rename = "OWTA")]
    pub owta: f64,
    #[serde(rename = "HOTA(0)")]
    pub hota_0: f64,
    #[serde(rename = "LocA(0)")]
    pub loc_a_0: f64,
    #[serde(rename = "HOTALocA(0)")]
    pub hota_loc_a_0: f64,
    #[serde(rename = "HOTA_per_alpha")]
    pub hota_per_alpha: Vec<f64>,
    #[serde(rename = "DetA_per_alpha")]
    pub det_a_per_alpha: Vec<f64>,
    #[serde(rename = "AssA_per_alpha")]
    pub ass_a_per_alpha: Vec<f64>,
    #[serde(rename = "DetRe_per_alpha")]
    pub det_re_per_alpha: Vec<f64>,
    #[serde(rename = "DetPr_per_alpha")]
    pub det_pr_per_alpha: Vec<f64>,
    #[serde(rename = "AssRe_per_alpha")]
    pub ass_re_per_alpha: Vec<f64>,
    #[serde(rename = "AssPr_per_alpha")]
    pub ass_pr_per_alpha: Vec<f64>,
    #[serde(rename = "LocA_per_alpha")]
    pub loc_a_per_alpha: Vec<f64>,
    #[serde(rename = "OWTA_per_alpha")]
    pub owta_per_alpha: Vec<f64>,
    #[serde(rename = "HOTA_TP_per_alpha")]
    pub tp_per_alpha: Vec<u64>,
    #[serde(rename = "HOTA_FN_per_alpha")]
    pub fn_per_alpha: Vec<u64>,
    #[serde(rename = "HOTA_FP_per_alpha")]
    pub fp_per_alpha: Vec<u64>,
}

/// The integer counts and association sums one sequence (or several) yields, before the ratios.
struct Raw {
    tp: [u64; NUM_ALPHAS],
    fn_: [u64; NUM_ALPHAS],
    fp: [u64; NUM_ALPHAS],
    ass_a: [f64; NUM_ALPHAS],
    ass_re: [f64; NUM_ALPHAS],
    ass_pr: [f64; NUM_ALPHAS],
    loc_a: [f64; NUM_ALPHAS],
}

impl Raw {
    fn zero() -> Self {
        Raw {
            tp: [0; NUM_ALPHAS],
            fn_: [0; NUM_ALPHAS],
            fp: [0; NUM_ALPHAS],
            ass_a: [0.0; NUM_ALPHAS],
            ass_re: [0.0; NUM_ALPHAS],
            ass_pr: [0.0; NUM_ALPHAS],
            loc_a: [0.0; NUM_ALPHAS],
        }
    }

    /// TrackEval's `_compute_final_fields` plus the means over α.
    fn finish(self) -> HotaMetrics {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let per = |f: &dyn Fn(usize) -> f64| -> Vec<f64> { (0..NUM_ALPHAS).map(f).collect() };
        let (tp, fn_, fp) = (&self.tp, &self.fn_, &self.fp);
        let det_re = per(&|a| tp[a] as f64 / ((tp[a] + fn_[a]) as f64).max(1.0));
        let det_pr = per(&|a| tp[a] as f64 / ((tp[a] + fp[a]) as f64).max(1.0));
        let det_a = per(&|a| tp[a] as f64 / ((tp[a] + fn_[a] + fp[a]) as f64).max(1.0));
        let hota = per(&|a| (det_a[a] * self.ass_a[a]).sqrt());
        let owta = per(&|a| (det_re[a] * self.ass_a[a]).sqrt());
        HotaMetrics {
            hota: mean(&hota),
            det_a: mean(&det_a),
            ass_a: mean(&self.ass_a),
            det_re: mean(&det_re),
            det_pr: mean(&det_pr),
            ass_re: mean(&self.ass_re),
            ass_pr: mean(&self.ass_pr),
            loc_a: mean(&self.loc_a),
            owta: mean(&owta),
            hota_0: hota[0],
            loc_a_0: self.loc_a[0],
            hota_loc_a_0: hota[0] * self.loc_a[0],
            hota_per_alpha: hota,
            det_a_per_alpha: det_a,
            ass_a_per_alpha: self.ass_a.to_vec(),
            det_re_per_alpha: det_re,
            det_pr_per_alpha: det_pr,
            ass_re_per_alpha: self.ass_re.to_vec(),
            ass_pr_per_alpha: self.ass_pr.to_vec(),
            loc_a_per_alpha: self.loc_a.to_vec(),
            owta_per_alpha: owta,
            tp_per_alpha: self.tp.to_vec(),
            fn_per_alpha: self.fn_.to_vec(),
            fp_per_alpha: self.fp.to_vec(),
        }
    }
}

/// Box IoU of `x, y, w, h` boxes as TrackEval's `_calculate_box_ious` computes it (areas are not
/// clamped; a union at or below machine epsilon gives 0).
fn box_iou(a: &MotRow, b: &MotRow) -> f64 {
    let inter = super::mot::intersection(a, b);
    let union = a.w * a.h + b.w * b.h - inter;
    if union <= EPS { 0.0 } else { inter / union }
}

/// Dense ids `0..n` in order of first appearance.
fn dense_ids(rows: &[MotRow]) -> (HashMap<i64, usize>, usize) {
    let mut m = HashMap::new();
    for r in rows {
        let n = m.len();
        m.entry(r.id).or_insert(n);
    }
    let n = m.len();
    (m, n)
}

/// One frame: dense gt ids, dense predicted ids and the row-major IoU matrix (gt × pred).
struct Frame {
    gt: Vec<usize>,
    pr: Vec<usize>,
    sim: Vec<f64>,
}

/// HOTA of one sequence: every row of `gt` and `pred` is used (no preprocessing), like
/// TrackEval's `HOTA.eval_sequence` on the same rows. Fails only when an id appears twice in a
/// frame.
pub fn evaluate_hota(gt: &[MotRow], pred: &[MotRow]) -> Result<HotaMetrics, EvalError> {
    Ok(evaluate_raw(gt, pred)?.finish())
}

fn evaluate_raw(gt: &[MotRow], pred: &[MotRow]) -> Result<Raw, EvalError> {
    let gt_f = group_by_frame(gt, "ground truth")?;
    let pr_f = group_by_frame(pred, "prediction")?;
    let mut raw = Raw::zero();
    if pred.is_empty() || gt.is_empty() {
        // TrackEval's early return: everything is a miss (or a false positive), LocA is 1.
        raw.fn_ = [gt.len() as u64; NUM_ALPHAS];
        raw.fp = [pred.len() as u64; NUM_ALPHAS];
        raw.loc_a = [1.0; NUM_ALPHAS];
        return Ok(raw);
    }
    let (gt_ids, n_gt) = dense_ids(gt);
    let (pr_ids, n_pr) = dense_ids(pred);
    let mut frame_keys: Vec<i64> = gt_f.keys().chain(pr_f.keys()).copied().collect();
    frame_keys.sort_unstable();
    frame_keys.dedup();
    let empty = Vec::new();

    // First pass: similarities, potential matches and per-id frame counts.
    let mut frames = Vec::with_capacity(frame_keys.len());
    let mut potential: HashMap<(usize, usize), f64> = HashMap::new();
    let mut gt_count = vec![0u64; n_gt];
    let mut pr_count = vec![0u64; n_pr];
    for f in &frame_keys {
        let g_rows = gt_f.get(f).unwrap_or(&empty);
        let p_rows = pr_f.get(f).unwrap_or(&empty);
        // Every id of these rows was registered by `dense_ids`.
        let g: Vec<usize> = g_rows.iter().map(|r| gt_ids[&r.id]).collect();
        let p: Vec<usize> = p_rows.iter().map(|r| pr_ids[&r.id]).collect();
        let (ng, np) = (g.len(), p.len());
        let mut sim = vec![0.0; ng * np];
        for (i, gr) in g_rows.iter().enumerate() {
            for (j, pr) in p_rows.iter().enumerate() {
                sim[i * np + j] = box_iou(gr, pr);
            }
        }
        let row_sum: Vec<f64> = (0..ng).map(|i| sim[i * np..(i + 1) * np].iter().sum()).collect();
        let col_sum: Vec<f64> = (0..np).map(|j| (0..ng).map(|i| sim[i * np + j]).sum()).collect();
        for i in 0..ng {
            for j in 0..np {
                let s = sim[i * np + j];
                let denom = col_sum[j] + row_sum[i] - s;
                if denom > EPS && s != 0.0 {
                    *potential.entry((g[i], p[j])).or_insert(0.0) += s / denom;
                }
            }
        }
        for &i in &g {
            gt_count[i] += 1;
        }
        for &j in &p {
            pr_count[j] += 1;
        }
        frames.push(Frame { gt: g, pr: p, sim });
    }
    let alignment = |g: usize, p: usize| -> f64 {
        match potential.get(&(g, p)) {
            Some(&pot) => pot / ((gt_count[g] + pr_count[p]) as f64 - pot),
            None => 0.0,
        }
    };

    // Second pass: per-frame matching, maximising the alignment-weighted similarity.
    let alphas = alphas();
    let mut solver = LapSolver::new();
    let mut assignment = Assignment::default();
    let mut cost = Vec::new();
    let mut matches: HashMap<(usize, usize), [u64; NUM_ALPHAS]> = HashMap::new();
    for fr in &frames {
        let (ng, np) = (fr.gt.len(), fr.pr.len());
        if ng == 0 || np == 0 {
            for a in 0..NUM_ALPHAS {
                raw.fp[a] += np as u64;
                raw.fn_[a] += ng as u64;
            }
            continue;
        }
        cost.clear();
        for i in 0..ng {
            for j in 0..np {
                cost.push(-alignment(fr.gt[i], fr.pr[j]) * fr.sim[i * np + j]);
            }
        }
        // All costs are finite, so this is a full (min(ng, np) pairs) maximum-score assignment.
        solver.solve_max_cardinality(&cost, ng, np, &mut assignment);
        for (a, &alpha) in alphas.iter().enumerate() {
            let mut n = 0u64;
            for &(i, j) in &assignment.matches {
                let s = fr.sim[i * np + j];
                if s >= alpha - EPS {
                    n += 1;
                    raw.loc_a[a] += s;
                    matches.entry((fr.gt[i], fr.pr[j])).or_insert([0; NUM_ALPHAS])[a] += 1;
                }
            }
            raw.tp[a] += n;
            raw.fn_[a] += ng as u64 - n;
            raw.fp[a] += np as u64 - n;
        }
    }

    // Association scores: per matched id pair, weighted by its number of TPs.
    for (&(g, p), counts) in &matches {
        let (ng, np) = (gt_count[g] as f64, pr_count[p] as f64);
        for (a, &count) in counts.iter().enumerate() {
            let m = count as f64;
            if m == 0.0 {
                continue;
            }
            raw.ass_a[a] += m * m / (ng + np - m).max(1.0);
            raw.ass_re[a] += m * m / ng.max(1.0);
            raw.ass_pr[a] += m * m / np.max(1.0);
        }
    }
    for a in 0..NUM_ALPHAS {
        let tp = (raw.tp[a] as f64).max(1.0);
        raw.ass_a[a] /= tp;
        raw.ass_re[a] /= tp;
        raw.ass_pr[a] /= tp;
        raw.loc_a[a] = raw.loc_a[a].max(1e-10) / (raw.tp[a] as f64).max(1e-10);
    }
    Ok(raw)
}

/// Combine per-sequence results like TrackEval's `HOTA.combine_sequences`: TP/FN/FP summed,
/// AssA/AssRe/AssPr averaged weighted by TP, LocA weighted by TP, then the ratios recomputed.
pub fn combine_hota(parts: &[HotaMetrics]) -> HotaMetrics {
    let mut raw = Raw::zero();
    for p in parts {
        for a in 0..NUM_ALPHAS {
            let at = |v: &[u64]| v.get(a).copied().unwrap_or(0);
            let af = |v: &[f64]| v.get(a).copied().unwrap_or(0.0);
            let tp = at(&p.tp_per_alpha);
            raw.tp[a] += tp;
            raw.fn_[a] += at(&p.fn_per_alpha);
            raw.fp[a] += at(&p.fp_per_alpha);
            raw.ass_a[a] += af(&p.ass_a_per_alpha) * tp as f64;
            raw.ass_re[a] += af(&p.ass_re_per_alpha) * tp as f64;
            raw.ass_pr[a] += af(&p.ass_pr_per_alpha) * tp as f64;
            raw.loc_a[a] += af(&p.loc_a_per_alpha) * tp as f64;
        }
    }
    for a in 0..NUM_ALPHAS {
        let tp = raw.tp[a] as f64;
        raw.ass_a[a] /= tp.max(1.0);
        raw.ass_re[a] /= tp.max(1.0);
        raw.ass_pr[a] /= tp.max(1.0);
        raw.loc_a[a] = raw.loc_a[a].max(1e-10) / tp.max(1e-10);
    }
    raw.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(frame: i64, id: i64, x: f64) -> MotRow {
        MotRow { frame, id, x, y: 0.0, w: 10.0, h: 10.0, conf: 1.0 }
    }

    #[test]
    fn perfect_tracks_score_one() {
        let gt: Vec<MotRow> = (1..=5).flat_map(|f| [row(f, 1, 0.0), row(f, 2, 50.0)]).collect();
        let m = evaluate_hota(&gt, &gt).unwrap();
        assert!((m.hota - 1.0).abs() < 1e-12 && (m.loc_a - 1.0).abs() < 1e-12, "{m:?}");
        assert_eq!(m.tp_per_alpha, vec![10; NUM_ALPHAS]);
    }

    #[test]
    fn id_swap_halves_association() {
        // One object, predicted as id 7 for two frames and id 8 for two frames.
        let gt: Vec<MotRow> = (1..=4).map(|f| row(f, 1, 0.0)).collect();
        let pred: Vec<MotRow> = (1..=4).map(|f| row(f, if f <= 2 { 7 } else { 8 }, 0.0)).collect();
        let m = evaluate_hota(&gt, &pred).unwrap();
        // Each of the two pairs: 2 matches, Jaccard 2 / (4 + 2 - 2) = 0.5.
        assert!((m.det_a - 1.0).abs() < 1e-12);
        assert!((m.ass_a - 0.5).abs() < 1e-12, "{m:?}");
        assert!((m.hota - 0.5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn empty_prediction_is_all_misses() {
        let gt = vec![row(1, 1, 0.0), row(2, 1, 0.0)];
        let m = evaluate_hota(&gt, &[]).unwrap();
        assert_eq!(m.fn_per_alpha, vec![2; NUM_ALPHAS]);
        assert_eq!(m.hota, 0.0);
        assert_eq!(m.loc_a, 1.0);
    }
}
