//! The COCOeval algorithm (pycocotools 2.0 semantics, default parameters): per image and
//! category, detections sorted by score (stable) and cut to 100, greedy matching at IoU
//! thresholds 0.50:0.05:0.95 with crowd regions matched any number of times and ignored, area
//! ranges all/small/medium/large, then precision interpolated at 101 recall points and
//! averaged; `-1` where a statistic is undefined.
//!
//! Images are evaluated in parallel (`std::thread::scope`); the result does not depend on the
//! number of threads.

use serde::Serialize;

use super::rle::{RunMask, box_iou, mask_iou};
use super::{CocoError, CocoGt, Prediction, decode_mask};

/// What is compared: boxes or masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IouType {
    Bbox,
    Segm,
}

impl IouType {
    pub fn name(self) -> &'static str {
        match self {
            IouType::Bbox => "bbox",
            IouType::Segm => "segm",
        }
    }
}

/// Evaluation options (the COCO parameters themselves are fixed: COCOeval's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Count every annotation and prediction as one category (COCOeval `useCats=0`). On by
    /// default: FastSAM is class-agnostic.
    pub class_agnostic: bool,
    /// Worker threads for the per-image evaluation (at least 1).
    pub threads: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            class_agnostic: true,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// The 12 statistics in COCOeval's order.
pub const STAT_NAMES: [&str; 12] = [
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
];

/// The 12 COCO statistics of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CocoStats {
    pub iou_type: IouType,
    /// In [`STAT_NAMES`] order; `-1` where undefined (no ground truth in that area range...).
    pub stats: [f64; 12],
}

impl CocoStats {
    /// The statistic called `name` (one of [`STAT_NAMES`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        STAT_NAMES.iter().position(|n| *n == name).map(|i| self.stats[i])
    }

    /// `{"AP": ..., "AP50": ..., ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> =
            STAT_NAMES.iter().zip(self.stats).map(|(n, v)| ((*n).to_string(), serde_json::Value::from(v))).collect();
        serde_json::Value::Object(map)
    }

    /// The 12 lines COCOeval's `summarize()` prints.
    pub fn summary(&self) -> String {
        let rows = [
            (true, "0.50:0.95", "all", 100),
            (true, "0.50", "all", 100),
            (true, "0.75", "all", 100),
            (true, "0.50:0.95", "small", 100),
            (true, "0.50:0.95", "medium", 100),
            (true, "0.50:0.95", "large", 100),
            (false, "0.50:0.95", "all", 1),
            (false, "0.50:0.95", "all", 10),
            (false, "0.50:0.95", "all", 100),
            (false, "0.50:0.95", "small", 100),
            (false, "0.50:0.95", "medium", 100),
            (false, "0.50:0.95", "large", 100),
        ];
        let mut s = String::new();
        for ((ap, iou, area, md), v) in rows.iter().zip(self.stats) {
            let (title, short) = if *ap { ("Average Precision", "(AP)") } else { ("Average Recall", "(AR)") };
            s.push_str(&format!(
                " {title:<18} {short} @[ IoU={iou:<9} | area={area:>6} | maxDets={md:>3} ] = {v:0.3}\n"
            ));
        }
        s
    }
}

const T: usize = 10;
const R: usize = 101;
const A: usize = 4;
const MAX_DETS: [usize; 3] = [1, 10, 100];
const AREA_RANGES: [(f64, f64); A] = [(0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10)];

/// IoU thresholds as `np.linspace(.5, .95, 10)` computes them.
fn iou_thresholds() -> [f64; T] {
    let step = (0.95 - 0.5) / 9.0;
    let mut t = [0.0; T];
    for (i, v) in t.iter_mut().enumerate() {
        *v = i as f64 * step + 0.5;
    }
    t[T - 1] = 0.95;
    t
}

/// Recall points as `np.linspace(0, 1, 101)` computes them.
fn recall_thresholds() -> [f64; R] {
    let step = 1.0 / 100.0;
    let mut r = [0.0; R];
    for (i, v) in r.iter_mut().enumerate() {
        *v = i as f64 * step;
    }
    r[R - 1] = 1.0;
    r
}

