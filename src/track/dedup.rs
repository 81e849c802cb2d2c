//! Mask-aware suppression of near-duplicate detections, run before association.
//!
//! FastSAM's "everything" mode runs NMS at IoU 0.9, so it keeps near-duplicates: the same object
//! twice with slightly different masks, or a part of an object next to the whole object. Each
//! extra detection is a false positive and, tracked, an extra track. [`suppress_duplicates`]
//! removes them greedily in order of decreasing score:
//!
//! * a detection whose mask IoU with an already kept detection exceeds
//!   [`DedupConfig::mask_iou`] is dropped;
//! * a pair where the fraction of either mask covered by the other exceeds
//!   [`DedupConfig::containment`] is a part/whole pair: the detection processed later (lower
//!   score) is dropped, so the higher-scoring one of the two survives (measured better than
//!   keeping the larger one on the synthetic clip; see `BENCHMARKS.md`).
//!
//! Mask overlap is computed only for pairs whose boxes intersect, on the masks' cached
//! [`RowBits`](crate::mask::RowBits) (full-resolution pixels packed 64 to a word: an AND and a
//! popcount per word over the rows both cover; the same pixel count as comparing the pixels one by
//! one). A pair is skipped without counting when even the largest intersection its pixel counts
//! and ROIs allow would pass neither test. Where either detection has no mask (or an empty one),
//! the same tests use the boxes (box IoU, and the fraction of a box inside the other).

use serde::{Deserialize, Serialize};

use crate::mask::Mask;
use crate::types::{BBox, Detection};

use super::TrackError;

/// Parameters of [`suppress_duplicates`]. `Default` has it disabled (so that
/// [`TrackerConfig::default`](super::TrackerConfig::default) stays Ultralytics' tracker) with the
/// thresholds measured best; `configs/bytetrack.toml` enables it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Run the suppression before association.
    pub enabled: bool,
    /// Drop a detection whose mask IoU with a kept (higher-scoring) one is above this.
    pub mask_iou: f32,
    /// Drop a detection when more than this fraction of its mask, or of the kept one's mask, is
    /// covered by the other (a part and its whole). 1 disables the test.
    pub containment: f32,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { enabled: false, mask_iou: 0.5, containment: 0.8 }
    }
}

impl DedupConfig {
    /// Check the thresholds are in `[0, 1]`.
    pub fn validate(&self) -> Result<(), TrackError> {
        for (name, v) in [("dedup.mask_iou", self.mask_iou), ("dedup.containment", self.containment)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(TrackError::InvalidParameter { name, value: v.to_string(), fix: "use a value in [0, 1]" });
            }
        }
        Ok(())
    }
}

/// [`suppress_duplicates`] with reusable scratch buffers (the tracker keeps one). Per-detection
/// mask data (pixel count, packed bits) is cached on the masks themselves ([`Mask::bits`]).
#[derive(Debug, Clone)]
pub struct Deduper {
    /// Whether each detection's mask is usable (present and non-empty): 0 unknown, 1 yes, 2 no.
    usable: Vec<u8>,
    /// Settle pairs from pixel-count bounds before rendering (always, except in the test that
    /// checks this changes nothing).
    use_bounds: bool,
}

impl Default for Deduper {
    fn default() -> Self {
        Self { usable: Vec::new(), use_bounds: true }
    }
}

impl Deduper {
    pub fn new() -> Self {
        Self::default()
    }

    /// A deduper that counts every mask pair exactly (renders every mask it compares): the
    /// reference for the bounds.
    #[cfg(test)]
    pub(crate) fn exact() -> Self {
        Self { usable: Vec::new(), use_bounds: false }
    }

    /// Write into `keep` the indices (ascending) of the detections that survive. All detections
    /// survive when `cfg.enabled` is false.
    pub fn run(&mut self, dets: &[Detection], cfg: &DedupConfig, keep: &mut Vec<usize>) {
        self.run_where(dets, cfg, keep, |_| true);
    }

