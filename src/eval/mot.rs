//! CLEAR MOT and identity metrics with py-motmetrics 1.4.0 semantics
//! (`compare_to_groundtruth(gt, pred, "iou", distth)` followed by `motchallenge_metrics`).
//!
//! Per frame (every frame present in either file, ascending), like `MOTAccumulator.update`:
//! 1. pairs with IoU distance `1 - IoU > distth` are forbidden (NaN);
//! 2. each object whose previous hypothesis is present again with an allowed distance keeps it
//!    (MATCH);
//! 3. the rest are assigned by a maximum-cardinality, minimum-distance assignment; a pair whose
//!    object was last matched to another hypothesis is a SWITCH (plus TRANSFER / ASCEND /
//!    MIGRATE bookkeeping);
//! 4. unmatched objects are MISSes, unmatched hypotheses FPs.
//!
//! Fragmentations count, per object, the transitions from tracked to missed between its first and
//! last tracked frame. IDF1 uses the global one-to-one (object id, hypothesis id) assignment that
//! maximises the number of frames in which the pair is within `distth`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::EvalError;
use super::io::MotRow;
use crate::track::lap::{Assignment, LapSolver};

/// The metrics (names as in py-motmetrics) and the raw counts they derive from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MotMetrics {
    pub idf1: f64,
    pub idp: f64,
    pub idr: f64,
    pub recall: f64,
    pub precision: f64,
    pub num_unique_objects: u64,
    pub mostly_tracked: u64,
    pub partially_tracked: u64,
    pub mostly_lost: u64,
    pub num_false_positives: u64,
    pub num_misses: u64,
    pub num_switches: u64,
    pub num_fragmentations: u64,
    pub mota: f64,
    /// Mean `1 - IoU` of matched pairs (motmetrics convention: lower is better).
    pub motp: f64,
    pub num_frames: u64,
    pub num_matches: u64,
    pub num_transfer: u64,
    pub num_ascend: u64,
    pub num_migrate: u64,
    pub num_detections: u64,
    pub num_objects: u64,
    pub num_predictions: u64,
    pub idtp: u64,
    pub idfp: u64,
    pub idfn: u64,
}

fn quiet_divide(a: f64, b: f64) -> f64 {
    a / b
}

impl MotMetrics {
    fn finish(&mut self, dist_sum: f64) {
        let (o, p) = (self.num_objects as f64, self.num_predictions as f64);
        let det = self.num_detections as f64;
        self.recall = quiet_divide(det, o);
        self.precision = quiet_divide(det, self.num_false_positives as f64 + det);
        self.mota = 1.0 - quiet_divide((self.num_misses + self.num_switches + self.num_false_positives) as f64, o);
        self.motp = quiet_divide(dist_sum, det);
        let tp = self.idtp as f64;
        self.idp = quiet_divide(tp, tp + self.idfp as f64);
        self.idr = quiet_divide(tp, tp + self.idfn as f64);
        self.idf1 = quiet_divide(2.0 * tp, o + p);
    }

    /// Combine per-sequence metrics like motmetrics' `OVERALL` row (counts add up, MOTP is
    /// weighted by the number of detections).
    pub fn overall(parts: &[MotMetrics]) -> MotMetrics {
        let mut m = MotMetrics::default();
        let mut dist_sum = 0.0;
        for p in parts {
            m.num_unique_objects += p.num_unique_objects;
            m.mostly_tracked += p.mostly_tracked;
            m.partially_tracked += p.partially_tracked;
            m.mostly_lost += p.mostly_lost;
            m.num_false_positives += p.num_false_positives;
            m.num_misses += p.num_misses;
            m.num_switches += p.num_switches;
            m.num_fragmentations += p.num_fragmentations;
            m.num_frames += p.num_frames;
            m.num_matches += p.num_matches;
            m.num_transfer += p.num_transfer;
            m.num_ascend += p.num_ascend;
            m.num_migrate += p.num_migrate;
            m.num_detections += p.num_detections;
            m.num_objects += p.num_objects;
            m.num_predictions += p.num_predictions;
            m.idtp += p.idtp;
            m.idfp += p.idfp;
            m.idfn += p.idfn;
            if p.num_detections > 0 {
                dist_sum += p.motp * p.num_detections as f64;
            }
        }
        m.finish(dist_sum);
        m
    }
}

