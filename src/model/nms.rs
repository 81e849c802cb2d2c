//! Class-agnostic greedy NMS with torchvision's semantics, bit-identical to the textbook loop
//! ("for each kept box in score order, suppress every later box with IoU `> iou`, stop at
//! `max_det`"; kept as the test reference) but organised for busy scenes, where thousands of
//! candidates pass a low confidence threshold and only the first few hundred can ever be kept.
//!
//! * **Kept-first order.** A candidate is suppressed iff some box kept before it overlaps it by
//!   more than the threshold, so each candidate is tested against the boxes kept so far (in the
//!   order they were kept, stopping at the first that suppresses it), and the loop ends as soon as
//!   `max_det` boxes are kept. The IoU of a pair is the same expression on the same operands as
//!   in the textbook loop (kept box first), so every pair decides alike; this loop evaluates a
//!   subset of the pairs the textbook loop evaluates (never the candidates after the last kept
//!   box), and none of the pairs it skips can change the kept set.
//! * **AVX2 kernel** (picked at run time): the kept boxes live as structure-of-arrays, and a
//!   candidate is tested against 8 kept boxes at a time with the same IEEE operations in the same
//!   order as the scalar expression (no FMA). The kernel runs only when the candidate's and all
//!   kept boxes' coordinates are finite: then no `min`/`max` sees a NaN (where `_mm256_min_ps`
//!   and `f32::min` differ) and the only difference left, the sign of a zero, cannot change the
//!   decision (see [`Nms`]). Other candidates take the scalar expression.
//! * **Threshold in f32.** The textbook loop compares the f32 IoU widened to f64 with an f64
//!   threshold; [`f32_threshold`] gives the f32 `t` with `x > t ⟺ x as f64 > thr` for every f32
//!   `x`, so the kernel compares in f32.

/// A candidate box `[x1, y1, x2, y2]` and its area `(x2 - x1) * (y2 - y1)`, as computed once per
/// candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct NmsBox {
    pub b: [f32; 4],
    pub area: f32,
}

impl NmsBox {
    fn is_finite(&self) -> bool {
        self.b.iter().all(|v| v.is_finite())
    }
}

/// Whether the kept box `ci` suppresses the later candidate `cj`: the torchvision IoU in f32,
/// compared in f64 (`ovr as f64 > thr`), exactly as the textbook loop does it.
#[inline]
fn suppresses(ci: &NmsBox, cj: &NmsBox, thr: f64) -> bool {
    let w = (ci.b[2].min(cj.b[2]) - ci.b[0].max(cj.b[0])).max(0.0);
    let h = (ci.b[3].min(cj.b[3]) - ci.b[1].max(cj.b[1])).max(0.0);
    let inter = w * h;
    let ovr = inter / (ci.area + cj.area - inter);
    ovr as f64 > thr
}

/// The f32 `t` with `x > t ⟺ (x as f64) > thr` for every f32 `x` (both false when either is NaN):
/// the largest f32 not above `thr`. `thr as f32` rounds to nearest (overflowing to ±inf); when
/// that lands above `thr`, the f32 just below it is at most `thr`. With `t` the largest f32
/// `<= thr`: `x as f64 > thr >= t` gives `x > t`; and `x > t` with `x as f64 <= thr` would make `x`
/// a larger f32 `<= thr`, so `x > t` gives `x as f64 > thr`.
pub(super) fn f32_threshold(thr: f64) -> f32 {
    let t = thr as f32;
    if t as f64 > thr { t.next_down() } else { t }
}

/// Reusable NMS state: the kept boxes as structure-of-arrays, each array padded with zeros to a
/// multiple of 8 (the padding lanes' results are masked off).
///
/// Why the kernel may use `_mm256_min_ps`/`_mm256_max_ps` for `f32::min`/`f32::max` on finite
/// coordinates: both return the smaller (larger) operand when neither is NaN and the operands
/// differ; with finite coordinates the `min`/`max` operands are coordinates or the difference of
/// two finite values (finite or ±inf, never NaN). They may disagree only on the sign of a zero
/// result. A signed zero changes `w` or `h` only when it is zero, so `inter` is ±0 (or NaN when
/// the other side is +inf, for either sign); `areas - (±0)` is the same value unless the areas
/// add up to a zero, and then `±0 / ±0` is NaN for every sign; otherwise `ovr` is ±0 or NaN,
/// and `±0 > t` does not depend on the sign. Every other operation is the same IEEE operation on
/// the same operands.
#[derive(Debug, Default)]
pub(super) struct Nms {
    x1: Vec<f32>,
    y1: Vec<f32>,
    x2: Vec<f32>,
    y2: Vec<f32>,
    area: Vec<f32>,
    /// The kept boxes, in the order kept.
    kept: Vec<NmsBox>,
    /// All kept boxes have finite coordinates.
    kept_finite: bool,
    order: ScoreOrder,
}