    /// [`Self::run`] over only the detections for which `candidate` holds: the others are neither
    /// kept nor compared (their masks are not looked at). Writes into `keep` the indices
    /// (ascending, into `dets`) of the candidates that survive; all candidates survive when
    /// `cfg.enabled` is false.
    ///
    /// Suppression is greedy in order of decreasing score, and a detection can only suppress
    /// detections after it in that order, so when the candidates are a prefix of that order
    /// (every detection ordered before a candidate by [`f32::total_cmp`] of the scores, ties by
    /// index, is a candidate too) the candidates that survive are exactly those [`Self::run`]
    /// keeps among them. The tracker relies on this to suppress only among the detections it can
    /// use (see `ByteTracker::update_with_image`).
    pub fn run_where(
        &mut self,
        dets: &[Detection],
        cfg: &DedupConfig,
        keep: &mut Vec<usize>,
        candidate: impl Fn(&Detection) -> bool,
    ) {
        keep.clear();
        keep.extend((0..dets.len()).filter(|&i| candidate(&dets[i])));
        if !cfg.enabled || keep.len() < 2 {
            return;
        }
        self.usable.clear();
        self.usable.resize(dets.len(), 0);
        // Highest score first; ties keep the original order.
        keep.sort_unstable_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score).then(a.cmp(&b)));
        // `keep[..n_kept]` are the survivors so far; the candidate `keep[p]` (p >= n_kept) is
        // compared with them and moved down when it survives.
        let mut n_kept = 0;
        for p in 0..keep.len() {
            let i = keep[p];
            let dup = (0..n_kept).any(|q| self.is_duplicate(dets, keep[q], i, cfg));
            if !dup {
                keep[n_kept] = i;
                n_kept += 1;
            }
        }
        keep.truncate(n_kept);
        keep.sort_unstable();
    }

    /// The mask of detection `i` when it has a non-empty one (`None`: no mask, or an empty one),
    /// decided from the mask's area bounds where they settle it, else by rendering it.
    fn usable_mask<'d>(&mut self, dets: &'d [Detection], i: usize) -> Option<&'d Mask> {
        let m = dets[i].mask.as_ref();
        if self.usable[i] == 0 {
            let ok = m.is_some_and(|m| match m.area_bounds() {
                (_, 0) => false,
                (lo, _) if lo > 0 => true,
                _ => m.area() > 0,
            });
            self.usable[i] = if ok { 1 } else { 2 };
        }
        if self.usable[i] == 1 { m } else { None }
    }

    /// Whether candidate `i` duplicates the kept detection `k`.
    fn is_duplicate(&mut self, dets: &[Detection], k: usize, i: usize, cfg: &DedupConfig) -> bool {
        let (bk, bi) = (&dets[k].bbox, &dets[i].bbox);
        let inter_box = box_intersection(bk, bi);
        if inter_box <= 0.0 {
            return false;
        }
        // Boxes decide unless both detections have non-empty masks.
        let (Some(mk), Some(mi)) = (self.usable_mask(dets, k), self.usable_mask(dets, i)) else {
            return overlap_is_duplicate(inter_box as f64, bk.area() as f64, bi.area() as f64, cfg);
        };
        // Bounds of the pixel counts that need no rendering (see `Mask::intersection_bounds`)
        // settle most pairs; the others are counted exactly.
        if self.use_bounds
            && let Some(inter) = mk.intersection_bounds(mi)
            && let Some(dup) = decide_from_bounds(inter, mk.area_bounds(), mi.area_bounds(), cfg)
        {
            return dup;
        }
        let (mk, mi) = (mk.bits(), mi.bits());
        let (ak, ai) = (mk.area() as f64, mi.area() as f64);
        // Both tests grow with the intersection (IEEE division and subtraction are monotonic), so
        // when even its upper bound passes neither, the exact count cannot either.
        let rect_overlap = mk.rect().intersect(&mi.rect()).map_or(0, |r| r.area());
        let bound = rect_overlap.min(mk.area()).min(mi.area());
        if !overlap_is_duplicate(bound as f64, ak, ai, cfg) {
            return false;
        }
        overlap_is_duplicate(mk.intersection(mi) as f64, ak, ai, cfg)
    }
}