/// The intersection area of two `x, y, w, h` boxes (0 when they do not overlap).
pub(super) fn intersection(a: &MotRow, b: &MotRow) -> f64 {
    let iw = ((a.x + a.w).min(b.x + b.w) - a.x.max(b.x)).max(0.0);
    let ih = ((a.y + a.h).min(b.y + b.h) - a.y.max(b.y)).max(0.0);
    iw * ih
}

/// IoU of two `x, y, w, h` boxes as motmetrics computes it (0 when they do not intersect; areas
/// of negative-size boxes clamped to 0).
fn box_iou(a: &MotRow, b: &MotRow) -> f64 {
    let inter = intersection(a, b);
    if inter == 0.0 {
        return 0.0;
    }
    let ua = a.w.max(0.0) * a.h.max(0.0) + b.w.max(0.0) * b.h.max(0.0) - inter;
    inter / ua
}

pub(super) fn group_by_frame(rows: &[MotRow], what: &str) -> Result<BTreeMap<i64, Vec<MotRow>>, EvalError> {
    let mut m: BTreeMap<i64, Vec<MotRow>> = BTreeMap::new();
    for r in rows {
        let v = m.entry(r.frame).or_default();
        if v.iter().any(|o| o.id == r.id) {
            return Err(EvalError::DuplicateId { what: what.to_string(), frame: r.frame, id: r.id });
        }
        v.push(*r);
    }
    Ok(m)
}

