//! The ByteTrack tracker, re-implemented to match Ultralytics 8.4.190's `BYTETracker` step by step:
//!
//! 0. Only with `dedup.enabled` (not in Ultralytics): near-duplicate detections are dropped
//!    ([`super::dedup`]); the rest keep their index in the caller's list. Only the detections
//!    that step 1 does not ignore for their score take part (the same of them survive).
//! 1. Detections with a non-positive width or height are ignored; the rest split into a high set
//!    (`score >= track_high_thresh`) and a low set (`track_low_thresh < score < track_high_thresh`).
//! 2. Confirmed tracked tracks and lost tracks form the pool; their Kalman state is predicted
//!    (with the height velocity zeroed for tracks that are not currently tracked).
//! 3. First association: pool x high detections on `1 - IoU * score`, cost limit `match_thresh`.
//! 4. Second association: the pool's still-unmatched *tracked* tracks x low detections on
//!    `1 - IoU`, limit `second_match_thresh`; tracked tracks left over become lost.
//! 5. Unconfirmed tracks (born last frame) x remaining high detections, limit
//!    `unconfirmed_match_thresh`; those left over are removed.
//! 6. Remaining high detections with `score >= new_track_thresh` start tracks (confirmed at once
//!    on the very first frame, otherwise on their next match).
//! 7. Lost tracks older than `max_time_lost` are removed; tracked/lost duplicates (IoU above
//!    `duplicate_iou`) lose their younger member.
//!
//! Quirks of Ultralytics reproduced on purpose (they change IDs): a lost track removed for age
//! stays in the lost pool (and can be re-found) for one more frame; a track that was ever removed
//! disappears as soon as it is lost again. Unlike Ultralytics, removed tracks are not kept at all
//! (Ultralytics keeps up to 1000 for that bookkeeping; a flag on the track does the same job),
//! and lost tracks age on every frame, including frames without detections.
//!
//! Numerics follow Ultralytics: detection boxes are `f32` and converted to `(x, y, w, h)` and
//! `(cx, cy, a, h)` in `f32` as NumPy does, IoU costs are `f32`, the Kalman filter runs in `f64`.

use crate::mask::Mask;
use crate::types::{BBox, Detection};

use super::dedup::Deduper;
use super::kalman::{self, Cov, Mean, Measurement};
use super::lap::{Assignment, LapSolver};
use super::matching::{SmallMask, fuse_score, iou_f32};
use super::reid;
use super::{Association, ReportBox, TrackedObject, TrackerConfig};
use crate::types::ImageView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Tracked,
    Lost,
    Removed,
}

#[derive(Debug, Clone)]
struct Track {
    track_id: u64,
    mean: Mean,
    cov: Cov,
    state: State,
    is_activated: bool,
    score: f32,
    class_id: u32,
    det_index: usize,
    frame_id: u64,
    start_frame: u64,
    /// Ultralytics keeps a list of removed tracks and drops lost tracks found in it.
    removed_once: bool,
    /// Last matched mask (downscaled) and the box centre it was seen at.
    mask: Option<SmallMask>,
    mask_center: (f64, f64),
    /// Box of the detection matched last (reported with `report_box = "detection"`).
    det_xyxy: [f32; 4],
    /// Appearance (colour histogram moving average) for `[reid]`; empty when unknown.
    appearance: Vec<f32>,
}

impl Track {
    fn xyxy_f32(&self) -> [f32; 4] {
        let b = kalman::mean_to_xyxy(&self.mean);
        [b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32]
    }
}

/// A detection prepared the way Ultralytics prepares it.
#[derive(Debug, Clone, Copy)]
struct Det {
    xyxy: [f32; 4],
    meas: Measurement,
    score: f32,
    class_id: u32,
    index: usize,
}

impl Det {
    fn new(d: &Detection, index: usize) -> Option<Det> {
        let b = d.bbox;
        // Ultralytics: xyxy -> xywh in f32, then (as f64) -> top-left, stored as f32.
        let cx = (b.x1 + b.x2) / 2.0;
        let cy = (b.y1 + b.y2) / 2.0;
        let w = b.x2 - b.x1;
        let h = b.y2 - b.y1;
        if !(w > 0.0 && h > 0.0 && cx.is_finite() && cy.is_finite() && w.is_finite() && h.is_finite()) {
            return None;
        }
        let tlx = (cx as f64 - w as f64 / 2.0) as f32;
        let tly = (cy as f64 - h as f64 / 2.0) as f32;
        let xyxy = [tlx, tly, tlx + w, tly + h];
        // tlwh -> xyah in f32.
        let mcx = tlx + w / 2.0;
        let mcy = tly + h / 2.0;
        let a = w / h;
        let meas = kalman::xyah(mcx as f64, mcy as f64, a as f64, h as f64);
        Some(Det { xyxy, meas, score: d.score, class_id: d.class_id, index })
    }
}

/// The frame as `[reid]` sees it: the caller's detections (indexed by `Det::index`) and the
/// image (`None` without one or with `[reid]` disabled).
#[derive(Clone, Copy)]
struct Look<'a> {
    dets: &'a [Detection],
    image: Option<ImageView<'a>>,
}

/// Converts an `f32` parameter to the `f64` its decimal spelling denotes (0.8f32 -> 0.8), as the
/// Python tracker compares `float64` costs with the YAML's decimal values.
fn decimal_f64(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(x as f64)
}

/// ByteTrack multi-object tracker. See the module documentation.
#[derive(Debug, Clone)]
pub struct ByteTracker {
    cfg: TrackerConfig,
    max_time_lost: u64,
    match_limit: f64,
    second_limit: f64,
    unconfirmed_limit: f64,
    frame_id: u64,
    next_id: u64,
    slots: Vec<Option<Track>>,
    free: Vec<usize>,
    tracked: Vec<usize>,
    lost: Vec<usize>,
    // per-frame scratch
    lap: LapSolver,
    assignment: Assignment,
    cost: Vec<f32>,
    cost64: Vec<f64>,
    high: Vec<Det>,
    low: Vec<Det>,
    masks: Vec<Option<Mask>>,
    small: Vec<SmallMask>,
    small_state: Vec<u8>,
    pool: Vec<usize>,
    unconfirmed: Vec<usize>,
    activated: Vec<usize>,
    refind: Vec<usize>,
    lost_new: Vec<usize>,
    removed: Vec<usize>,
    boxes_a: Vec<[f32; 4]>,
    boxes_b: Vec<[f32; 4]>,
    order: Vec<usize>,
    mark: Vec<bool>,
    scores: Vec<f32>,
    buf_u_det: Vec<usize>,
    buf_r_tracked: Vec<usize>,
    buf_rest: Vec<Det>,
    buf_u_rest: Vec<usize>,
    deduper: Deduper,
    kept: Vec<usize>,
    /// `[reid]`: per-detection colour histograms of this frame, computed when first needed
    /// (`feat_state[i]`: 0 not yet computed, 1 valid, 2 none).
    feats: Vec<Vec<f32>>,
    feat_state: Vec<u8>,
    /// `[reid]`: tracks confirmed for the first time this frame, waiting for their ID.
    first_confirmed: Vec<usize>,
    /// Test reference (see [`Self::eager`]); false outside tests. Same results either way.
    eager: bool,
}