/// The duplicate test from bounds `(lo, hi)` of the intersection and of the two (non-zero)
/// areas: `Some(result)` when every count within the bounds gives the same result, else `None`.
///
/// Both ratios grow with the intersection and shrink as either area grows, and the exact test
/// computes them from integers with one correctly rounded division each, so evaluating them at
/// the most favourable and the least favourable corner of the bounds brackets the exact values.
fn decide_from_bounds(inter: (u64, u64), a: (u64, u64), b: (u64, u64), cfg: &DedupConfig) -> Option<bool> {
    let (a_lo, b_lo) = (a.0.max(1), b.0.max(1));
    let i_hi = inter.1.min(a.1).min(b.1);
    // Upper bounds: the largest intersection over the smallest areas (a union below the
    // intersection cannot happen for exact counts; then nothing is settled from above).
    let union_lo = a_lo + b_lo;
    let iou_hi = if union_lo > i_hi { i_hi as f64 / (union_lo - i_hi) as f64 } else { f64::INFINITY };
    let contained_hi = i_hi as f64 / a_lo.min(b_lo) as f64;
    if !(iou_hi > cfg.mask_iou as f64 || contained_hi > cfg.containment as f64) {
        return Some(false);
    }
    // Lower bounds: the smallest intersection over the largest areas.
    let i_lo = inter.0;
    if i_lo > 0 && overlap_is_duplicate(i_lo as f64, a.1 as f64, b.1 as f64, cfg) {
        return Some(true);
    }
    None
}

/// Area of the intersection of two boxes (0 when they do not overlap).
fn box_intersection(a: &BBox, b: &BBox) -> f32 {
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    iw * ih
}

/// The IoU and containment tests on an intersection and the two areas.
fn overlap_is_duplicate(inter: f64, area_a: f64, area_b: f64, cfg: &DedupConfig) -> bool {
    if inter <= 0.0 || area_a <= 0.0 || area_b <= 0.0 {
        return false;
    }
    let iou = inter / (area_a + area_b - inter);
    let contained = inter / area_a.min(area_b);
    iou > cfg.mask_iou as f64 || contained > cfg.containment as f64
}