/// Matching flags of one detection at one threshold.
const MATCHED: u8 = 1;
const IGNORED: u8 = 2;

/// The evaluation of one image and category (COCOeval `evaluateImg`, for every area range).
struct ImageEval {
    /// Scores of the kept detections, best first.
    scores: Vec<f64>,
    /// Per area range: `flags[t * D + d]`.
    flags: [Vec<u8>; A],
    /// Per area range: ground truths not ignored.
    npig: [usize; A],
}

fn eval_image(
    gt: &CocoGt,
    preds: &[Prediction],
    gts: &[usize],
    dets: &[usize],
    iou_type: IouType,
    thr: &[f64; T],
) -> Result<Option<ImageEval>, String> {
    if gts.is_empty() && dets.is_empty() {
        return Ok(None);
    }
    let mut order: Vec<usize> = dets.to_vec();
    // Stable sort, best score first (numpy mergesort of -score).
    order.sort_by(|&a, &b| preds[b].score.partial_cmp(&preds[a].score).unwrap_or(std::cmp::Ordering::Equal));
    order.truncate(MAX_DETS[MAX_DETS.len() - 1]);
    let (nd, ng) = (order.len(), gts.len());
    // ious[d * ng + g], ground truths in file order.
    let mut ious = vec![0.0f64; nd * ng];
    if nd > 0 && ng > 0 {
        match iou_type {
            IouType::Bbox => {
                for (d, &p) in order.iter().enumerate() {
                    for (g, &a) in gts.iter().enumerate() {
                        let ann = &gt.annotations[a];
                        ious[d * ng + g] = box_iou(&preds[p].bbox, &ann.bbox, ann.iscrowd);
                    }
                }
            }
            IouType::Segm => {
                for (d, &p) in order.iter().enumerate() {
                    let pr = &preds[p];
                    let im = &gt.images[pr.image];
                    let m: RunMask = decode_mask(&pr.mask, im.height, im.width)
                        .map_err(|e| format!("entry {} (image_id {}): {e}", pr.entry, im.id))?;
                    for (g, &a) in gts.iter().enumerate() {
                        let ann = &gt.annotations[a];
                        ious[d * ng + g] = mask_iou(&m, &ann.mask, ann.iscrowd);
                    }
                }
            }
        }
    }
    let scores: Vec<f64> = order.iter().map(|&p| preds[p].score).collect();
    let mut flags: [Vec<u8>; A] = Default::default();
    let mut npig = [0usize; A];
    let mut gt_order: Vec<usize> = Vec::with_capacity(ng);
    let mut gt_ig: Vec<bool> = Vec::with_capacity(ng);
    let mut gt_used: Vec<bool> = vec![false; ng];
    for (a, &(lo, hi)) in AREA_RANGES.iter().enumerate() {
        let ignored = |g: usize| {
            gt.annotations[gts[g]].iscrowd || gt.annotations[gts[g]].area < lo || gt.annotations[gts[g]].area > hi
        };
        // Ground truths not ignored first, each group in file order.
        gt_order.clear();
        gt_order.extend((0..ng).filter(|&g| !ignored(g)));
        npig[a] = gt_order.len();
        gt_order.extend((0..ng).filter(|&g| ignored(g)));
        gt_ig.clear();
        gt_ig.extend(gt_order.iter().map(|&g| ignored(g)));
        let crowd: Vec<bool> = gt_order.iter().map(|&g| gt.annotations[gts[g]].iscrowd).collect();
        let mut f = vec![0u8; T * nd];
        for (t, &th) in thr.iter().enumerate() {
            gt_used.iter_mut().for_each(|u| *u = false);
            for d in 0..nd {
                let mut best = th.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                let row = &ious[d * ng..(d + 1) * ng];
                for (j, &g) in gt_order.iter().enumerate() {
                    if gt_used[j] && !crowd[j] {
                        continue;
                    }
                    if let Some(mm) = m
                        && !gt_ig[mm]
                        && gt_ig[j]
                    {
                        break;
                    }
                    if row[g] < best {
                        continue;
                    }
                    best = row[g];
                    m = Some(j);
                }
                if let Some(j) = m {
                    gt_used[j] = true;
                    f[t * nd + d] = MATCHED | if gt_ig[j] { IGNORED } else { 0 };
                }
            }
        }
        // Unmatched detections outside the area range are ignored.
        for (d, &p) in order.iter().enumerate() {
            let area = preds[p].area;
            if area < lo || area > hi {
                for t in 0..T {
                    if f[t * nd + d] & MATCHED == 0 {
                        f[t * nd + d] |= IGNORED;
                    }
                }
            }
        }
        flags[a] = f;
    }
    Ok(Some(ImageEval { scores, flags, npig }))
}