/// The candidates in stable descending score order, sorted block by block on demand: the next
/// `len` best candidates are moved to the front of the unsorted rest with a selection
/// (`select_nth_unstable`, linear time) and only they are sorted. Keys are
/// `(descending total-order key of the score) << 32 | index`: all distinct, so an unstable sort
/// of the keys is the stable order (equal scores by index), and the key order is `total_cmp`'s.
#[derive(Debug, Default)]
pub(super) struct ScoreOrder {
    keys: Vec<u64>,
    /// Indices, `keys[..done]` in order, as handed out.
    idx: Vec<u32>,
    done: usize,
    /// Blocks handed out so far.
    blocks: u32,
}

/// `total_cmp`'s order as unsigned integers: `a.total_cmp(&b) == total_key(a).cmp(&total_key(b))`.
fn total_key(s: f32) -> u32 {
    let b = s.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

impl ScoreOrder {
    /// Starts over with `n` candidates (at most `u32::MAX + 1`; more are cut off).
    fn reset(&mut self, n: usize, score: impl Fn(usize) -> f32) {
        let n = n.min(1 << 32);
        self.keys.clear();
        self.keys.extend((0..n).map(|i| (u64::from(!total_key(score(i))) << 32) | i as u64));
        self.done = 0;
        self.blocks = 0;
    }

    /// The next block of candidate indices in order (`first` of them, then twice as many as
    /// the block before), or `None` when all are out.
    fn next_block(&mut self, first: usize) -> Option<&[u32]> {
        let n = self.keys.len();
        if self.done >= n {
            return None;
        }
        let grow = 1usize.checked_shl(self.blocks).unwrap_or(usize::MAX);
        let len = first.max(1).saturating_mul(grow).min(n - self.done);
        let rest = &mut self.keys[self.done..];
        if len < rest.len() {
            rest.select_nth_unstable(len - 1);
        }
        let block = &mut rest[..len];
        block.sort_unstable();
        self.idx.clear();
        self.idx.extend(block.iter().map(|&k| k as u32));
        self.done += len;
        self.blocks += 1;
        Some(&self.idx)
    }
}

impl Nms {
    /// torchvision's `nms(boxes, scores, iou)[:max_det]` over the `n` candidates (`score(i)`,
    /// `get(i)`): fills `keep` with the indices of the kept candidates, best first. The order is
    /// the stable descending order of the scores (`total_cmp`; equal scores in index order), as
    /// a stable `sort_by(|p, q| q.total_cmp(p))` of the candidates gives, but only as much of it
    /// is sorted as the NMS consumes before it keeps `max_det` boxes (see [`ScoreOrder`]).
    pub(super) fn run(
        &mut self,
        n: usize,
        score: impl Fn(usize) -> f32,
        get: impl Fn(usize) -> NmsBox,
        thr: f64,
        max_det: usize,
        keep: &mut Vec<usize>,
    ) {
        keep.clear();
        self.clear();
        if max_det == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        let t = f32_threshold(thr);
        let mut order = std::mem::take(&mut self.order);
        order.reset(n, score);
        // about what max_det kept boxes need when few candidates are suppressed
        let first = max_det.saturating_add(max_det / 2).saturating_add(64);
        'blocks: while let Some(block) = order.next_block(first) {
            for &j in block {
                let c = get(j as usize);
                let suppressed = if avx2 && self.kept_finite && c.is_finite() {
                    #[cfg(target_arch = "x86_64")]
                    {
                        // SAFETY: AVX2 is available (checked above).
                        unsafe { self.any_suppresses_avx2(&c, t) }
                    }
                    #[cfg(not(target_arch = "x86_64"))]
                    unreachable!()
                } else {
                    self.kept.iter().any(|k| suppresses(k, &c, thr))
                };
                if !suppressed {
                    keep.push(j as usize);
                    self.push(c);
                    if keep.len() >= max_det {
                        break 'blocks;
                    }
                }
            }
        }
        self.order = order;
    }

    fn clear(&mut self) {
        for v in [&mut self.x1, &mut self.y1, &mut self.x2, &mut self.y2, &mut self.area] {
            v.clear();
        }
        self.kept.clear();
        self.kept_finite = true;
    }

    fn push(&mut self, c: NmsBox) {
        let i = self.kept.len();
        if i.is_multiple_of(8) {
            for v in [&mut self.x1, &mut self.y1, &mut self.x2, &mut self.y2, &mut self.area] {
                v.resize(i + 8, 0.0);
            }
        }
        self.x1[i] = c.b[0];
        self.y1[i] = c.b[1];
        self.x2[i] = c.b[2];
        self.y2[i] = c.b[3];
        self.area[i] = c.area;
        self.kept.push(c);
        self.kept_finite &= c.is_finite();
    }

    /// `self.kept.iter().any(|k| suppresses(k, c, thr))` for finite boxes, 8 kept boxes at a time
    /// (`t = f32_threshold(thr)`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn any_suppresses_avx2(&self, c: &NmsBox, t: f32) -> bool {
        use std::arch::x86_64::*;
        let n = self.kept.len();
        let (x1, y1, x2, y2, area) = (&self.x1[..], &self.y1[..], &self.x2[..], &self.y2[..], &self.area[..]);
        let padded = n.div_ceil(8) * 8;
        if x1.len() < padded || y1.len() < padded || x2.len() < padded || y2.len() < padded || area.len() < padded {
            // never: `push` pads every array to a multiple of 8
            return false;
        }
        let (cx1, cy1, cx2, cy2) =
            (_mm256_set1_ps(c.b[0]), _mm256_set1_ps(c.b[1]), _mm256_set1_ps(c.b[2]), _mm256_set1_ps(c.b[3]));
        let (carea, vt, zero) = (_mm256_set1_ps(c.area), _mm256_set1_ps(t), _mm256_setzero_ps());
        let mut k = 0;
        while k < n {
            // SAFETY: `k + 8 <= padded`, the length of every array (checked above).
            let (kx1, ky1, kx2, ky2, ka) = unsafe {
                (
                    _mm256_loadu_ps(x1.as_ptr().add(k)),
                    _mm256_loadu_ps(y1.as_ptr().add(k)),
                    _mm256_loadu_ps(x2.as_ptr().add(k)),
                    _mm256_loadu_ps(y2.as_ptr().add(k)),
                    _mm256_loadu_ps(area.as_ptr().add(k)),
                )
            };
            // w = (ci.x2.min(cj.x2) - ci.x1.max(cj.x1)).max(0.0), likewise h
            let w = _mm256_max_ps(_mm256_sub_ps(_mm256_min_ps(kx2, cx2), _mm256_max_ps(kx1, cx1)), zero);
            let h = _mm256_max_ps(_mm256_sub_ps(_mm256_min_ps(ky2, cy2), _mm256_max_ps(ky1, cy1)), zero);
            let inter = _mm256_mul_ps(w, h);
            // inter / (ci.area + cj.area - inter)
            let ovr = _mm256_div_ps(inter, _mm256_sub_ps(_mm256_add_ps(ka, carea), inter));
            // `>` is false for NaN, as _CMP_GT_OQ (ordered, quiet)
            let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(ovr, vt)) as u32 & 0xff;
            let live = if n - k >= 8 { 0xff } else { (1u32 << (n - k)) - 1 };
            if m & live != 0 {
                return true;
            }
            k += 8;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// The textbook greedy NMS (the code `Postprocessor::run` had before [`Nms`]): a stable sort
    /// by descending score, then each kept box suppresses every later box with IoU `> thr`; at
    /// most `max_det` kept. Returns candidate indices.
    fn reference(scores: &[f32], boxes: &[NmsBox], thr: f64, max_det: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..boxes.len()).collect();
        order.sort_by(|&p, &q| scores[q].total_cmp(&scores[p]));
        let n = boxes.len();
        let mut suppressed = vec![false; n];
        let mut keep = Vec::new();
        for i in 0..n {
            if suppressed[i] {
                continue;
            }
            if keep.len() >= max_det {
                break;
            }
            keep.push(i);
            let ci = boxes[order[i]];
            for j in i + 1..n {
                if suppressed[j] {
                    continue;
                }
                let cj = &boxes[order[j]];
                let w = (ci.b[2].min(cj.b[2]) - ci.b[0].max(cj.b[0])).max(0.0);
                let h = (ci.b[3].min(cj.b[3]) - ci.b[1].max(cj.b[1])).max(0.0);
                let inter = w * h;
                let ovr = inter / (ci.area + cj.area - inter);
                if ovr as f64 > thr {
                    suppressed[j] = true;
                }
            }
        }
        keep.into_iter().map(|i| order[i]).collect()
    }

    fn make_box(cx: f32, cy: f32, w: f32, h: f32) -> NmsBox {
        let (hw, hh) = (w / 2.0, h / 2.0);
        let b = [cx - hw, cy - hh, cx + hw, cy + hh];
        NmsBox { b, area: (b[2] - b[0]) * (b[3] - b[1]) }
    }

    /// A random candidate set of one of several kinds: continuous boxes, boxes on a coarse
    /// integer grid (exact IoU ties such as 1/10, 1/2, 9/10), clusters of near-duplicates,
    /// degenerate (zero or negative size) and identical boxes, and a few non-finite values.
    fn random_set(rng: &mut Rng, n: usize) -> Vec<NmsBox> {
        let kind = rng.below(5);
        let mut v: Vec<NmsBox> = Vec::with_capacity(n);
        for _ in 0..n {
            let r = rng.below(100);
            let bx = if r < 8 && !v.is_empty() {
                // an identical box
                v[rng.below(v.len() as u32) as usize]
            } else if r < 14 && !v.is_empty() {
                // a near-duplicate: a kept box moved by a few ulps or a fraction of a pixel
                let o = v[rng.below(v.len() as u32) as usize];
                let d = if rng.below(2) == 0 { 1e-5 } else { 0.5 };
                let mut b = o.b;
                b[rng.below(4) as usize] += d * (rng.fraction() - 0.5);
                NmsBox { b, area: (b[2] - b[0]) * (b[3] - b[1]) }
            } else if r < 18 {
                // degenerate: zero or negative width/height
                let w = [0.0, -0.0, -3.0, 5.0][rng.below(4) as usize];
                let h = [0.0, 4.0, -2.0][rng.below(3) as usize];
                make_box((rng.below(64) * 10) as f32, (rng.below(64) * 10) as f32, w, h)
            } else {
                match kind {
                    // integer grid, small boxes: many exact ratios
                    0 | 1 => {
                        let x1 = rng.below(12) as f32;
                        let y1 = rng.below(12) as f32;
                        let b = [x1, y1, x1 + 1.0 + rng.below(10) as f32, y1 + 1.0 + rng.below(10) as f32];
                        NmsBox { b, area: (b[2] - b[0]) * (b[3] - b[1]) }
                    }
                    // clustered continuous boxes
                    2 => {
                        let c = rng.below(4) as f32 * 60.0;
                        make_box(
                            c + 20.0 * rng.fraction(),
                            c + 20.0 * rng.fraction(),
                            30.0 + 10.0 * rng.fraction(),
                            30.0 + 10.0 * rng.fraction(),
                        )
                    }
                    // a 640 frame, as the model's anchors
                    _ => make_box(
                        640.0 * rng.fraction(),
                        640.0 * rng.fraction(),
                        300.0 * rng.fraction(),
                        300.0 * rng.fraction(),
                    ),
                }
            };
            v.push(bx);
        }
        v
    }

    fn with_non_finite(rng: &mut Rng, v: &mut [NmsBox]) {
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -f32::MAX];
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(v.len() as u32) as usize;
            let b = &mut v[i];
            b.b[rng.below(4) as usize] = specials[rng.below(specials.len() as u32) as usize];
            b.area = (b.b[2] - b.b[0]) * (b.b[3] - b.b[1]);
        }
    }

    const THRESHOLDS: [f64; 11] = [0.0, 0.1, 0.3, 0.45, 0.5, 0.7, 0.9, 1.0, -0.5, 2.0, f64::NAN];

    /// Random scores: continuous, or from a few values (ties), with a few special values.
    fn random_scores(rng: &mut Rng, n: usize) -> Vec<f32> {
        let specials = [0.0, -0.0, 1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN, 1e-40];
        let ties = rng.below(2) == 0;
        (0..n)
            .map(|_| match rng.below(100) {
                0..3 => specials[rng.below(specials.len() as u32) as usize],
                _ if ties => rng.below(5) as f32 / 4.0,
                _ => rng.fraction(),
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        scores: &[f32],
        boxes: &[NmsBox],
        thr: f64,
        max_det: usize,
        nms: &mut Nms,
        keep: &mut Vec<usize>,
        what: &str,
    ) {
        nms.run(boxes.len(), |i| scores[i], |i| boxes[i], thr, max_det, keep);
        assert_eq!(*keep, reference(scores, boxes, thr, max_det), "{what}: thr {thr}, max_det {max_det}");
    }

    /// The block-wise order is the stable descending `total_cmp` sort, for any first block size.
    #[test]
    fn score_order_is_the_stable_sort() {
        let mut rng = Rng(11);
        let mut order = ScoreOrder::default();
        for case in 0..400 {
            let n = [0, 1, 2, 5, 64, 300, 2000][rng.below(7) as usize];
            let scores = random_scores(&mut rng, n);
            let mut want: Vec<usize> = (0..n).collect();
            want.sort_by(|&p, &q| scores[q].total_cmp(&scores[p]));
            for first in [1, 3, 64, 500, usize::MAX] {
                order.reset(n, |i| scores[i]);
                let mut got = Vec::new();
                while let Some(b) = order.next_block(first) {
                    got.extend(b.iter().map(|&i| i as usize));
                }
                assert_eq!(got, want, "case {case}, first block {first}");
            }
        }
    }

    #[test]
    fn equals_textbook_nms_on_random_sets() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut nms = Nms::default();
        let mut keep = Vec::new();
        for case in 0..1500 {
            let n = [0, 1, 2, 7, 8, 9, 40, 200, 700][rng.below(9) as usize];
            let mut boxes = random_set(&mut rng, n);
            let scores = random_scores(&mut rng, n);
            if n > 0 && case % 5 == 4 {
                with_non_finite(&mut rng, &mut boxes);
            }
            let thr = if case % 4 == 3 {
                // the f64 value of a random f32 threshold, as `as_decimal_f64` gives (e.g. 0.1)
                format!("{}", (rng.below(101) as f32) / 100.0).parse().unwrap_or(0.5)
            } else {
                THRESHOLDS[rng.below(THRESHOLDS.len() as u32) as usize]
            };
            for max_det in [0, 1, 3, 8, 9, 50, 300, usize::MAX] {
                check(&scores, &boxes, thr, max_det, &mut nms, &mut keep, &format!("case {case}"));
            }
        }
    }

    /// The busy-scene shape: thousands of candidates, IoU 0.9, max_det 200.
    #[test]
    fn equals_textbook_nms_on_busy_scenes() {
        let mut rng = Rng(7);
        let mut nms = Nms::default();
        let mut keep = Vec::new();
        for case in 0..6 {
            let boxes: Vec<NmsBox> = (0..8400)
                .map(|_| {
                    make_box(
                        640.0 * rng.fraction(),
                        640.0 * rng.fraction(),
                        200.0 * rng.fraction(),
                        200.0 * rng.fraction(),
                    )
                })
                .collect();
            let scores = random_scores(&mut rng, boxes.len());
            for (thr, max_det) in [(0.9, 200), (0.7, 300), (0.5, 100), (1.0, 200), (0.0, 300), (0.9, 9000)] {
                check(&scores, &boxes, thr, max_det, &mut nms, &mut keep, &format!("busy {case}"));
            }
        }
    }

    #[test]
    fn f32_threshold_decides_as_f64() {
        let mut rng = Rng(3);
        let mut thrs: Vec<f64> = vec![0.0, -0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1e-45, -1e-45, 3.5e38, -3.5e38];
        thrs.extend([f64::INFINITY, f64::NEG_INFINITY, f32::MAX as f64, f32::MIN_POSITIVE as f64 / 3.0]);
        for _ in 0..2000 {
            thrs.push(f64::from_bits(rng.next() >> 2) * if rng.below(2) == 0 { 1.0 } else { -1.0 });
            thrs.push(f64::from_bits(rng.next()));
            thrs.push(rng.fraction() as f64 + (rng.below(3) as f64 - 1.0) * 1e-9);
        }
        for thr in thrs {
            let t = f32_threshold(thr);
            // the f32 values around thr, and a few special ones
            let near = thr as f32;
            let mut xs = vec![f32::NAN, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN];
            let (mut lo, mut hi) = (near, near);
            for _ in 0..3 {
                xs.extend([lo, hi]);
                lo = lo.next_down();
                hi = hi.next_up();
            }
            for x in xs {
                assert_eq!(x > t, x as f64 > thr, "x {x:e}, thr {thr:e}, t {t:e}");
            }
        }
    }
}