impl ByteTracker {
    /// A tracker with the given configuration (validate it first with [`TrackerConfig::validate`];
    /// out-of-range values are used as given).
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            max_time_lost: cfg.max_time_lost(),
            match_limit: decimal_f64(cfg.match_thresh),
            second_limit: decimal_f64(cfg.second_match_thresh),
            unconfirmed_limit: decimal_f64(cfg.unconfirmed_match_thresh),
            cfg,
            frame_id: 0,
            next_id: 1,
            slots: Vec::new(),
            free: Vec::new(),
            tracked: Vec::new(),
            lost: Vec::new(),
            lap: LapSolver::new(),
            assignment: Assignment::default(),
            cost: Vec::new(),
            cost64: Vec::new(),
            high: Vec::new(),
            low: Vec::new(),
            masks: Vec::new(),
            small: Vec::new(),
            small_state: Vec::new(),
            pool: Vec::new(),
            unconfirmed: Vec::new(),
            activated: Vec::new(),
            refind: Vec::new(),
            lost_new: Vec::new(),
            removed: Vec::new(),
            boxes_a: Vec::new(),
            boxes_b: Vec::new(),
            order: Vec::new(),
            mark: Vec::new(),
            scores: Vec::new(),
            buf_u_det: Vec::new(),
            buf_r_tracked: Vec::new(),
            buf_rest: Vec::new(),
            buf_u_rest: Vec::new(),
            deduper: Deduper::new(),
            kept: Vec::new(),
            feats: Vec::new(),
            feat_state: Vec::new(),
            first_confirmed: Vec::new(),
            eager: false,
        }
    }

    /// A tracker that suppresses duplicates among all detections and computes every high
    /// detection's `[reid]` histogram at the start of each frame, as the tracker did before it
    /// skipped the work whose result is never used: the reference of the equivalence tests.
    #[cfg(test)]
    fn eager(cfg: TrackerConfig) -> Self {
        Self { eager: true, ..Self::new(cfg) }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Number of frames processed so far.
    pub fn frame_count(&self) -> u64 {
        self.frame_id
    }

    /// Tracks currently held (tracked, unconfirmed and lost); bounded by the live objects.
    pub fn num_tracks(&self) -> usize {
        self.tracked.len() + self.lost.len()
    }

    /// Number of lost tracks kept for re-identification.
    pub fn num_lost(&self) -> usize {
        self.lost.len()
    }

    /// Forget all tracks and restart IDs at 1.
    pub fn reset(&mut self) {
        let cfg = self.cfg.clone();
        *self = Self::new(cfg);
    }

    fn t(&self, s: usize) -> &Track {
        self.slots[s].as_ref().expect("live track slot")
    }

    fn tm(&mut self, s: usize) -> &mut Track {
        self.slots[s].as_mut().expect("live track slot")
    }

    fn mask_mode(&self) -> bool {
        self.cfg.association != Association::Box
    }

    /// Process one frame's detections; returns the confirmed tracked objects, previously tracked
    /// ones first, then those started or re-found in this frame.
    pub fn update(&mut self, dets: &[Detection]) -> Vec<TrackedObject> {
        let mut out = Vec::new();
        self.update_into(dets, &mut out);
        out
    }

    /// [`Self::update`] writing into a reused vector.
    pub fn update_into(&mut self, dets: &[Detection], out: &mut Vec<TrackedObject>) {
        self.update_with_image(dets, None, out);
    }

    /// [`Self::update_into`] with the frame the detections came from, which `[reid]` needs to
    /// see the objects' colours (without it, or with `[reid]` disabled, this is `update_into`).
    pub fn update_with_image(
        &mut self,
        dets: &[Detection],
        image: Option<ImageView<'_>>,
        out: &mut Vec<TrackedObject>,
    ) {
        self.frame_id += 1;
        let frame = self.frame_id;
        self.activated.clear();
        self.refind.clear();
        self.lost_new.clear();
        self.removed.clear();

        // 1. Split detections.
        let high_t = self.cfg.track_high_thresh;
        let low_t = self.cfg.track_low_thresh;
        self.high.clear();
        self.low.clear();
        // 0. Duplicate suppression: `kept` lists the surviving indices into `dets`, so every
        // `Det` (and each output's `det_index`) keeps the caller's original index. Only the
        // detections that the split below does not discard for their score take part: they are
        // the highest-scoring ones (a prefix of the suppression's order, NaN scores included), and
        // a detection is only ever suppressed by higher-scoring ones, so the same of them survive
        // as when all take part, and the masks of the others are never rendered.
        if self.eager {
            self.deduper.run(dets, &self.cfg.dedup, &mut self.kept);
        } else {
            self.deduper.run_where(dets, &self.cfg.dedup, &mut self.kept, |d| !discarded(d.score, high_t, low_t));
        }
        for &i in &self.kept {
            let Some(det) = Det::new(&dets[i], i) else { continue };
            if det.score >= high_t {
                self.high.push(det);
            } else if det.score > low_t {
                self.low.push(det);
            }
        }
        self.first_confirmed.clear();
        // `[reid]` histograms: a detection's is needed only when it updates or starts a track
        // (`store_appearance`), so each is computed then, at most once.
        let look = Look { dets, image: image.filter(|_| self.cfg.reid.enabled) };
        self.feat_state.clear();
        if look.image.is_some() {
            self.feat_state.resize(dets.len(), 0);
            if self.feats.len() < dets.len() {
                self.feats.resize_with(dets.len(), Vec::new);
            }
            if self.eager {
                // The reference: every high detection's histogram now, none for the others.
                self.feat_state.fill(2);
                if let Some(img) = &look.image {
                    for d in &self.high {
                        if let Some(m) = &dets[d.index].mask {
                            let ok = reid::histogram(img, m.roi(), &mut self.feats[d.index]);
                            self.feat_state[d.index] = if ok { 1 } else { 2 };
                        }
                    }
                }
            }
        }
        self.masks.clear();
        if self.mask_mode() {
            self.masks.extend(dets.iter().map(|d| d.mask.clone()));
            self.small_state.clear();
            self.small_state.resize(dets.len(), 0);
            if self.small.len() < dets.len() {
                self.small.resize_with(dets.len(), SmallMask::default);
            }
        }

        // 2. Pool and prediction.
        self.unconfirmed.clear();
        self.pool.clear();
        for &s in &self.tracked {
            if self.t(s).is_activated {
                self.pool.push(s);
            } else {
                self.unconfirmed.push(s);
            }
        }
        self.pool.extend_from_slice(&self.lost);
        for k in 0..self.pool.len() {
            let s = self.pool[k];
            let t = self.tm(s);
            if t.state != State::Tracked {
                t.mean[7] = 0.0;
            }
            kalman::predict(&mut t.mean, &mut t.cov);
        }

        // 3. First association: pool x high.
        let pool = std::mem::take(&mut self.pool);
        let high = std::mem::take(&mut self.high);
        self.associate(&pool, &high, self.cfg.fuse_score, self.match_limit);
        let mut u_det = std::mem::take(&mut self.buf_u_det);
        u_det.clear();
        u_det.extend_from_slice(&self.assignment.unmatched_cols);
        let mut r_tracked = std::mem::take(&mut self.buf_r_tracked);
        r_tracked.clear();
        for &i in &self.assignment.unmatched_rows {
            // Step 4 takes the unmatched pool tracks that are in the Tracked state.
            if self.t(pool[i]).state == State::Tracked {
                r_tracked.push(pool[i]);
            }
        }
        let matches = std::mem::take(&mut self.assignment.matches);
        for &(ti, di) in &matches {
            let s = pool[ti];
            if self.t(s).state == State::Tracked {
                self.apply_update(s, &high[di], frame, &look);
                self.activated.push(s);
            } else {
                self.apply_update(s, &high[di], frame, &look);
                self.refind.push(s);
            }
        }
        self.assignment.matches = matches;

        // 4. Second association: remaining tracked tracks x low detections (1 - IoU only).
        let low = std::mem::take(&mut self.low);
        let lost_from = self.lost_new.len();
        if !r_tracked.is_empty() && !low.is_empty() {
            self.associate(&r_tracked, &low, false, self.second_limit);
            let matches = std::mem::take(&mut self.assignment.matches);
            for &(ti, di) in &matches {
                let s = r_tracked[ti];
                self.apply_update(s, &low[di], frame, &look);
                self.activated.push(s);
            }
            self.assignment.matches = matches;
            self.lost_new.extend(self.assignment.unmatched_rows.iter().map(|&i| r_tracked[i]));
        } else {
            self.lost_new.extend_from_slice(&r_tracked);
        }
        for k in lost_from..self.lost_new.len() {
            let s = self.lost_new[k];
            self.tm(s).state = State::Lost;
        }

        // 5. Unconfirmed tracks x remaining high detections.
        let mut rest = std::mem::take(&mut self.buf_rest);
        rest.clear();
        rest.extend(u_det.iter().map(|&i| high[i]));
        let unconfirmed = std::mem::take(&mut self.unconfirmed);
        let mut u_rest = std::mem::take(&mut self.buf_u_rest);
        u_rest.clear();
        if unconfirmed.is_empty() {
            u_rest.extend(0..rest.len());
        } else {
            self.associate(&unconfirmed, &rest, self.cfg.fuse_score, self.unconfirmed_limit);
            let matches = std::mem::take(&mut self.assignment.matches);
            for &(ti, di) in &matches {
                let s = unconfirmed[ti];
                self.apply_update(s, &rest[di], frame, &look);
                self.activated.push(s);
            }
            self.assignment.matches = matches;
            for &i in &self.assignment.unmatched_rows {
                let s = unconfirmed[i];
                self.slots[s].as_mut().expect("live").state = State::Removed;
                self.removed.push(s);
            }
            u_rest.extend_from_slice(&self.assignment.unmatched_cols);
        }

        // 5b. Tracks confirmed for the first time take a lost track's ID when they look alike.
        self.assign_first_ids(frame);

        // 6. New tracks.
        for &i in &u_rest {
            let d = rest[i];
            if d.score < self.cfg.new_track_thresh {
                continue;
            }
            let s = self.start_track(&d, frame, &look);
            self.activated.push(s);
        }

        // 7. Age out lost tracks.
        let max_lost = self.max_time_lost;
        for k in 0..self.lost.len() {
            let s = self.lost[k];
            let t = self.tm(s);
            if frame.saturating_sub(t.frame_id) > max_lost {
                t.state = State::Removed;
                self.removed.push(s);
            }
        }

        self.merge();
        self.buf_u_det = u_det;
        self.buf_r_tracked = r_tracked;
        self.buf_rest = rest;
        self.buf_u_rest = u_rest;
        self.pool = pool;
        self.high = high;
        self.low = low;
        self.unconfirmed = unconfirmed;
        self.masks.clear();

        out.clear();
        for &s in &self.tracked {
            let t = self.t(s);
            if t.is_activated {
                let b = match self.cfg.report_box {
                    ReportBox::Kalman => t.xyxy_f32(),
                    ReportBox::Detection => t.det_xyxy,
                };
                out.push(TrackedObject {
                    track_id: t.track_id,
                    bbox: BBox::new(b[0], b[1], b[2], b[3]),
                    score: t.score,
                    class_id: t.class_id,
                    det_index: t.det_index,
                });
            }
        }
    }

    fn alloc(&mut self, t: Track) -> usize {
        match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(t);
                s
            }
            None => {
                self.slots.push(Some(t));
                self.slots.len() - 1
            }
        }
    }

    fn start_track(&mut self, d: &Det, frame: u64, look: &Look<'_>) -> usize {
        let (mean, cov) = kalman::initiate(&d.meas);
        let is_activated = frame == 1;
        let track_id = if !self.cfg.lazy_ids || is_activated {
            let id = self.next_id;
            self.next_id += 1;
            id
        } else {
            0
        };
        let mut t = Track {
            track_id,
            mean,
            cov,
            state: State::Tracked,
            is_activated,
            score: d.score,
            class_id: d.class_id,
            det_index: d.index,
            frame_id: frame,
            start_frame: frame,
            removed_once: false,
            mask: None,
            mask_center: (0.0, 0.0),
            det_xyxy: d.xyxy,
            appearance: Vec::new(),
        };
        self.store_mask(&mut t, d);
        self.store_appearance(&mut t, d, look);
        self.alloc(t)
    }

    /// Ultralytics' `update` / `re_activate` (identical apart from bookkeeping we do not need).
    fn apply_update(&mut self, s: usize, d: &Det, frame: u64, look: &Look<'_>) {
        let mut t = self.slots[s].take().expect("live track slot");
        kalman::update(&mut t.mean, &mut t.cov, &d.meas);
        t.state = State::Tracked;
        let first = !t.is_activated;
        if !t.is_activated {
            t.is_activated = true;
        }
        if first && self.cfg.reid.enabled {
            // The ID is given in step 5b, after a look at the lost tracks.
            self.first_confirmed.push(s);
        } else if t.track_id == 0 {
            t.track_id = self.next_id;
            self.next_id += 1;
        }
        t.frame_id = frame;
        t.score = d.score;
        t.class_id = d.class_id;
        t.det_index = d.index;
        t.det_xyxy = d.xyxy;
        self.store_mask(&mut t, d);
        self.store_appearance(&mut t, d, look);
        self.slots[s] = Some(t);
    }

    /// Make the `[reid]` histogram of detection `d` available in `feats[d.index]`; false when it
    /// has none: no image (or `[reid]` off), not a high detection (only confident matches feed a
    /// track's appearance), no mask, or no sampled pixel under it.
    fn appearance_of(&mut self, d: &Det, look: &Look<'_>) -> bool {
        let Some(img) = &look.image else { return false };
        match self.feat_state.get(d.index) {
            Some(1) => true,
            Some(2) | None => false,
            _ => {
                let ok = d.score >= self.cfg.track_high_thresh
                    && look.dets[d.index]
                        .mask
                        .as_ref()
                        .is_some_and(|m| reid::histogram(img, m.roi(), &mut self.feats[d.index]));
                self.feat_state[d.index] = if ok { 1 } else { 2 };
                ok
            }
        }
    }

    fn store_appearance(&mut self, t: &mut Track, d: &Det, look: &Look<'_>) {
        if !self.appearance_of(d, look) {
            return;
        }
        let f = &self.feats[d.index];
        if t.appearance.is_empty() {
            t.appearance.extend_from_slice(f);
        } else {
            reid::blend(&mut t.appearance, f, self.cfg.reid.ema);
        }
    }

    /// Step 5b (`[reid]`): each track confirmed for the first time this frame either continues
    /// the most similar lost track (appearance above `min_similarity`, within the motion gate),
    /// which is then retired, or draws a new ID. Optimal assignment on `1 - similarity`.
    fn assign_first_ids(&mut self, frame: u64) {
        if self.first_confirmed.is_empty() {
            return;
        }
        let fresh = std::mem::take(&mut self.first_confirmed);
        let lost: Vec<usize> = self
            .lost
            .iter()
            .copied()
            .filter(|&s| {
                let t = self.t(s);
                t.state == State::Lost && !t.removed_once && !t.appearance.is_empty() && t.track_id != 0
            })
            .collect();
        let cfg = self.cfg.reid;
        let (n, m) = (fresh.len(), lost.len());
        let mut cost = vec![1.0f64; n * m];
        for (i, &a) in fresh.iter().enumerate() {
            let ta = self.t(a);
            if ta.appearance.is_empty() {
                continue;
            }
            let ca = center(&ta.det_xyxy);
            let mut sims: Vec<(usize, f32)> = Vec::new();
            for (j, &b) in lost.iter().enumerate() {
                let tb = self.t(b);
                let cb = center(&tb.det_xyxy);
                let diag = diagonal(&tb.det_xyxy);
                let gone = frame.saturating_sub(tb.frame_id) as f64;
                let reach = cfg.gate as f64 * diag * (1.0 + gone / cfg.gate_frames as f64);
                if (ca.0 - cb.0).hypot(ca.1 - cb.1) > reach {
                    continue;
                }
                sims.push((j, reid::similarity(&ta.appearance, &tb.appearance)));
            }
            sims.sort_by(|p, q| q.1.total_cmp(&p.1));
            let second = sims.get(1).map_or(0.0, |x| x.1);
            for (k, &(j, sim)) in sims.iter().enumerate() {
                let margin_ok = k > 0 || sim - second >= cfg.margin;
                if sim >= cfg.min_similarity && margin_ok {
                    cost[i * m + j] = 1.0 - sim as f64;
                }
            }
        }
        let mut a = std::mem::take(&mut self.assignment);
        if m > 0 {
            self.lap.solve_limited(&cost, n, m, 1.0 - cfg.min_similarity as f64 + 1e-9, &mut a);
        } else {
            a.matches.clear();
        }
        let mut taken = vec![None; n];
        for &(i, j) in &a.matches {
            taken[i] = Some(lost[j]);
        }
        self.assignment = a;
        for (i, &s) in fresh.iter().enumerate() {
            let id = match taken[i] {
                Some(old) => {
                    let o = self.tm(old);
                    o.state = State::Removed;
                    o.removed_once = true;
                    let id = o.track_id;
                    let appearance = std::mem::take(&mut o.appearance);
                    let start = o.start_frame;
                    let t = self.tm(s);
                    // Continue the old track: its appearance history and its age (for the
                    // tracked/lost duplicate rule) carry over.
                    reid::blend(&mut t.appearance, &appearance, 0.5);
                    t.start_frame = start;
                    id
                }
                None if self.t(s).track_id != 0 => continue,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    id
                }
            };
            self.tm(s).track_id = id;
        }
        self.first_confirmed = fresh;
    }

    fn store_mask(&mut self, t: &mut Track, d: &Det) {
        if !self.mask_mode() {
            return;
        }
        if self.ensure_small(d.index) {
            let src = &self.small[d.index];
            match &mut t.mask {
                Some(m) => {
                    m.roi.clone_from(&src.roi);
                    m.area = src.area;
                }
                None => t.mask = Some(src.clone()),
            }
            t.mask_center = (d.meas[0], d.meas[1]);
        } else {
            t.mask = None;
        }
    }

    /// Make the downscaled mask of detection `i` available; false when it has none.
    fn ensure_small(&mut self, i: usize) -> bool {
        match self.small_state.get(i) {
            Some(1) => true,
            Some(2) | None => false,
            _ => {
                let ok = match self.masks.get(i).and_then(|m| m.as_ref()) {
                    Some(m) => {
                        self.small[i].downscale_from(m.roi(), self.cfg.mask_downscale);
                        true
                    }
                    None => false,
                };
                self.small_state[i] = if ok { 1 } else { 2 };
                ok
            }
        }
    }

    /// Build the cost matrix `tracks x dets` and solve it into `self.assignment`.
    fn associate(&mut self, tracks: &[usize], dets: &[Det], fuse: bool, limit: f64) {
        self.boxes_a.clear();
        for &s in tracks {
            let b = self.t(s).xyxy_f32();
            self.boxes_a.push(b);
        }
        self.boxes_b.clear();
        self.boxes_b.extend(dets.iter().map(|d| d.xyxy));
        let (n, m) = (tracks.len(), dets.len());
        self.cost.clear();
        self.cost.resize(n * m, 1.0);
        let mask_mode = self.mask_mode();
        // Only pairs whose boxes overlap can have a cost below 1 (IoU 0 gives exactly 1, fused
        // or not): sweep the detections sorted by x1 over each track's x-range.
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(0..m);
        order.sort_unstable_by(|&p, &q| self.boxes_b[p][0].total_cmp(&self.boxes_b[q][0]));
        let max_w = self.boxes_b.iter().map(|b| b[2] - b[0]).fold(0.0f32, f32::max);
        for (i, &track) in tracks.iter().enumerate() {
            let a = self.boxes_a[i];
            let lo_x = a[0] - max_w - 1.0;
            let start = order.partition_point(|&j| self.boxes_b[j][0] <= lo_x);
            for &j in &order[start..] {
                let b = self.boxes_b[j];
                if b[0] >= a[2] {
                    break;
                }
                let iou = iou_f32(&a, &b);
                let sim = if mask_mode && iou > 0.0 { self.mask_similarity(track, &dets[j], iou) } else { iou };
                self.cost[i * m + j] = 1.0 - sim;
            }
        }
        self.order = order;
        if fuse {
            let mut scores = std::mem::take(&mut self.scores);
            scores.clear();
            scores.extend(dets.iter().map(|d| d.score));
            fuse_score(&mut self.cost, &scores);
            self.scores = scores;
        }
        self.cost64.clear();
        self.cost64.extend(self.cost.iter().map(|&c| c as f64));
        let mut a = std::mem::take(&mut self.assignment);
        self.lap.solve_limited(&self.cost64, n, m, limit, &mut a);
        self.assignment = a;
    }

    fn mask_similarity(&mut self, s: usize, d: &Det, box_iou: f32) -> f32 {
        if self.t(s).mask.is_none() || !self.ensure_small(d.index) {
            return box_iou;
        }
        let f = self.cfg.mask_downscale as f64;
        let t = self.t(s);
        let tm = t.mask.as_ref().expect("checked");
        let dx = ((t.mean[0] - t.mask_center.0) / f).round() as i32;
        let dy = ((t.mean[1] - t.mask_center.1) / f).round() as i32;
        let miou = self.small[d.index].iou_shifted(tm, dx, dy);
        match self.cfg.association {
            Association::Mask => miou,
            Association::Fused => self.cfg.mask_weight * miou + (1.0 - self.cfg.mask_weight) * box_iou,
            Association::Box => box_iou,
        }
    }

    /// End-of-frame bookkeeping, in Ultralytics' order.
    fn merge(&mut self) {
        let mut tracked = std::mem::take(&mut self.tracked);
        tracked.retain(|&s| self.t(s).state == State::Tracked);
        // Newly started tracks (the other activated ones are already in `tracked`), then re-found.
        let mut mark = std::mem::take(&mut self.mark);
        mark.clear();
        mark.resize(self.slots.len(), false);
        for &s in &tracked {
            mark[s] = true;
        }
        for &s in self.activated.iter().chain(self.refind.iter()) {
            if !mark[s] {
                mark[s] = true;
                tracked.push(s);
            }
        }
        let mut lost = std::mem::take(&mut self.lost);
        lost.retain(|&s| !mark[s]);
        lost.extend_from_slice(&self.lost_new);
        lost.retain(|&s| !self.t(s).removed_once);

        // Remove duplicates between tracked and lost (the shorter-lived one goes).
        let mut drop_a = vec![false; tracked.len()];
        let mut drop_b = vec![false; lost.len()];
        let thresh = 1.0 - self.cfg.duplicate_iou;
        if !tracked.is_empty() && !lost.is_empty() {
            for (p, &sa) in tracked.iter().enumerate() {
                let ta = self.t(sa);
                let ba = ta.xyxy_f32();
                for (q, &sb) in lost.iter().enumerate() {
                    let tb = self.t(sb);
                    let dist = 1.0 - iou_f32(&ba, &tb.xyxy_f32());
                    if dist < thresh {
                        let timep = ta.frame_id - ta.start_frame;
                        let timeq = tb.frame_id - tb.start_frame;
                        if timep > timeq {
                            drop_b[q] = true;
                        } else {
                            drop_a[p] = true;
                        }
                    }
                }
            }
        }
        let mut k = 0;
        tracked.retain(|_| {
            k += 1;
            !drop_a[k - 1]
        });
        k = 0;
        lost.retain(|_| {
            k += 1;
            !drop_b[k - 1]
        });
        for k in 0..self.removed.len() {
            let s = self.removed[k];
            self.tm(s).removed_once = true;
        }
        // Free every slot that is in neither list.
        mark.iter_mut().for_each(|m| *m = false);
        for &s in tracked.iter().chain(lost.iter()) {
            mark[s] = true;
        }
        for (s, l) in mark.iter().enumerate() {
            if !l && self.slots[s].is_some() {
                self.slots[s] = None;
                self.free.push(s);
            }
        }
        self.mark = mark;
        self.tracked = tracked;
        self.lost = lost;
    }
}