/// Evaluate predictions against the ground truth: COCOeval `evaluate(); accumulate();
/// summarize()` with default parameters.
pub fn evaluate(
    gt: &CocoGt,
    preds: &[Prediction],
    iou_type: IouType,
    opts: &EvalOptions,
) -> Result<CocoStats, CocoError> {
    let ni = gt.images.len();
    // Categories: one for class-agnostic evaluation, else the ground truth's (sorted).
    let nk = if opts.class_agnostic { 1 } else { gt.categories.len() };
    let cat = |id: i64| -> Option<usize> {
        if opts.class_agnostic { Some(0) } else { gt.categories.binary_search(&id).ok() }
    };
    let mut gt_cells: Vec<Vec<usize>> = vec![Vec::new(); nk * ni];
    for (i, a) in gt.annotations.iter().enumerate() {
        if let Some(k) = cat(a.category_id) {
            gt_cells[k * ni + a.image].push(i);
        }
    }
    let mut dt_cells: Vec<Vec<usize>> = vec![Vec::new(); nk * ni];
    for (i, p) in preds.iter().enumerate() {
        if let Some(k) = cat(p.category_id) {
            dt_cells[k * ni + p.image].push(i);
        }
    }
    let thr = iou_thresholds();
    let cells = nk * ni;
    let threads = opts.threads.clamp(1, cells.max(1));
    let chunk = cells.div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Option<ImageEval>>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cells)
            .step_by(chunk)
            .map(|start| {
                let (gt_cells, dt_cells, thr) = (&gt_cells, &dt_cells, &thr);
                s.spawn(move || {
                    (start..(start + chunk).min(cells))
                        .map(|c| eval_image(gt, preds, &gt_cells[c], &dt_cells[c], iou_type, thr))
                        .collect::<Result<Vec<_>, String>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("an evaluation thread panicked".to_string())))
            .collect()
    });
    let mut evals: Vec<Option<ImageEval>> = Vec::with_capacity(cells);
    for r in results {
        evals.extend(r.map_err(|message| CocoError::Entry {
            path: "predictions".into(),
            entry: format!("{} evaluation", iou_type.name()),
            message,
        })?);
    }
    Ok(CocoStats { iou_type, stats: accumulate(&evals, nk, ni) })
}