/// Evaluate tracker output `pred` against ground truth `gt` with IoU distance threshold
/// `1 - iou_thresh` (motmetrics' `distth`; `iou_thresh = 0.5` for the MOTChallenge setting).
pub fn evaluate(gt: &[MotRow], pred: &[MotRow], iou_thresh: f64) -> Result<MotMetrics, EvalError> {
    let distth = 1.0 - iou_thresh;
    let gt_f = group_by_frame(gt, "ground truth")?;
    let pr_f = group_by_frame(pred, "prediction")?;
    let mut frames: Vec<i64> = gt_f.keys().chain(pr_f.keys()).copied().collect();
    frames.sort_unstable();
    frames.dedup();

    let mut m = MotMetrics { num_frames: frames.len() as u64, ..Default::default() };
    let mut dist_sum = 0.0f64;
    let mut last_hyp: HashMap<i64, i64> = HashMap::new(); // motmetrics `m`
    let mut res_m: HashMap<i64, i64> = HashMap::new();
    let mut last_match: HashMap<i64, i64> = HashMap::new();
    let mut hyp_history: HashMap<i64, i64> = HashMap::new();
    // Per object: (frames present, frames tracked, fragmentation state).
    #[derive(Default)]
    struct ObjStat {
        present: u64,
        tracked: u64,
        frags: u64,
        seen_tracked: bool,
        /// misses since the last tracked frame (counted once the object is tracked again).
        pending_gap: bool,
    }
    let mut objs: BTreeMap<i64, ObjStat> = BTreeMap::new();
    let mut ocs: HashMap<i64, u64> = HashMap::new();
    let mut hcs: HashMap<i64, u64> = HashMap::new();
    let mut tps: HashMap<(i64, i64), u64> = HashMap::new();

    let mut lap = LapSolver::new();
    let mut asg = Assignment::default();
    let empty: Vec<MotRow> = Vec::new();
    let mut dists: Vec<f64> = Vec::new();
    for f in frames {
        let o = gt_f.get(&f).unwrap_or(&empty);
        let h = pr_f.get(&f).unwrap_or(&empty);
        let (no, nh) = (o.len(), h.len());
        dists.clear();
        dists.resize(no * nh, f64::NAN);
        for (i, a) in o.iter().enumerate() {
            for (j, b) in h.iter().enumerate() {
                let d = 1.0 - box_iou(a, b);
                if d <= distth {
                    dists[i * nh + j] = d;
                    *tps.entry((a.id, b.id)).or_default() += 1;
                }
            }
        }
        for a in o {
            *ocs.entry(a.id).or_default() += 1;
        }
        for b in h {
            *hcs.entry(b.id).or_default() += 1;
        }
        m.num_objects += no as u64;
        m.num_predictions += nh as u64;
        let mut o_done = vec![false; no];
        let mut h_done = vec![false; nh];
        if no > 0 && nh > 0 {
            // 1. Keep previous correspondences that are still valid.
            for i in 0..no {
                let Some(&hprev) = last_hyp.get(&o[i].id) else { continue };
                let Some(j) = (0..nh).find(|&j| !h_done[j] && h[j].id == hprev) else { continue };
                let d = dists[i * nh + j];
                if d.is_finite() {
                    o_done[i] = true;
                    h_done[j] = true;
                    m.num_matches += 1;
                    dist_sum += d;
                    last_match.insert(o[i].id, f);
                    hyp_history.insert(h[j].id, f);
                }
            }
            // 2. Optimal assignment of the rest.
            for i in 0..no {
                for j in 0..nh {
                    if o_done[i] || h_done[j] {
                        dists[i * nh + j] = f64::NAN;
                    }
                }
            }
            lap.solve_max_cardinality(&dists, no, nh, &mut asg);
            for &(i, j) in &asg.matches {
                let d = dists[i * nh + j];
                let (oid, hid) = (o[i].id, h[j].id);
                let is_switch = last_hyp.get(&oid).is_some_and(|&p| p != hid);
                if is_switch && !hyp_history.contains_key(&hid) {
                    m.num_ascend += 1;
                }
                if res_m.get(&hid).is_some_and(|&p| p != oid) {
                    if !last_match.contains_key(&oid) {
                        m.num_migrate += 1;
                    }
                    m.num_transfer += 1;
                }
                hyp_history.insert(hid, f);
                last_match.insert(oid, f);
                if is_switch {
                    m.num_switches += 1;
                } else {
                    m.num_matches += 1;
                }
                dist_sum += d;
                o_done[i] = true;
                h_done[j] = true;
                last_hyp.insert(oid, hid);
                res_m.insert(hid, oid);
            }
        }
        for (i, a) in o.iter().enumerate() {
            let s = objs.entry(a.id).or_default();
            s.present += 1;
            if o_done[i] {
                s.tracked += 1;
                if s.pending_gap {
                    s.frags += 1;
                    s.pending_gap = false;
                }
                s.seen_tracked = true;
            } else {
                m.num_misses += 1;
                if s.seen_tracked {
                    s.pending_gap = true;
                }
            }
        }
        m.num_false_positives += h_done.iter().filter(|d| !**d).count() as u64;
    }
    m.num_detections = m.num_matches + m.num_switches;
    m.num_unique_objects = objs.len() as u64;
    for s in objs.values() {
        m.num_fragmentations += s.frags;
        let ratio = s.tracked as f64 / s.present as f64;
        if ratio >= 0.8 {
            m.mostly_tracked += 1;
        } else if ratio >= 0.2 {
            m.partially_tracked += 1;
        } else {
            m.mostly_lost += 1;
        }
    }

    // Identity metrics: maximum-weight one-to-one (object, hypothesis) assignment on the number of
    // frames each pair is within the threshold.
    let mut oids: Vec<i64> = ocs.keys().copied().collect();
    let mut hids: Vec<i64> = hcs.keys().copied().collect();
    oids.sort_unstable();
    hids.sort_unstable();
    let oidx: HashMap<i64, usize> = oids.iter().enumerate().map(|(i, &o)| (o, i)).collect();
    let hidx: HashMap<i64, usize> = hids.iter().enumerate().map(|(i, &h)| (h, i)).collect();
    let mut cost = vec![0.0f64; oids.len() * hids.len()];
    for (&(o, h), &n) in &tps {
        cost[oidx[&o] * hids.len() + hidx[&h]] = -(n as f64);
    }
    lap.solve_limited(&cost, oids.len(), hids.len(), 0.0, &mut asg);
    let idtp: u64 = asg.matches.iter().map(|&(i, j)| (-cost[i * hids.len() + j]) as u64).sum();
    let total_o: u64 = ocs.values().sum();
    let total_h: u64 = hcs.values().sum();
    m.idfn = total_o - idtp;
    m.idfp = total_h - idtp;
    m.idtp = m.num_objects - m.idfn;
    m.finish(dist_sum);
    Ok(m)
}