/// Whether step 1 ignores a detection of this score: neither high (`score >= high_t`) nor low
/// (`score > low_t`). Written as the negation of what it keeps so that a NaN score (ignored by
/// step 1, but first in the suppression's `total_cmp` order) counts as not discarded and so still
/// takes part in duplicate suppression.
fn discarded(score: f32, high_t: f32, low_t: f32) -> bool {
    score < high_t && score <= low_t
}

fn center(b: &[f32; 4]) -> (f64, f64) {
    ((b[0] as f64 + b[2] as f64) / 2.0, (b[1] as f64 + b[3] as f64) / 2.0)
}

fn diagonal(b: &[f32; 4]) -> f64 {
    ((b[2] - b[0]) as f64).hypot((b[3] - b[1]) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{PixelRect, RoiBitmap};
    use crate::track::ReidConfig;
    use crate::types::PixelFormat;

    const W: u32 = 400;
    const H: u32 = 100;

    /// A frame with a `colour` square of side 20 at `x` (and a grey background), and its detection.
    fn scene(x: u32, colour: [u8; 3]) -> (Vec<u8>, Detection) {
        let mut img = vec![90u8; (W * H * 3) as usize];
        for y in 40..60 {
            for xx in x..x + 20 {
                let i = ((y * W + xx) * 3) as usize;
                img[i..i + 3].copy_from_slice(&colour);
            }
        }
        let rect = PixelRect::new(x, 40, 20, 20);
        let mask = Mask::from_roi(RoiBitmap { img_w: W, img_h: H, rect, data: vec![1; 400] });
        let det = Detection {
            bbox: BBox::new(x as f32, 40.0, (x + 20) as f32, 60.0),
            score: 0.9,
            class_id: 0,
            mask: Some(mask),
        };
        (img, det)
    }

    /// An object seen for 10 frames moving right, gone for 40 frames, then seen again 100 px
    /// further on (far beyond the Kalman box's reach: no IoU with its prediction) in `colour`.
    /// Returns the IDs before and after the gap.
    fn exit_and_return(reid: bool, colour: [u8; 3]) -> (Vec<u64>, Vec<u64>) {
        let cfg = TrackerConfig {
            lazy_ids: true,
            track_buffer: 90,
            reid: ReidConfig { enabled: reid, ..ReidConfig::default() },
            ..TrackerConfig::default()
        };
        let mut tr = ByteTracker::new(cfg);
        let mut out = Vec::new();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for f in 0..10u32 {
            let (img, det) = scene(20 + 2 * f, [220, 30, 30]);
            let view = ImageView::packed(W, H, PixelFormat::Rgb8, &img).unwrap();
            tr.update_with_image(&[det], Some(view), &mut out);
            before.extend(out.iter().map(|t| t.track_id));
        }
        for _ in 0..40 {
            tr.update_with_image(&[], None, &mut out);
        }
        for f in 0..5u32 {
            let (img, det) = scene(140 + 2 * f, colour);
            let view = ImageView::packed(W, H, PixelFormat::Rgb8, &img).unwrap();
            tr.update_with_image(&[det], Some(view), &mut out);
            after.extend(out.iter().map(|t| t.track_id));
        }
        (before, after)
    }

    #[test]
    fn reid_continues_the_lost_track_of_a_returning_object() {
        let (before, after) = exit_and_return(true, [220, 30, 30]);
        assert_eq!(before, vec![1; 10]);
        // Born on the first frame back, confirmed on the second: the lost track's ID.
        assert_eq!(after, vec![1; 4]);
    }

    #[test]
    fn without_reid_or_with_another_look_a_returning_object_is_new() {
        let (_, after) = exit_and_return(false, [220, 30, 30]);
        assert_eq!(after, vec![2; 4]);
        let (_, after) = exit_and_return(true, [30, 30, 220]);
        assert_eq!(after, vec![2; 4]);
    }

    #[test]
    fn reid_respects_the_motion_gate() {
        // 10 frames at 20..38, lost 40 frames, back at 140: 2 diagonals (56 px) x (1 + 40/25)
        // reach 147 px; a gate of 0.5 diagonal (37 px) does not reach.
        let cfg = TrackerConfig {
            lazy_ids: true,
            track_buffer: 90,
            reid: ReidConfig { enabled: true, gate: 0.5, ..ReidConfig::default() },
            ..TrackerConfig::default()
        };
        let mut tr = ByteTracker::new(cfg);
        let mut out = Vec::new();
        let run = |x: u32, tr: &mut ByteTracker, out: &mut Vec<TrackedObject>| {
            let (img, det) = scene(x, [220, 30, 30]);
            let view = ImageView::packed(W, H, PixelFormat::Rgb8, &img).unwrap();
            tr.update_with_image(&[det], Some(view), out);
        };
        for f in 0..10u32 {
            run(20 + 2 * f, &mut tr, &mut out);
        }
        for _ in 0..40 {
            tr.update_with_image(&[], None, &mut out);
        }
        run(140, &mut tr, &mut out);
        run(142, &mut tr, &mut out);
        assert_eq!(out.iter().map(|t| t.track_id).collect::<Vec<_>>(), vec![2]);
    }

    /// A mask rendered on first use that counts its renders (the lazy masks of the pipeline).
    #[derive(Debug)]
    struct Counted {
        roi: RoiBitmap,
        renders: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl crate::mask::MaskSource for Counted {
        fn image_size(&self) -> (u32, u32) {
            (self.roi.img_w, self.roi.img_h)
        }
        fn render_roi(&self) -> RoiBitmap {
            self.renders.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.roi.clone()
        }
    }

    /// One detection of a busy frame before its mask is wrapped: box, score and mask pixels
    /// (`None`: no mask).
    struct Spec {
        bbox: BBox,
        score: f32,
        roi: Option<RoiBitmap>,
    }

    /// A moving object of a busy sequence.
    struct Obj {
        c: (f32, f32),
        v: (f32, f32),
        r: (f32, f32),
        colour: [u8; 3],
        score: f32,
        /// Frames `[gap.0, gap.1)` it is out of view (to be re-identified after).
        gap: (u32, u32),
    }

    /// Filled ellipse `(c, r)` as a mask of a `bw x bh` image (`None` when off the image).
    fn ellipse(c: (f32, f32), r: (f32, f32), bw: u32, bh: u32) -> Option<RoiBitmap> {
        let rect = PixelRect::from_box_clamped(c.0 - r.0, c.1 - r.1, c.0 + r.0, c.1 + r.1, bw, bh);
        let mut data = vec![0u8; rect.area() as usize];
        for y in 0..rect.h {
            for x in 0..rect.w {
                let dx = ((rect.x + x) as f32 + 0.5 - c.0) / r.0;
                let dy = ((rect.y + y) as f32 + 0.5 - c.1) / r.1;
                data[(y * rect.w + x) as usize] = (dx * dx + dy * dy <= 1.0) as u8;
            }
        }
        (!rect.is_empty()).then_some(RoiBitmap { img_w: bw, img_h: bh, rect, data })
    }

    /// A busy sequence of `frames` frames of `bw x bh`: `n_obj` coloured objects moving (some
    /// leave the view for a while and come back), each detected most of the time with a drifting
    /// score, often together with a part or a near copy of itself (a duplicate to suppress, with
    /// a higher or lower score, sometimes NaN); clutter up to `n` detections per frame with scores
    /// over the whole range (ties, NaN, and many below `track_low_thresh`); some detections
    /// without a mask, with an empty one or with a degenerate box. Returns per frame the image
    /// (RGB) and the detections.
    fn busy_sequence(seed: u64, n: usize, n_obj: usize, frames: u32, bw: u32, bh: u32) -> Vec<(Vec<u8>, Vec<Spec>)> {
        let mut rng = crate::test_rng::Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut f01 = move || (rng.next() >> 40) as f32 / (1u64 << 24) as f32;
        let mut objs: Vec<Obj> = (0..n_obj)
            .map(|_| {
                let gap_start = (f01() * frames as f32 * 2.0) as u32;
                Obj {
                    c: (f01() * bw as f32, f01() * bh as f32),
                    v: (4.0 * f01() - 2.0, 4.0 * f01() - 2.0),
                    r: (6.0 + f01() * bw as f32 / 14.0, 6.0 + f01() * bh as f32 / 10.0),
                    colour: [(f01() * 255.0) as u8, (f01() * 255.0) as u8, (f01() * 255.0) as u8],
                    score: 0.2 + 0.8 * f01(),
                    gap: (gap_start, gap_start + 3 + (f01() * 25.0) as u32),
                }
            })
            .collect();
        let mut seq = Vec::new();
        for f in 0..frames {
            let mut img: Vec<u8> = (0..bw * bh * 3).map(|_| 60 + (f01() * 40.0) as u8).collect();
            let mut dets = Vec::new();
            for o in &mut objs {
                o.c.0 += o.v.0;
                o.c.1 += o.v.1;
                o.score = (o.score + 0.1 * (f01() - 0.5)).clamp(0.05, 1.0);
                if (o.gap.0..o.gap.1).contains(&f) {
                    continue;
                }
                let Some(roi) = ellipse(o.c, o.r, bw, bh) else { continue };
                for y in roi.rect.y..roi.rect.bottom() {
                    for x in roi.rect.x..roi.rect.right() {
                        if roi.get(x, y) {
                            let i = ((y * bw + x) * 3) as usize;
                            for (k, &c) in o.colour.iter().enumerate() {
                                img[i + k] = c.saturating_add((f01() * 12.0) as u8);
                            }
                        }
                    }
                }
                if f01() < 0.1 {
                    continue; // missed
                }
                let jit = |v: f32, u: f32| v + 2.0 * (u - 0.5);
                let bbox = BBox::new(
                    jit(o.c.0 - o.r.0, f01()),
                    jit(o.c.1 - o.r.1, f01()),
                    jit(o.c.0 + o.r.0, f01()),
                    jit(o.c.1 + o.r.1, f01()),
                );
                // Scores in steps of 1/20 half of the time (ties), now and then exactly at a
                // threshold of the configurations below or just above it.
                let score = match (f01() * 20.0) as u32 {
                    0 => THRESHOLDS[(f01() * 6.0) as usize % 6],
                    1 => THRESHOLDS[(f01() * 6.0) as usize % 6].next_up(),
                    k if k < 10 => (o.score * 20.0).round() / 20.0,
                    _ => o.score,
                };
                dets.push(Spec { bbox, score, roi: Some(roi) });
                if f01() < 0.4 {
                    // A part, or a near copy, of the object.
                    let s = 0.4 + 0.65 * f01();
                    let c = (o.c.0 + o.r.0 * 0.3 * (f01() - 0.5), o.c.1 + o.r.1 * 0.3 * (f01() - 0.5));
                    let r = (o.r.0 * s, o.r.1 * s);
                    let score = match (f01() * 10.0) as u32 {
                        0 => f32::NAN,
                        1 => score, // a tie with the object
                        _ => (score + 0.6 * (f01() - 0.6)).clamp(0.0, 1.0),
                    };
                    if let Some(roi) = ellipse(c, r, bw, bh) {
                        let bbox = BBox::new(c.0 - r.0, c.1 - r.1, c.0 + r.0, c.1 + r.1);
                        dets.push(Spec { bbox, score, roi: Some(roi) });
                    }
                }
            }
            while dets.len() < n {
                let c = (f01() * bw as f32, f01() * bh as f32);
                let r = (3.0 + f01() * bw as f32 / 10.0, 3.0 + f01() * bh as f32 / 8.0);
                let score = match (f01() * 40.0) as u32 {
                    0 => f32::NAN,
                    1 => -f32::NAN,
                    // Exactly one of the thresholds of the configurations below, or just above.
                    2..=9 => {
                        let t = THRESHOLDS[(f01() * 6.0) as usize % 6];
                        if f01() < 0.5 { t } else { t.next_up() }
                    }
                    k if k < 20 => f01() * 0.1,
                    _ => f01(),
                };
                let mut bbox = BBox::new(c.0 - r.0, c.1 - r.1, c.0 + r.0, c.1 + r.1);
                let roi = match (f01() * 20.0) as u32 {
                    0 => None,
                    1 => Some(RoiBitmap::empty(bw, bh)),
                    2 => {
                        bbox.x2 = bbox.x1; // zero width: no `Det`, and no box overlap
                        ellipse(c, r, bw, bh)
                    }
                    3 => {
                        // Not finite: no `Det`, but the boxes overlap and the mask suppresses.
                        bbox.x2 = f32::INFINITY;
                        ellipse(c, r, bw, bh)
                    }
                    _ => ellipse(c, r, bw, bh),
                };
                dets.push(Spec { bbox, score, roi });
            }
            // Detector order is not score order.
            for i in (1..dets.len()).rev() {
                let j = (f01() * (i + 1) as f32) as usize % (i + 1);
                dets.swap(i, j);
            }
            seq.push((img, dets));
        }
        seq
    }

    /// The score thresholds of the configurations of `skipping_unused_work_changes_no_result`.
    const THRESHOLDS: [f32; 6] = [0.0, 0.1, 0.3, 0.4, 0.5, 0.6];

    /// The detections of `specs` with fresh lazy masks counting their renders into `renders`.
    fn wrap(specs: &[Spec], renders: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Vec<Detection> {
        specs
            .iter()
            .map(|s| Detection {
                bbox: s.bbox,
                score: s.score,
                class_id: 0,
                mask: s.roi.as_ref().map(|roi| {
                    Mask::lazy(Box::new(Counted { roi: roi.clone(), renders: std::sync::Arc::clone(renders) }))
                }),
            })
            .collect()
    }

    fn key(out: &[TrackedObject]) -> Vec<(u64, [u32; 4], u32, u32, usize)> {
        out.iter()
            .map(|o| {
                let b = [o.bbox.x1.to_bits(), o.bbox.y1.to_bits(), o.bbox.x2.to_bits(), o.bbox.y2.to_bits()];
                (o.track_id, b, o.score.to_bits(), o.class_id, o.det_index)
            })
            .collect()
    }

    /// Issue 9: the tracker suppresses duplicates only among the detections it can use and
    /// computes `[reid]` histograms only for the detections that update or start a track; its
    /// outputs (IDs, boxes, scores, `det_index`) and track counts must equal, bit for bit, the
    /// eager reference (suppression over all detections, every high detection's histogram), over
    /// busy sequences and several configurations.
    #[test]
    fn skipping_unused_work_changes_no_result() {
        let product = TrackerConfig::product().unwrap();
        let configs = [
            product.clone(),
            TrackerConfig { track_low_thresh: 0.3, track_high_thresh: 0.6, new_track_thresh: 0.6, ..product.clone() },
            // Low threshold above the high one: the split keeps `score >= high` only.
            TrackerConfig { track_low_thresh: 0.5, track_high_thresh: 0.3, new_track_thresh: 0.3, ..product.clone() },
            TrackerConfig { track_low_thresh: 0.0, track_high_thresh: 0.0, new_track_thresh: 0.2, ..product.clone() },
            TrackerConfig { association: Association::Box, lazy_ids: false, ..product.clone() },
            TrackerConfig { reid: ReidConfig { enabled: false, ..product.reid }, ..product.clone() },
            TrackerConfig {
                dedup: super::super::DedupConfig { mask_iou: 0.3, containment: 0.6, enabled: true },
                reid: ReidConfig { min_similarity: 0.5, ..product.reid },
                ..product.clone()
            },
        ];
        let (bw, bh) = (320u32, 180u32);
        let (mut frames, mut outputs, mut reappeared) = (0, 0, 0);
        let (mut renders_new, mut renders_ref, mut hist_new, mut hist_ref) = (0, 0, 0, 0);
        for (c, cfg) in configs.iter().enumerate() {
            let seq = busy_sequence(c as u64 + 1, 150, 45, 40, bw, bh);
            let mut new = ByteTracker::new(cfg.clone());
            let mut reference = ByteTracker::eager(cfg.clone());
            let (mut out_new, mut out_ref) = (Vec::new(), Vec::new());
            let (count_new, count_ref) = (std::sync::Arc::default(), std::sync::Arc::default());
            let mut last_seen = std::collections::HashMap::new();
            for (f, (img, specs)) in seq.iter().enumerate() {
                let view = ImageView::packed(bw, bh, PixelFormat::Rgb8, img).unwrap();
                // Now and then a frame without its image (no `[reid]` features).
                let view = (f % 13 != 7).then_some(view);
                let (dn, dr) = (wrap(specs, &count_new), wrap(specs, &count_ref));
                new.update_with_image(&dn, view, &mut out_new);
                reference.update_with_image(&dr, view, &mut out_ref);
                let (kn, kr) = (key(&out_new), key(&out_ref));
                if let Some(i) = (0..kn.len().max(kr.len())).find(|&i| kn.get(i) != kr.get(i)) {
                    panic!("config {c}, frame {f}: output {i} is {:?}, reference {:?}", kn.get(i), kr.get(i));
                }
                assert_eq!(new.num_tracks(), reference.num_tracks(), "config {c}, frame {f}");
                assert_eq!(new.num_lost(), reference.num_lost(), "config {c}, frame {f}");
                assert_eq!(new.next_id, reference.next_id, "config {c}, frame {f}");
                // Histograms computed with a result (those without one are not told apart from
                // detections never looked at in the reference's states).
                let computed = |t: &ByteTracker| t.feat_state.iter().filter(|&&s| s == 1).count();
                hist_new += computed(&new);
                hist_ref += computed(&reference);
                for o in &out_new {
                    if last_seen.insert(o.track_id, f).is_some_and(|p| p + 1 < f) {
                        reappeared += 1;
                    }
                }
                frames += 1;
                outputs += out_new.len();
            }
            renders_new += count_new.load(std::sync::atomic::Ordering::Relaxed);
            renders_ref += count_ref.load(std::sync::atomic::Ordering::Relaxed);
        }
        // The sequences do track, re-find tracks after gaps, and the work skipped is real.
        assert!(outputs > frames * 10, "{outputs} outputs in {frames} frames");
        assert!(reappeared > 20, "only {reappeared} tracks seen again after a gap");
        assert!(renders_new < renders_ref * 9 / 10, "renders: {renders_new} vs {renders_ref}");
        assert!(hist_new < hist_ref, "histograms: {hist_new} vs {hist_ref}");
        eprintln!("renders {renders_new} vs {renders_ref}; histograms {hist_new} vs {hist_ref}; {reappeared} re-found");
    }
}