/// Greedy duplicate suppression by score (see the module documentation): writes into `keep` the
/// ascending indices of the detections to track. `keep`'s buffer is reused; the area cache is
/// allocated per call (use a [`Deduper`] to reuse it too).
pub fn suppress_duplicates(dets: &[Detection], cfg: &DedupConfig, keep: &mut Vec<usize>) {
    Deduper::new().run(dets, cfg, keep);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Mask, PixelRect, RoiBitmap};

    const W: u32 = 200;
    const H: u32 = 120;

    /// A detection whose mask is the filled rectangle `[x0, x1) x [y0, y1)` and whose box bounds it.
    fn rect_det(x0: u32, y0: u32, x1: u32, y1: u32, score: f32) -> Detection {
        let rect = PixelRect::new(x0, y0, x1 - x0, y1 - y0);
        let roi = RoiBitmap { img_w: W, img_h: H, rect, data: vec![1; rect.area() as usize] };
        Detection {
            bbox: BBox::new(x0 as f32, y0 as f32, x1 as f32, y1 as f32),
            score,
            class_id: 0,
            mask: Some(Mask::from_roi(roi)),
        }
    }

    fn boxed(d: &Detection) -> Detection {
        Detection { mask: None, ..d.clone() }
    }

    fn on() -> DedupConfig {
        DedupConfig { enabled: true, mask_iou: 0.5, containment: 0.8 }
    }

    fn kept(dets: &[Detection], cfg: &DedupConfig) -> Vec<usize> {
        let mut keep = vec![99; 7]; // stale content must not leak into the result
        suppress_duplicates(dets, cfg, &mut keep);
        keep
    }

    #[test]
    fn part_inside_whole_keeps_the_higher_score() {
        // The part (20x20) lies entirely inside the whole (60x40): containment 1.0, IoU 1/6.
        let whole = rect_det(10, 10, 70, 50, 0.9);
        let part = rect_det(30, 20, 50, 40, 0.7);
        assert_eq!(kept(&[part.clone(), whole.clone()], &on()), vec![1]);
        // Higher-scoring part: the part survives (greedy by score).
        let whole_low = Detection { score: 0.5, ..whole.clone() };
        assert_eq!(kept(&[part.clone(), whole_low], &on()), vec![0]);
        // Containment test off (1.0) and IoU 1/6 below 0.5: both stay.
        let loose = DedupConfig { containment: 1.0, ..on() };
        assert_eq!(kept(&[part, whole], &loose), vec![0, 1]);
    }

    #[test]
    fn disjoint_and_touching_objects_are_kept() {
        let a = rect_det(10, 10, 50, 50, 0.9);
        let b = rect_det(120, 10, 160, 50, 0.8);
        // Boxes overlap (share 10 columns) but the masks only partly: overlap 10*40 of 1600 each.
        let c = rect_det(40, 10, 80, 50, 0.85);
        assert_eq!(kept(&[a.clone(), b.clone(), c.clone()], &on()), vec![0, 1, 2]);
        assert_eq!(kept(&[boxed(&a), boxed(&b), boxed(&c)], &on()), vec![0, 1, 2]);
    }

    #[test]
    fn boxes_overlap_but_masks_do_not() {
        // Two L-shaped objects interleaved: identical boxes, disjoint masks. Box IoU is 1 (would be
        // suppressed without masks); mask overlap is 0, so both stay.
        let mut left = RoiBitmap { img_w: W, img_h: H, rect: PixelRect::new(10, 10, 40, 40), data: vec![0; 1600] };
        let mut right = left.clone();
        for y in 0..40 {
            for x in 0..40 {
                let v = (x < 20) as u8;
                left.data[y * 40 + x] = v;
                right.data[y * 40 + x] = 1 - v;
            }
        }
        let bbox = BBox::new(10.0, 10.0, 50.0, 50.0);
        let d = |roi: RoiBitmap, score| Detection { bbox, score, class_id: 0, mask: Some(Mask::from_roi(roi)) };
        let dets = [d(left, 0.9), d(right, 0.8)];
        assert_eq!(kept(&dets, &on()), vec![0, 1]);
        assert_eq!(kept(&[boxed(&dets[0]), boxed(&dets[1])], &on()), vec![0]);
    }

    #[test]
    fn identical_masks_keep_one() {
        let a = rect_det(10, 10, 50, 50, 0.6);
        let b = rect_det(10, 10, 50, 50, 0.9);
        let c = rect_det(10, 10, 50, 50, 0.9); // tie with b: the earlier index wins
        assert_eq!(kept(&[a, b, c], &on()), vec![1]);
    }

    #[test]
    fn iou_threshold_is_strict_and_disabled_keeps_all() {
        // 40x40 squares overlapping by 30x40: IoU 1200 / 2000 = 0.6, containment 0.75.
        let a = rect_det(10, 10, 50, 50, 0.9);
        let b = rect_det(20, 10, 60, 50, 0.8);
        let cfg = DedupConfig { containment: 1.0, ..on() };
        assert_eq!(kept(&[a.clone(), b.clone()], &DedupConfig { mask_iou: 0.6, ..cfg }), vec![0, 1]);
        assert_eq!(kept(&[a.clone(), b.clone()], &DedupConfig { mask_iou: 0.59, ..cfg }), vec![0]);
        assert_eq!(kept(&[a, b], &DedupConfig { enabled: false, ..cfg }), vec![0, 1]);
    }

    #[test]
    fn without_masks_boxes_decide() {
        // Part box inside whole box: box containment 1.0.
        let whole = boxed(&rect_det(10, 10, 70, 50, 0.9));
        let part = boxed(&rect_det(30, 20, 50, 40, 0.7));
        assert_eq!(kept(&[part.clone(), whole.clone()], &on()), vec![1]);
        // One with a mask, one without: boxes decide as well.
        let part_m = rect_det(30, 20, 50, 40, 0.7);
        assert_eq!(kept(&[part_m, whole], &on()), vec![1]);
    }

    #[test]
    fn empty_mask_falls_back_to_box() {
        let whole = rect_det(10, 10, 70, 50, 0.9);
        let empty = Detection {
            bbox: BBox::new(30.0, 20.0, 50.0, 40.0),
            score: 0.7,
            class_id: 0,
            mask: Some(Mask::from_roi(RoiBitmap::empty(W, H))),
        };
        assert_eq!(kept(&[whole, empty], &on()), vec![0]);
    }

    #[test]
    fn greedy_chain_compares_only_with_survivors() {
        // a (0.9) suppresses b (0.8, IoU 0.6); c (0.7) overlaps b by IoU 0.6 but a only by 1/3:
        // b is gone, so c stays.
        let a = rect_det(10, 10, 50, 50, 0.9);
        let b = rect_det(20, 10, 60, 50, 0.8);
        let c = rect_det(30, 10, 70, 50, 0.7);
        let cfg = DedupConfig { containment: 1.0, ..on() };
        assert_eq!(kept(&[c, b, a], &cfg), vec![0, 2]);
    }

    #[test]
    fn tracker_outputs_carry_original_det_index() {
        use crate::track::{ByteTracker, TrackerConfig};
        // Per frame: [part (0.6), object A (0.9), part of A again (0.5), object B (0.8)], moving
        // right 2 px per frame. With dedup on, only A and B are tracked, and the outputs must
        // name them by their index in this full list (1 and 3), not in the kept list (0 and 1).
        let frame = |f: u32| {
            let x = 10 + 2 * f;
            vec![
                rect_det(x + 10, 20, x + 30, 40, 0.6),
                rect_det(x, 10, x + 50, 50, 0.9),
                rect_det(x + 5, 15, x + 25, 45, 0.5),
                rect_det(x + 100, 10, x + 140, 60, 0.8),
            ]
        };
        let cfg = TrackerConfig { dedup: on(), ..TrackerConfig::default() };
        let mut t = ByteTracker::new(cfg);
        let mut ids = std::collections::BTreeSet::new();
        for f in 0..10 {
            let dets = frame(f);
            let out = t.update(&dets);
            let mut idx: Vec<usize> = out.iter().map(|o| o.det_index).collect();
            idx.sort_unstable();
            assert_eq!(idx, vec![1, 3], "frame {f}");
            for o in &out {
                assert_eq!(o.score, dets[o.det_index].score);
                assert!(o.bbox.iou(&dets[o.det_index].bbox) > 0.8, "frame {f}: {:?}", o.bbox);
                ids.insert(o.track_id);
            }
        }
        assert_eq!(ids.len(), 2, "one track per object: {ids:?}");
        // Without dedup the parts become tracks of their own.
        let mut plain = ByteTracker::new(TrackerConfig::default());
        let n: usize = (0..10).map(|f| plain.update(&frame(f)).len()).max().unwrap();
        assert_eq!(n, 4);
    }

    /// The straightforward suppression: full-frame bitmaps, pixel-by-pixel counts, every pair with
    /// overlapping boxes compared (no bounds, no caches).
    fn reference_keep(dets: &[Detection], cfg: &DedupConfig) -> Vec<usize> {
        if !cfg.enabled {
            return (0..dets.len()).collect();
        }
        let full: Vec<Option<crate::mask::Bitmap>> = dets
            .iter()
            .map(|d| d.mask.as_ref().map(|m| m.roi().to_full()).filter(|b| b.data.iter().any(|&v| v != 0)))
            .collect();
        let count = |b: &crate::mask::Bitmap| b.data.iter().filter(|&&v| v != 0).count() as f64;
        let mut order: Vec<usize> = (0..dets.len()).collect();
        order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score).then(a.cmp(&b)));
        let mut kept: Vec<usize> = Vec::new();
        for i in order {
            let dup = kept.iter().any(|&k| {
                let (bk, bi) = (&dets[k].bbox, &dets[i].bbox);
                let inter_box = box_intersection(bk, bi);
                if inter_box <= 0.0 {
                    return false;
                }
                match (&full[k], &full[i]) {
                    (Some(a), Some(b)) => {
                        let inter = a.data.iter().zip(&b.data).filter(|(p, q)| **p != 0 && **q != 0).count();
                        overlap_is_duplicate(inter as f64, count(a), count(b), cfg)
                    }
                    _ => overlap_is_duplicate(inter_box as f64, bk.area() as f64, bi.area() as f64, cfg),
                }
            });
            if !dup {
                kept.push(i);
            }
        }
        kept.sort_unstable();
        kept
    }

    /// A busy frame: `n` overlapping blobs (ragged discs, rings, rectangles, noise), some parts of
    /// others, some without a mask or with an empty one; boxes around the masks with jitter.
    fn busy_scene(n: usize, seed: u64, w: u32, h: u32) -> Vec<Detection> {
        let mut s = seed | 1;
        let mut rnd = move || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut dets: Vec<Detection> = Vec::new();
        for k in 0..n {
            // Every fourth detection is a near copy or a part of an earlier one.
            let (cx, cy, rx, ry) = if k % 4 == 3 && !dets.is_empty() {
                let b = dets[(rnd() * dets.len() as f64) as usize].bbox;
                let shrink = 0.4 + 0.6 * rnd();
                let (cx, cy) = b.center();
                (
                    cx as f64 + 4.0 * (rnd() - 0.5),
                    cy as f64,
                    b.width() as f64 / 2.0 * shrink,
                    b.height() as f64 / 2.0 * shrink,
                )
            } else {
                (rnd() * w as f64, rnd() * h as f64, 4.0 + rnd() * w as f64 / 5.0, 4.0 + rnd() * h as f64 / 5.0)
            };
            let bbox = BBox::new((cx - rx) as f32, (cy - ry) as f32, (cx + rx) as f32, (cy + ry) as f32);
            let rect = PixelRect::from_box_clamped(bbox.x1, bbox.y1, bbox.x2, bbox.y2, W.max(w), H.max(h));
            let kind = (rnd() * 5.0) as u32;
            let mut data = vec![0u8; rect.area() as usize];
            for yy in 0..rect.h {
                for xx in 0..rect.w {
                    let dx = ((rect.x + xx) as f64 + 0.5 - cx) / rx;
                    let dy = ((rect.y + yy) as f64 + 0.5 - cy) / ry;
                    let r2 = dx * dx + dy * dy;
                    let on = match kind {
                        0 => r2 <= 1.0 && rnd() > 0.05,
                        1 => (0.3..=1.0).contains(&r2),
                        2 => true,
                        3 => rnd() < 0.5,
                        _ => r2 <= 1.0,
                    };
                    data[(yy * rect.w + xx) as usize] = on as u8;
                }
            }
            let mask = match k % 17 {
                5 => None,
                11 => Some(Mask::from_roi(RoiBitmap::empty(W.max(w), H.max(h)))),
                _ => Some(Mask::from_roi(RoiBitmap { img_w: W.max(w), img_h: H.max(h), rect, data })),
            };
            // Scores with ties.
            let score = (rnd() * 20.0).floor() as f32 / 20.0;
            dets.push(Detection { bbox, score, class_id: 0, mask });
        }
        dets
    }

    #[test]
    fn busy_frame_matches_reference_suppression() {
        let (w, h) = (320, 180);
        let configs = [
            on(),
            DedupConfig { containment: 1.0, ..on() },
            DedupConfig { mask_iou: 0.3, containment: 0.6, ..on() },
            DedupConfig { mask_iou: 0.9, containment: 0.95, ..on() },
            DedupConfig { mask_iou: 0.0, containment: 0.0, ..on() },
        ];
        let mut dropped = 0;
        let mut keep = Vec::new();
        let mut deduper = Deduper::new();
        for seed in [1u64, 2, 3] {
            let dets = busy_scene(200, seed, w, h);
            for cfg in &configs {
                let want = reference_keep(&dets, cfg);
                deduper.run(&dets, cfg, &mut keep);
                assert_eq!(keep, want, "seed {seed}, {cfg:?}");
                dropped += dets.len() - want.len();
            }
        }
        // The scenes do exercise suppression.
        assert!(dropped > 300, "only {dropped} detections suppressed over all cases");
    }

    #[test]
    fn validate_rejects_out_of_range() {
        assert!(on().validate().is_ok());
        let e = DedupConfig { containment: 1.5, ..on() }.validate().unwrap_err().to_string();
        assert!(e.contains("dedup.containment"), "{e}");
        let e = DedupConfig { mask_iou: -0.1, ..on() }.validate().unwrap_err().to_string();
        assert!(e.contains("dedup.mask_iou"), "{e}");
    }

    /// Issue 9: settling mask pairs from pixel-count bounds before rendering keeps exactly the
    /// detections that exact counting keeps, on random busy frames of FastSAM-like lazy masks
    /// (near-duplicates of a few objects) and several thresholds, and renders fewer masks.
    #[test]
    fn bounds_keep_the_same_detections_as_exact_counts() {
        use crate::model::masks::testing::busy_detections;
        let mut rng = crate::test_rng::Rng(0xdede_9b0d5);
        let (mut rendered_new, mut rendered_ref, mut kept, mut total) = (0, 0, 0, 0);
        for case in 0..120 {
            let cfg = DedupConfig {
                enabled: true,
                mask_iou: [0.5, 0.3, 0.7, 0.9, 0.0][case % 5],
                containment: [0.8, 0.6, 0.95, 1.0][case % 4],
            };
            let n = 5 + rng.below(40) as usize;
            let seed = rng.below(u32::MAX);
            // The same frame twice, each with its own lazy masks.
            let dets_new = busy_detections(&mut crate::test_rng::Rng(seed as u64), n);
            let dets_ref = busy_detections(&mut crate::test_rng::Rng(seed as u64), n);
            let (mut keep_new, mut keep_ref) = (Vec::new(), Vec::new());
            Deduper::new().run(&dets_new, &cfg, &mut keep_new);
            Deduper::exact().run(&dets_ref, &cfg, &mut keep_ref);
            assert_eq!(keep_new, keep_ref, "case {case} ({n} detections, {cfg:?})");
            let rendered =
                |d: &[Detection]| d.iter().filter(|d| d.mask.as_ref().is_some_and(Mask::is_rendered)).count();
            rendered_new += rendered(&dets_new);
            rendered_ref += rendered(&dets_ref);
            kept += keep_ref.len();
            total += n;
        }
        eprintln!("kept {kept} of {total}; rendered {rendered_new} with bounds, {rendered_ref} without");
        // Suppression happens, and the bounds spare most renders.
        assert!(kept * 2 < total, "kept {kept} of {total}");
        assert!(rendered_new * 2 < rendered_ref, "rendered {rendered_new} with bounds, {rendered_ref} without");
    }
}