/// COCOeval `accumulate()` and `summarize()`.
fn accumulate(evals: &[Option<ImageEval>], nk: usize, ni: usize) -> [f64; 12] {
    let rec_thr = recall_thresholds();
    let nm = MAX_DETS.len();
    // precision[((t * R + r) * nk + k) * A * nm + a * nm + m], recall[((t * nk + k) * A + a) * nm + m]
    let mut precision = vec![-1.0f64; T * R * nk * A * nm];
    let mut recall = vec![-1.0f64; T * nk * A * nm];
    let p_idx = |t: usize, r: usize, k: usize, a: usize, m: usize| (((t * R + r) * nk + k) * A + a) * nm + m;
    let r_idx = |t: usize, k: usize, a: usize, m: usize| ((t * nk + k) * A + a) * nm + m;
    let mut pr: Vec<f64> = Vec::new();
    let mut rc: Vec<f64> = Vec::new();
    for k in 0..nk {
        let e: Vec<&ImageEval> = evals[k * ni..(k + 1) * ni].iter().flatten().collect();
        if e.is_empty() {
            continue;
        }
        for (m, &max_det) in MAX_DETS.iter().enumerate() {
            // (image position in e, detection) in stable order of descending score.
            let mut order: Vec<(u32, u32)> = Vec::new();
            for (i, ie) in e.iter().enumerate() {
                for d in 0..ie.scores.len().min(max_det) {
                    order.push((i as u32, d as u32));
                }
            }
            let score = |&(i, d): &(u32, u32)| e[i as usize].scores[d as usize];
            order.sort_by(|a, b| score(b).partial_cmp(&score(a)).unwrap_or(std::cmp::Ordering::Equal));
            let nd = order.len();
            for a in 0..A {
                let npig: usize = e.iter().map(|ie| ie.npig[a]).sum();
                if npig == 0 {
                    continue;
                }
                for t in 0..T {
                    pr.clear();
                    rc.clear();
                    let (mut tp, mut fp) = (0u64, 0u64);
                    for &(i, d) in &order {
                        let ie = e[i as usize];
                        let f = ie.flags[a][t * ie.scores.len() + d as usize];
                        if f & IGNORED == 0 {
                            if f & MATCHED != 0 {
                                tp += 1;
                            } else {
                                fp += 1;
                            }
                        }
                        let (tpf, fpf) = (tp as f64, fp as f64);
                        rc.push(tpf / npig as f64);
                        pr.push(tpf / (fpf + tpf + f64::EPSILON));
                    }
                    recall[r_idx(t, k, a, m)] = rc.last().copied().unwrap_or(0.0);
                    // Precision envelope: non-increasing from the right.
                    for i in (1..nd).rev() {
                        if pr[i] > pr[i - 1] {
                            pr[i - 1] = pr[i];
                        }
                    }
                    for (r, &rt) in rec_thr.iter().enumerate() {
                        let pi = rc.partition_point(|&x| x < rt);
                        precision[p_idx(t, r, k, a, m)] = if pi < nd { pr[pi] } else { 0.0 };
                    }
                }
            }
        }
    }
    let mean = |vals: &mut dyn Iterator<Item = f64>| {
        let (mut s, mut n) = (0.0, 0usize);
        for v in vals.filter(|&v| v > -1.0) {
            s += v;
            n += 1;
        }
        if n == 0 { -1.0 } else { s / n as f64 }
    };
    let ap = |t: Option<usize>, a: usize, m: usize| {
        let ts: Vec<usize> = t.map_or((0..T).collect(), |t| vec![t]);
        let mut it = ts.into_iter().flat_map(|t| (0..R).flat_map(move |r| (0..nk).map(move |k| (t, r, k))));
        mean(&mut it.by_ref().map(|(t, r, k)| precision[p_idx(t, r, k, a, m)]))
    };
    let ar = |a: usize, m: usize| {
        let mut it = (0..T).flat_map(|t| (0..nk).map(move |k| (t, k)));
        mean(&mut it.by_ref().map(|(t, k)| recall[r_idx(t, k, a, m)]))
    };
    [
        ap(None, 0, 2),
        ap(Some(0), 0, 2),
        ap(Some(5), 0, 2),
        ap(None, 1, 2),
        ap(None, 2, 2),
        ap(None, 3, 2),
        ar(0, 0),
        ar(0, 1),
        ar(0, 2),
        ar(1, 2),
        ar(2, 2),
        ar(3, 2),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_numpy_linspace() {
        let t = iou_thresholds();
        assert_eq!(t[0], 0.5);
        assert_eq!(t[5], 0.75, "COCOeval finds AP75 by equality");
        assert_eq!(t[9], 0.95);
        let r = recall_thresholds();
        assert_eq!((r[0], r[50], r[100]), (0.0, 0.5, 1.0));
    }
}
