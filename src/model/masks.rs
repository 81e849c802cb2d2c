//! Instance masks from YOLOv8-seg prototypes, computed only inside each detection's box.
//!
//! Ultralytics 8.4.x builds masks by multiplying the 32 coefficients with all prototypes, resizing
//! the full-resolution logits and then cropping to the box. The result inside the box depends only
//! on the prototype cells that the bilinear taps of the box pixels touch, so here each mask
//! evaluates `coeffs · protos` on that small prototype window and resamples only the box pixels,
//! with the same PyTorch `F.interpolate(mode="bilinear", align_corners=False)` taps.
//!
//! * `retina_masks = false` (`ops.process_mask(upsample=True)`): logits upsampled to the network
//!   input size, `> 0`, cropped with the input-space NMS box (`x1 <= col < x2`). The mask at original
//!   size (used for prompts and returned in [`crate::Detection`]) is `scale_masks(mask) > 0.5`: the
//!   padding is cropped and the binary mask resized bilinearly.
//! * `retina_masks = true` (`ops.process_mask_native`): optional integer pre-upsample by
//!   `f ∈ {1,2,4}`, padding crop on that grid, bilinear resize to the original size, `> 0`, crop
//!   with the box in original pixels.

use std::sync::Arc;

use super::letterbox::{Letterbox, round_half_even};
use std::sync::OnceLock;

use crate::mask::{CoarseMask, MaskSource, PixelRect, RoiBitmap, RowBits};
use crate::types::BBox;

/// Prototype tensor `[nm, mh, mw]` (one image), CHW float32, shared with the lazy masks of the
/// frame (the model reuses the buffer once no mask holds it any more).
#[derive(Debug, Clone)]
pub struct Protos {
    pub nm: usize,
    pub mh: usize,
    pub mw: usize,
    pub data: Arc<Vec<f32>>,
}

/// One bilinear source tap: `value = l0 * src[i0] + l1 * src[i1]` (full source-grid indices).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tap {
    pub i0: u32,
    pub i1: u32,
    pub l0: f32,
    pub l1: f32,
}

/// PyTorch's bilinear (align_corners=False) taps for every output index `0..out`, sampling a source
/// axis of `inp` cells that starts at `offset` in the full source grid. `scale` is PyTorch's
/// `input/output` ratio (or `1/scale_factor`). Equal sizes give identity taps.
pub fn axis_taps(out: u32, inp: u32, scale: f32, offset: u32) -> Vec<Tap> {
    (0..out)
        .map(|d| {
            if inp == out && scale == 1.0 {
                return Tap { i0: offset + d, i1: offset + d, l0: 1.0, l1: 0.0 };
            }
            let src = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src.floor() as u32).min(inp - 1);
            let i1 = if i0 < inp - 1 { i0 + 1 } else { i0 };
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            Tap { i0: offset + i0, i1: offset + i1, l0: 1.0 - l1, l1 }
        })
        .collect()
}

/// A window of a float grid: cells `x0..x0+w`, `y0..y0+h` of a larger grid, row-major.
#[derive(Debug, Clone, Default)]
pub struct Grid {
    pub x0: u32,
    pub y0: u32,
    pub w: u32,
    pub h: u32,
    pub data: Vec<f32>,
}

impl Grid {
    #[inline]
    fn row(&self, y: u32) -> &[f32] {
        let o = ((y - self.y0) * self.w) as usize;
        &self.data[o..o + self.w as usize]
    }
}

/// The source window `[min i0, max i1]` that a run of taps reads.
fn tap_span(t: &[Tap]) -> (u32, u32) {
    let lo = t.iter().map(|t| t.i0).min().unwrap_or(0);
    let hi = t.iter().map(|t| t.i1).max().unwrap_or(0);
    (lo, hi + 1)
}

/// Something that yields source rows for [`resample_rows`]: a materialised [`Grid`] or logits
/// computed row by row on demand.
trait RowSource {
    /// The row `j` (full-grid index), starting at full-grid column `x0()`.
    fn row<'s>(&'s self, j: u32, scratch: &'s mut Vec<f32>) -> &'s [f32];
    fn x0(&self) -> u32;
}

impl RowSource for Grid {
    fn row<'s>(&'s self, j: u32, _: &'s mut Vec<f32>) -> &'s [f32] {
        Grid::row(self, j)
    }
    fn x0(&self) -> u32 {
        self.x0
    }
}

/// One output row of [`resample_rows`]: `value[x] = l0 * a[x] + l1 * b[x]`, where `a` and `b` are
/// the horizontally interpolated source rows.
struct RowPair<'a> {
    a: &'a [f32],
    b: &'a [f32],
    l0: f32,
    l1: f32,
}

impl RowPair<'_> {
    /// The interpolated values.
    fn values(&self, out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.a.iter().zip(self.b).map(|(&p, &q)| self.l0 * p + self.l1 * q));
    }
    /// `value > thr` as 0/1 bytes in `out` and as bits in `bits` (bit `x % 64` of word `x / 64`,
    /// the words zeroed first), in one pass.
    fn threshold(&self, thr: f32, out: &mut [u8], bits: &mut [u64]) {
        threshold_row(self.a, self.b, self.l0, self.l1, thr, out, bits);
    }
    fn any_above(&self, thr: f32) -> bool {
        self.a.iter().zip(self.b).any(|(&p, &q)| self.l0 * p + self.l1 * q > thr)
    }
}

/// Bilinear resampling of `src` at the given taps, row by row (`row_fn(row, pair)`; return
/// false to stop). Arithmetic as PyTorch's CPU kernel: `h0*(w0*a + w1*b) + h1*(w0*c + w1*d)`,
/// with the horizontal passes cached per source row (each source row is requested once).
fn resample_rows(src: &impl RowSource, xt: &[Tap], yt: &[Tap], mut row_fn: impl FnMut(usize, RowPair<'_>) -> bool) {
    if xt.is_empty() || yt.is_empty() {
        return;
    }
    let w = xt.len();
    let (ylo, yhi) = tap_span(yt);
    let nrows = (yhi - ylo) as usize;
    let htaps = HTaps::new(xt, src.x0());
    let mut cache = vec![0f32; nrows * w];
    let mut done = vec![false; nrows];
    let mut scratch = Vec::new();
    let mut ensure = |j: u32, cache: &mut Vec<f32>| {
        let k = (j - ylo) as usize;
        if !done[k] {
            let srow = src.row(j, &mut scratch);
            htaps.apply(srow, &mut cache[k * w..(k + 1) * w]);
            done[k] = true;
        }
        k
    };
    for (r, t) in yt.iter().enumerate() {
        let k0 = ensure(t.i0, &mut cache);
        let k1 = ensure(t.i1, &mut cache);
        let (a, b) = (&cache[k0 * w..(k0 + 1) * w], &cache[k1 * w..(k1 + 1) * w]);
        if !row_fn(r, RowPair { a, b, l0: t.l0, l1: t.l1 }) {
            return;
        }
    }
}

/// Horizontal taps as arrays, indices relative to the first column of the source rows they read.
struct HTaps {
    i0: Vec<i32>,
    i1: Vec<i32>,
    l0: Vec<f32>,
    l1: Vec<f32>,
    /// One past the largest index (a source row must hold at least this many values).
    end: usize,
}

impl HTaps {
    fn new(xt: &[Tap], sx0: u32) -> HTaps {
        let rel = |i: u32| i.checked_sub(sx0).and_then(|v| i32::try_from(v).ok()).unwrap_or(i32::MAX);
        let i0: Vec<i32> = xt.iter().map(|t| rel(t.i0)).collect();
        let i1: Vec<i32> = xt.iter().map(|t| rel(t.i1)).collect();
        let end = i0.iter().chain(&i1).map(|&i| i as usize + 1).max().unwrap_or(0);
        HTaps { i0, i1, l0: xt.iter().map(|t| t.l0).collect(), l1: xt.iter().map(|t| t.l1).collect(), end }
    }

    /// `out[x] = l0[x] * srow[i0[x]] + l1[x] * srow[i1[x]]` for every tap (`out` as long as the
    /// taps).
    fn apply(&self, srow: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.end <= srow.len() && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked above); every index is below `self.end`, which
            // is at most `srow.len()`.
            unsafe { self.apply_avx2(srow, out) };
            return;
        }
        self.apply_scalar(srow, out, 0);
    }

    fn apply_scalar(&self, srow: &[f32], out: &mut [f32], from: usize) {
        let n = out.len();
        let taps = self.i0[from..n].iter().zip(&self.i1[from..n]).zip(&self.l0[from..n]).zip(&self.l1[from..n]);
        for (d, (((&i0, &i1), &l0), &l1)) in out[from..].iter_mut().zip(taps) {
            *d = l0 * srow[i0 as usize] + l1 * srow[i1 as usize];
        }
    }

    /// [`HTaps::apply`] 8 taps at a time: two gathers, then the same multiplies and add.
    ///
    /// # Safety
    /// Every index must be below `srow.len()`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_avx2(&self, srow: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let n = out.len().min(self.i0.len());
        let mut x = 0;
        while x + 8 <= n {
            // SAFETY: `x + 8 <= n`, so each array holds 8 values from `x` (unaligned loads);
            // the gathered indices are below `srow.len()` (the caller's contract).
            let v = unsafe {
                let a = _mm256_i32gather_ps::<4>(
                    srow.as_ptr(),
                    _mm256_loadu_si256(self.i0.as_ptr().add(x).cast::<__m256i>()),
                );
                let b = _mm256_i32gather_ps::<4>(
                    srow.as_ptr(),
                    _mm256_loadu_si256(self.i1.as_ptr().add(x).cast::<__m256i>()),
                );
                let l0 = _mm256_loadu_ps(self.l0.as_ptr().add(x));
                let l1 = _mm256_loadu_ps(self.l1.as_ptr().add(x));
                _mm256_add_ps(_mm256_mul_ps(l0, a), _mm256_mul_ps(l1, b))
            };
            // SAFETY: `x + 8 <= n <= out.len()`.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(x), v) };
            x += 8;
        }
        self.apply_scalar(srow, &mut out[..n], x);
    }
}

/// Entry `m`: the 8 bits of `m` as 8 bytes of 0 or 1 (little-endian: byte `i` is bit `i`).
const SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut m = 0;
    while m < 256 {
        let mut i = 0;
        while i < 8 {
            if (m >> i) & 1 == 1 {
                t[m] |= 1 << (8 * i);
            }
            i += 1;
        }
        m += 1;
    }
    t
};

/// `out[x] = (l0 * a[x] + l1 * b[x] > thr) as u8` for `x < out.len()`, and the same as bits:
/// bit `x % 64` of `bits[x / 64]` (all of `bits` zeroed first). The arithmetic is the same
/// IEEE operations in the same order on every path (Rust never fuses them into an FMA), so the
/// result does not depend on the path taken.
fn threshold_row(a: &[f32], b: &[f32], l0: f32, l1: f32, thr: f32, out: &mut [u8], bits: &mut [u64]) {
    let n = out.len();
    let (a, b) = (&a[..n], &b[..n]);
    let bits = &mut bits[..n.div_ceil(64)];
    bits.fill(0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked just above).
        unsafe { threshold_row_avx2(a, b, l0, l1, thr, out, bits) };
        return;
    }
    threshold_row_scalar(a, b, l0, l1, thr, out, bits, 0);
}

/// [`threshold_row`] from column `from` on (the words must already hold zeros there).
#[allow(clippy::too_many_arguments)]
fn threshold_row_scalar(
    a: &[f32],
    b: &[f32],
    l0: f32,
    l1: f32,
    thr: f32,
    out: &mut [u8],
    bits: &mut [u64],
    from: usize,
) {
    for (x, ((d, &p), &q)) in out.iter_mut().zip(a).zip(b).enumerate().skip(from) {
        let on = l0 * p + l1 * q > thr;
        *d = on as u8;
        bits[x / 64] |= (on as u64) << (x % 64);
    }
}

/// [`threshold_row`] 8 columns at a time (slices already cut to `out.len()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn threshold_row_avx2(a: &[f32], b: &[f32], l0: f32, l1: f32, thr: f32, out: &mut [u8], bits: &mut [u64]) {
    use std::arch::x86_64::*;
    let n = out.len().min(a.len()).min(b.len());
    let (v0, v1, vt) = (_mm256_set1_ps(l0), _mm256_set1_ps(l1), _mm256_set1_ps(thr));
    let mut x = 0;
    while x + 8 <= n {
        // SAFETY: `x + 8 <= n`, so `a` and `b` hold 8 floats from `x` (unaligned loads).
        let (va, vb) = unsafe { (_mm256_loadu_ps(a.as_ptr().add(x)), _mm256_loadu_ps(b.as_ptr().add(x))) };
        let v = _mm256_add_ps(_mm256_mul_ps(v0, va), _mm256_mul_ps(v1, vb));
        // `>` is false for NaN, as _CMP_GT_OQ (ordered, quiet).
        let m = (_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, vt)) as u32 & 0xff) as usize;
        out[x..x + 8].copy_from_slice(&SPREAD[m].to_le_bytes());
        // x is a multiple of 8: the 8 bits never straddle two words.
        bits[x / 64] |= (m as u64) << (x % 64);
        x += 8;
    }
    threshold_row_scalar(a, b, l0, l1, thr, out, bits, x);
}

/// Everything about one frame that all its masks share.
#[derive(Debug)]
pub struct FrameGeometry {
    pub lb: Letterbox,
    pub protos: Protos,
    pub retina: bool,
    pub mh: u32,
    pub mw: u32,
    /// retina=false: prototype taps for every input column / row.
    in_x: Vec<Tap>,
    in_y: Vec<Tap>,
    /// retina=false: input-mask taps for every original column / row (`scale_masks`).
    orig_x: Vec<Tap>,
    orig_y: Vec<Tap>,
    /// retina=true: pre-upsample factor and taps from the `f`-grid to prototype cells.
    pub f: u32,
    g_x: Vec<Tap>,
    g_y: Vec<Tap>,
    /// retina=false: how `orig_x` / `orig_y` sample the input-size mask, for [`CoarseMask`].
    coarse: CoarseAxes,
}

/// Largest input-mask row, in 64-bit words, that [`CoarseAxes::pair_bounds`] handles (wider
/// inputs get no bounds, only exact counts).
const COARSE_MAX_WORDS: usize = 48;

/// The original-size mask of retina=false is `bilinear(input mask) > 0.5`, and the input mask is
/// binary: an original pixel is surely set when the (up to) 2x2 input pixels its taps read are
/// all set, and surely clear when none is (the interpolated value is then ≈1, or exactly 0).
/// Counting such pixels needs only the input mask's bits and how many original columns (rows)
/// read each input column (row) alone or with its right (lower) neighbour. Both taps count
/// whatever their weights, which only widens the bounds.
#[derive(Debug, Default)]
struct CoarseAxes {
    /// Bit planes over input columns (words of 64): bit `a` of plane `j` is bit `j` of the number
    /// of original columns whose taps are `(a, a)` (`x_same`) or `(a, a + 1)` (`x_next`).
    x_same: Vec<Vec<u64>>,
    x_next: Vec<Vec<u64>>,
    /// Per input row `c`: the number of original rows whose taps are `(c, c)` / `(c, c + 1)`.
    y_same: Vec<u32>,
    y_next: Vec<u32>,
}

/// Per source index `a`: how many taps read `(a, a)` and how many `(a, a + 1)`.
fn pair_counts(taps: &[Tap], n_src: u32) -> (Vec<u32>, Vec<u32>) {
    let (mut same, mut next) = (vec![0u32; n_src as usize], vec![0u32; n_src as usize]);
    for t in taps {
        let a = t.i0.min(t.i1) as usize;
        if a >= same.len() {
            continue;
        }
        if t.i0 == t.i1 {
            same[a] += 1;
        } else {
            next[a] += 1;
        }
    }
    (same, next)
}

/// Bit planes of per-column counts (see [`CoarseAxes::x_same`]).
fn count_planes(counts: &[u32]) -> Vec<Vec<u64>> {
    let max = counts.iter().copied().max().unwrap_or(0);
    let nplanes = (32 - max.leading_zeros()) as usize;
    let words = counts.len().div_ceil(64);
    (0..nplanes)
        .map(|j| {
            let mut plane = vec![0u64; words];
            for (a, &c) in counts.iter().enumerate() {
                plane[a / 64] |= (((c >> j) & 1) as u64) << (a % 64);
            }
            plane
        })
        .collect()
}

impl CoarseAxes {
    fn new(orig_x: &[Tap], orig_y: &[Tap], iw: u32, ih: u32) -> Self {
        let (xs, xn) = pair_counts(orig_x, iw);
        let (y_same, y_next) = pair_counts(orig_y, ih);
        CoarseAxes { x_same: count_planes(&xs), x_next: count_planes(&xn), y_same, y_next }
    }

    /// Bounds `(lo, hi)` of the number of original pixels set in both `bilinear(p) > 0.5` and
    /// `bilinear(q) > 0.5`, where `p` and `q` are input-size masks (`p == q`: of the pixels
    /// set). `None` when the rows are too wide for the fixed buffers.
    fn pair_bounds(&self, p: &RowBits, q: &RowBits) -> Option<(u64, u64)> {
        let (rp, rq) = (p.rect(), q.rect());
        if p.area() == 0 || q.area() == 0 {
            return Some((0, 0));
        }
        // Input rows `c` whose row classes `(c, c)` or `(c, c + 1)` can touch both masks, and
        // the words where both can have bits (one more on the left: a set column `a + 1` makes
        // the pair `(a, a + 1)` possibly set).
        let c0 = rp.y.max(rq.y) as i64 - 1;
        let c1 = rp.bottom().min(rq.bottom()) as i64;
        let ((pw0, pw1), (qw0, qw1)) = (p.word_span(), q.word_span());
        let k0 = pw0.max(qw0) as i64 - 1;
        let k1 = pw1.min(qw1) as i64;
        if c1 <= c0 || k1 <= k0 {
            return Some((0, 0));
        }
        let n = (k1 - k0) as usize;
        if n + 1 > COARSE_MAX_WORDS {
            return None;
        }
        let mut rows = [[0u64; COARSE_MAX_WORDS]; 4];
        let mut v = [0u64; COARSE_MAX_WORDS];
        let (mut lo, mut hi) = (0u64, 0u64);
        for c in c0.max(0)..c1 {
            let ws = self.y_same.get(c as usize).copied().unwrap_or(0) as u64;
            let wn = self.y_next.get(c as usize).copied().unwrap_or(0) as u64;
            if ws == 0 && wn == 0 {
                continue;
            }
            let [p0, p1, q0, q1] = &mut rows;
            for j in 0..=n {
                let k = k0 + j as i64;
                p0[j] = p.word(c, k);
                q0[j] = q.word(c, k);
                p1[j] = p.word(c + 1, k);
                q1[j] = q.word(c + 1, k);
            }
            let [p0, p1, q0, q1] = &rows;
            if ws > 0 {
                for j in 0..=n {
                    v[j] = p0[j] & q0[j];
                }
                lo += ws * self.count_lo(&v[..=n], k0);
                hi += ws * self.count_hi(&p0[..=n], &q0[..=n], k0);
            }
            if wn > 0 {
                let mut u = [0u64; COARSE_MAX_WORDS];
                let mut w = [0u64; COARSE_MAX_WORDS];
                for j in 0..=n {
                    v[j] = p0[j] & p1[j] & q0[j] & q1[j];
                    u[j] = p0[j] | p1[j];
                    w[j] = q0[j] | q1[j];
                }
                lo += wn * self.count_lo(&v[..=n], k0);
                hi += wn * self.count_hi(&u[..=n], &w[..=n], k0);
            }
        }
        Some((lo, hi))
    }

    /// Original columns surely set in a row class whose input bits (both masks', ANDed) are
    /// `v` (words `k0..`, the last word only feeds the shift): columns `(a, a)` with `a` set,
    /// columns `(a, a + 1)` with both set.
    fn count_lo(&self, v: &[u64], k0: i64) -> u64 {
        let mut total = 0u64;
        for j in 0..v.len() - 1 {
            let k = k0 + j as i64;
            if k < 0 || v[j] == 0 {
                continue;
            }
            let pair = v[j] & ((v[j] >> 1) | (v[j + 1] << 63));
            total += weighted(&self.x_same, k as usize, v[j]) + weighted(&self.x_next, k as usize, pair);
        }
        total
    }

    /// Original columns possibly set in both masks of a row class whose input bits are ORed
    /// over the class's rows as `u` and `w`: columns `(a, a)` with `a` set in both, columns
    /// `(a, a + 1)` with `a` or `a + 1` set in each.
    fn count_hi(&self, u: &[u64], w: &[u64], k0: i64) -> u64 {
        let mut total = 0u64;
        for j in 0..u.len() - 1 {
            let k = k0 + j as i64;
            if k < 0 {
                continue;
            }
            let any_u = u[j] | (u[j] >> 1) | (u[j + 1] << 63);
            let any_w = w[j] | (w[j] >> 1) | (w[j + 1] << 63);
            total +=
                weighted(&self.x_same, k as usize, u[j] & w[j]) + weighted(&self.x_next, k as usize, any_u & any_w);
        }
        total
    }
}

/// `sum over set bits a of bits: count[a]`, with the counts as bit planes (word `k`).
#[inline]
fn weighted(planes: &[Vec<u64>], k: usize, bits: u64) -> u64 {
    if bits == 0 {
        return 0;
    }
    planes
        .iter()
        .enumerate()
        .map(|(j, plane)| ((plane.get(k).copied().unwrap_or(0) & bits).count_ones() as u64) << j)
        .sum()
}

/// The crop `scale_masks` applies (ratio_pad=None): `(top, left, height, width)` of the content in
/// an `im1_h x im1_w` grid for an `im0_h x im0_w` target.
fn scale_masks_crop(im1_h: u32, im1_w: u32, im0_h: u32, im0_w: u32) -> (u32, u32, u32, u32) {
    let gain = (im1_h as f64 / im0_h as f64).min(im1_w as f64 / im0_w as f64);
    let nh = round_half_even(im0_h as f64 * gain).max(1);
    let nw = round_half_even(im0_w as f64 * gain).max(1);
    let pad_w = (im1_w as i64 - nw) as f64 / 2.0;
    let pad_h = (im1_h as i64 - nh) as f64 / 2.0;
    let top = round_half_even(pad_h - 0.1).max(0) as u32;
    let left = round_half_even(pad_w - 0.1).max(0) as u32;
    (top, left, (nh as u32).min(im1_h - top), (nw as u32).min(im1_w - left))
}

/// Taps that resize an `im1` grid to `im0` the way `scale_masks` does (crop the padding, then
/// `F.interpolate(size=im0)`), or identity when the sizes already match.
fn scale_masks_taps(im1_h: u32, im1_w: u32, im0_h: u32, im0_w: u32) -> (Vec<Tap>, Vec<Tap>) {
    if (im1_h, im1_w) == (im0_h, im0_w) {
        return (axis_taps(im0_w, im0_w, 1.0, 0), axis_taps(im0_h, im0_h, 1.0, 0));
    }
    let (top, left, ch, cw) = scale_masks_crop(im1_h, im1_w, im0_h, im0_w);
    (axis_taps(im0_w, cw, cw as f32 / im0_w as f32, left), axis_taps(im0_h, ch, ch as f32 / im0_h as f32, top))
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

impl FrameGeometry {
    pub fn new(lb: Letterbox, protos: Protos, retina: bool) -> Self {
        let (mh, mw) = (protos.mh as u32, protos.mw as u32);
        let (iw, ih) = (lb.input_w, lb.input_h);
        let (ow, oh) = (lb.orig_w, lb.orig_h);
        let mut g = FrameGeometry {
            lb,
            protos,
            retina,
            mh,
            mw,
            in_x: Vec::new(),
            in_y: Vec::new(),
            orig_x: Vec::new(),
            orig_y: Vec::new(),
            f: 1,
            g_x: Vec::new(),
            g_y: Vec::new(),
            coarse: CoarseAxes::default(),
        };
        if !retina {
            g.in_x = axis_taps(iw, mw, mw as f32 / iw as f32, 0);
            g.in_y = axis_taps(ih, mh, mh as f32 / ih as f32, 0);
            (g.orig_x, g.orig_y) = scale_masks_taps(ih, iw, oh, ow);
            g.coarse = CoarseAxes::new(&g.orig_x, &g.orig_y, iw, ih);
        } else {
            // process_mask_native: smallest f in {1,2,4} that crops the padding on whole cells
            let gain = (4.0 * mh as f64 / oh as f64).min(4.0 * mw as f64 / ow as f64);
            let ph = 4 * mh as i64 - round_half_even(oh as f64 * gain).max(1);
            let pw = 4 * mw as i64 - round_half_even(ow as f64 * gain).max(1);
            let pad = ph | pw;
            let f = 4 / gcd(4, pad | (pad >> 1)).max(1);
            g.f = f as u32;
            let (gw, gh) = (mw * g.f, mh * g.f);
            if g.f > 1 {
                let s = 1.0 / g.f as f32;
                g.g_x = axis_taps(gw, mw, s, 0);
                g.g_y = axis_taps(gh, mh, s, 0);
            }
            (g.orig_x, g.orig_y) = scale_masks_taps(gh, gw, oh, ow);
        }
        g
    }
}

/// One detection's mask, computed lazily from the frame's prototypes and its coefficients.
#[derive(Debug)]
pub struct ProtoMask {
    geom: Arc<FrameGeometry>,
    coeffs: Vec<f32>,
    /// Prototype cells the box needs: columns `x0..x1`, rows `y0..y1`.
    win: (u32, u32, u32, u32),
    /// Output rectangle: input pixels (retina=false) or original pixels (retina=true).
    rect: PixelRect,
    /// retina=false: the input-size mask ([`ProtoMask::native`]), kept once computed for the
    /// original-size rendering and the [`CoarseMask`] bounds, with those bounds' area.
    native: OnceLock<(RoiBitmap, RowBits)>,
    area_bounds: OnceLock<(u64, u64)>,
}

/// Logits `coeffs · protos` of one prototype row over columns `x0..x0+out.len()`. Channels are
/// accumulated in blocks of 8 per pass, in channel order.
fn logits_row(protos: &Protos, coeffs: &[f32], j: u32, x0: u32, out: &mut [f32]) {
    let w = out.len();
    let plane = protos.mh * protos.mw;
    let nm = protos.nm.min(coeffs.len());
    let data = &protos.data[..];
    let row_of = |k: usize| -> &[f32] {
        let start = k * plane + j as usize * protos.mw + x0 as usize;
        &data[start..start + w]
    };
    out.fill(0.0);
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    let mut k = 0;
    while k + 8 <= nm {
        let c: [f32; 8] = std::array::from_fn(|i| coeffs[k + i]);
        let p: [&[f32]; 8] = std::array::from_fn(|i| row_of(k + i));
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2 is available (checked above).
            unsafe { logits_block8_avx2(&c, &p, out) };
            k += 8;
            continue;
        }
        logits_block8_scalar(&c, &p, out, 0);
        k += 8;
    }
    for (k, &c) in coeffs.iter().enumerate().take(nm).skip(k) {
        for (d, &s) in out.iter_mut().zip(row_of(k)) {
            *d += c * s;
        }
    }
}

/// `out[x] += c[0] * p[0][x]; ...; out[x] += c[7] * p[7][x]` in that order, from column `from`
/// on (every `p[i]` at least as long as `out`).
fn logits_block8_scalar(c: &[f32; 8], p: &[&[f32]; 8], out: &mut [f32], from: usize) {
    for (x, d) in out.iter_mut().enumerate().skip(from) {
        let mut acc = *d;
        acc += c[0] * p[0][x];
        acc += c[1] * p[1][x];
        acc += c[2] * p[2][x];
        acc += c[3] * p[3][x];
        acc += c[4] * p[4][x];
        acc += c[5] * p[5][x];
        acc += c[6] * p[6][x];
        acc += c[7] * p[7][x];
        *d = acc;
    }
}

/// [`logits_block8_scalar`] 8 columns at a time: the same multiplies and adds in the same order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn logits_block8_avx2(c: &[f32; 8], p: &[&[f32]; 8], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = p.iter().map(|r| r.len()).fold(out.len(), usize::min);
    let cv: [__m256; 8] = std::array::from_fn(|i| _mm256_set1_ps(c[i]));
    let mut x = 0;
    while x + 8 <= n {
        // SAFETY: `x + 8 <= n`, at most the length of `out` and of every `p[i]` (unaligned
        // loads and store).
        unsafe {
            let mut acc = _mm256_loadu_ps(out.as_ptr().add(x));
            for (cv, row) in cv.iter().zip(p) {
                acc = _mm256_add_ps(acc, _mm256_mul_ps(*cv, _mm256_loadu_ps(row.as_ptr().add(x))));
            }
            _mm256_storeu_ps(out.as_mut_ptr().add(x), acc);
        }
        x += 8;
    }
    logits_block8_scalar(c, p, out, x);
}

impl RowSource for ProtoMask {
    fn row<'s>(&'s self, j: u32, scratch: &'s mut Vec<f32>) -> &'s [f32] {
        let (x0, x1, _, _) = self.win;
        // Whole blocks of 8 columns where the prototype row has them (the SIMD path has no
        // scalar tail then); the extra columns are computed alike and never read.
        let w = (x1 - x0) as usize;
        let room = self.geom.protos.mw.saturating_sub(x0 as usize);
        scratch.resize(w.next_multiple_of(8).min(room).max(w), 0.0);
        logits_row(&self.geom.protos, &self.coeffs, j, x0, scratch);
        scratch
    }
    fn x0(&self) -> u32 {
        self.win.0
    }
}

impl ProtoMask {
    /// `input_box`: the NMS box in input pixels; `orig_box`: the box scaled to original pixels
    /// (before FastSAM's border adjustment). `coeffs`: the detection's mask coefficients.
    pub fn new(geom: Arc<FrameGeometry>, coeffs: &[f32], input_box: &BBox, orig_box: &BBox) -> Self {
        let lb = geom.lb;
        let (rect, xs, ys): (PixelRect, (u32, u32), (u32, u32));
        if !geom.retina {
            rect = PixelRect::from_box_clamped(
                input_box.x1,
                input_box.y1,
                input_box.x2,
                input_box.y2,
                lb.input_w,
                lb.input_h,
            );
            xs = tap_span(&geom.in_x[rect.x as usize..rect.right() as usize]);
            ys = tap_span(&geom.in_y[rect.y as usize..rect.bottom() as usize]);
        } else {
            rect =
                PixelRect::from_box_clamped(orig_box.x1, orig_box.y1, orig_box.x2, orig_box.y2, lb.orig_w, lb.orig_h);
            let gx = tap_span(&geom.orig_x[rect.x as usize..rect.right() as usize]);
            let gy = tap_span(&geom.orig_y[rect.y as usize..rect.bottom() as usize]);
            if geom.f > 1 {
                xs = tap_span(&geom.g_x[gx.0 as usize..gx.1 as usize]);
                ys = tap_span(&geom.g_y[gy.0 as usize..gy.1 as usize]);
            } else {
                (xs, ys) = (gx, gy);
            }
        }
        ProtoMask {
            geom,
            coeffs: coeffs.to_vec(),
            win: (xs.0, xs.1, ys.0, ys.1),
            rect,
            native: OnceLock::new(),
            area_bounds: OnceLock::new(),
        }
    }

    /// The logits on the whole prototype window, materialised.
    fn logits_grid(&self) -> Grid {
        let (x0, x1, y0, y1) = self.win;
        let w = (x1 - x0) as usize;
        let mut data = vec![0f32; w * (y1 - y0) as usize];
        for (j, row) in (y0..y1).zip(data.chunks_exact_mut(w.max(1))) {
            logits_row(&self.geom.protos, &self.coeffs, j, x0, row);
        }
        Grid { x0, y0, w: x1 - x0, h: y1 - y0, data }
    }

    /// The prototypes of the frame this mask belongs to (shared by all its masks).
    pub fn protos(&self) -> &Protos {
        &self.geom.protos
    }

    /// The output rectangle of [`ProtoMask::native_mask`]: input pixels for retina=false, original
    /// pixels for retina=true.
    pub fn rect(&self) -> PixelRect {
        self.rect
    }

    /// The taps from the row source to the native output grid (input for retina=false, original
    /// for retina=true) over the mask's rectangle, and that grid's size.
    fn native_taps(&self) -> (&[Tap], &[Tap], u32, u32) {
        let g = &*self.geom;
        let r = self.rect;
        if g.retina {
            let (xt, yt) = (&g.orig_x[r.x as usize..r.right() as usize], &g.orig_y[r.y as usize..r.bottom() as usize]);
            (xt, yt, g.lb.orig_w, g.lb.orig_h)
        } else {
            let (xt, yt) = (&g.in_x[r.x as usize..r.right() as usize], &g.in_y[r.y as usize..r.bottom() as usize]);
            (xt, yt, g.lb.input_w, g.lb.input_h)
        }
    }

    /// Resample to the native output grid, feeding each output row to `row_fn` (return false to
    /// stop): through the materialised f-times upsampled logits for retina with `f > 1`, else
    /// straight from the logits rows.
    fn native_rows(&self, row_fn: impl FnMut(usize, RowPair<'_>) -> bool) {
        let g = &*self.geom;
        let (xt, yt, _, _) = self.native_taps();
        if xt.is_empty() || yt.is_empty() {
            return;
        }
        if g.retina && g.f > 1 {
            // materialise the needed window of the f-times upsampled logits
            let (gx0, gx1) = tap_span(xt);
            let (gy0, gy1) = tap_span(yt);
            let mut data = Vec::with_capacity(((gx1 - gx0) * (gy1 - gy0)) as usize);
            let logits = self.logits_grid();
            let mut vals = Vec::new();
            resample_rows(
                &logits,
                &g.g_x[gx0 as usize..gx1 as usize],
                &g.g_y[gy0 as usize..gy1 as usize],
                |_, pair| {
                    pair.values(&mut vals);
                    data.extend_from_slice(&vals);
                    true
                },
            );
            let grid = Grid { x0: gx0, y0: gy0, w: gx1 - gx0, h: gy1 - gy0, data };
            resample_rows(&grid, xt, yt, row_fn);
        } else {
            resample_rows(self, xt, yt, row_fn);
        }
    }

    /// The native mask, thresholded `> 0`, with the same pixels packed as bits.
    fn native(&self) -> (RoiBitmap, RowBits) {
        let (_, _, img_w, img_h) = self.native_taps();
        let r = self.rect;
        let mut roi = RoiBitmap { img_w, img_h, rect: r, data: vec![0; r.area() as usize] };
        let mut bits = RowBits::builder(r);
        if r.is_empty() {
            return (roi, bits.finish());
        }
        let w = r.w as usize;
        let mut rel = vec![0u64; w.div_ceil(64)];
        self.native_rows(|row, pair| {
            pair.threshold(0.0, &mut roi.data[row * w..(row + 1) * w], &mut rel);
            bits.push_row(&rel);
            true
        });
        (roi, bits.finish())
    }

    /// [`ProtoMask::native`], computed once and kept (retina=false: the original-size mask and
    /// the [`CoarseMask`] bounds both start from it).
    fn native_cached(&self) -> &(RoiBitmap, RowBits) {
        self.native.get_or_init(|| self.native())
    }

    /// Whether the mask Ultralytics returns is empty (such detections are dropped).
    pub fn is_empty(&self) -> bool {
        let mut any = false;
        self.native_rows(|_, pair| {
            any = pair.any_above(0.0);
            !any
        });
        !any
    }

    /// The mask exactly as Ultralytics returns it in `result.masks.data`: at the letterboxed input
    /// size for retina=false, at the original size for retina=true.
    pub fn native_mask(&self) -> RoiBitmap {
        self.native().0
    }

    /// The mask at the original image size: `native_mask` for retina=true, `scale_masks(mask) > 0.5`
    /// for retina=false (the mask Ultralytics uses for prompts).
    pub fn orig_mask(&self) -> RoiBitmap {
        self.orig_mask_with_bits().0
    }

    /// [`ProtoMask::orig_mask`] with the same pixels packed as bits (packed while rendering).
    pub fn orig_mask_with_bits(&self) -> (RoiBitmap, RowBits) {
        let g = &*self.geom;
        if g.retina {
            return self.native();
        }
        let (native, _) = self.native_cached();
        let (ow, oh) = (g.lb.orig_w, g.lb.orig_h);
        let empty = || (RoiBitmap::empty(ow, oh), RowBits::default());
        let Some(tight) = native.tight_rect() else {
            return empty();
        };
        // original columns/rows whose taps touch the set pixels (taps are monotonic)
        let range = |taps: &[Tap], lo: u32, hi: u32| -> (u32, u32) {
            let a = taps.partition_point(|t| t.i1 < lo) as u32;
            let b = taps.partition_point(|t| t.i0 < hi) as u32;
            (a, b.max(a))
        };
        let (x0, x1) = range(&g.orig_x, tight.x, tight.right());
        let (y0, y1) = range(&g.orig_y, tight.y, tight.bottom());
        let rect = PixelRect::new(x0, y0, x1 - x0, y1 - y0);
        let mut out = RoiBitmap { img_w: ow, img_h: oh, rect, data: vec![0; rect.area() as usize] };
        if rect.is_empty() {
            return empty();
        }
        let xt = &g.orig_x[x0 as usize..x1 as usize];
        let yt = &g.orig_y[y0 as usize..y1 as usize];
        let (sx0, sx1) = tap_span(xt);
        let (sy0, sy1) = tap_span(yt);
        let mut src = Grid {
            x0: sx0,
            y0: sy0,
            w: sx1 - sx0,
            h: sy1 - sy0,
            data: vec![0.0; ((sx1 - sx0) * (sy1 - sy0)) as usize],
        };
        // copy the set pixels of the native ROI that the taps read
        let nr = native.rect;
        let (cx0, cx1) = (sx0.max(nr.x), sx1.min(nr.right()));
        for y in sy0.max(nr.y)..sy1.min(nr.bottom()) {
            if cx1 <= cx0 {
                break;
            }
            let srow = &native.data[((y - nr.y) * nr.w + (cx0 - nr.x)) as usize..][..(cx1 - cx0) as usize];
            let drow = &mut src.data[((y - sy0) * src.w + (cx0 - sx0)) as usize..][..(cx1 - cx0) as usize];
            for (d, &v) in drow.iter_mut().zip(srow) {
                *d = v as f32;
            }
        }
        let w = rect.w as usize;
        let mut bits = RowBits::builder(rect);
        let mut rel = vec![0u64; w.div_ceil(64)];
        resample_rows(&src, xt, yt, |row, pair| {
            pair.threshold(0.5, &mut out.data[row * w..(row + 1) * w], &mut rel);
            bits.push_row(&rel);
            true
        });
        (out, bits.finish())
    }
}

/// [`MaskSource`] adapter: renders [`ProtoMask::orig_mask`] on first use.
#[derive(Debug, Clone)]
pub struct LazyProtoMask(pub Arc<ProtoMask>);

impl MaskSource for LazyProtoMask {
    fn image_size(&self) -> (u32, u32) {
        (self.0.geom.lb.orig_w, self.0.geom.lb.orig_h)
    }
    fn render_roi(&self) -> RoiBitmap {
        self.0.orig_mask()
    }
    fn render_with_bits(&self) -> (RoiBitmap, Option<RowBits>) {
        let (roi, bits) = self.0.orig_mask_with_bits();
        (roi, Some(bits))
    }
    fn coarse(&self) -> Option<&dyn CoarseMask> {
        (!self.0.geom.retina).then_some(&*self.0 as &dyn CoarseMask)
    }
}

/// retina=false: bounds of the original-size mask from the input-size one (see [`CoarseAxes`]),
/// without the second resampling.
impl CoarseMask for ProtoMask {
    fn area_bounds(&self) -> (u64, u64) {
        *self.area_bounds.get_or_init(|| {
            let bits = &self.native_cached().1;
            self.geom.coarse.pair_bounds(bits, bits).unwrap_or((0, u64::MAX))
        })
    }
    fn intersection_bounds(&self, other: &dyn CoarseMask) -> Option<(u64, u64)> {
        let other = other.as_any().downcast_ref::<ProtoMask>()?;
        if self.geom.retina || !Arc::ptr_eq(&self.geom, &other.geom) {
            return None;
        }
        self.geom.coarse.pair_bounds(&self.native_cached().1, &other.native_cached().1)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod reference;

/// Random frames of FastSAM-like lazy masks for the tests of the mask bounds and of the duplicate
/// suppression that uses them.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::test_rng::Rng;
    use crate::types::Detection;

    /// A retina=false frame (random original and input sizes, smooth or noisy prototypes) with
    /// `n` detections: near-copies of a few objects (coefficients and boxes jittered), so that
    /// their masks overlap as FastSAM's duplicates do, with random scores and original-size boxes.
    pub(crate) fn busy_frame(rng: &mut Rng, n: usize) -> Vec<(Arc<ProtoMask>, BBox, f32)> {
        let (iw, ih) = (32 * (2 + rng.below(9)), 32 * (2 + rng.below(9)));
        let (mw, mh) = ((iw / 4) as usize, (ih / 4) as usize);
        let nm = 8;
        let smooth = rng.below(4) != 0;
        let waves: Vec<[f32; 6]> =
            (0..nm).map(|_| std::array::from_fn(|i| if i < 4 { rng.unit() * 0.4 } else { rng.unit() * 3.2 })).collect();
        let mut data = Vec::with_capacity(nm * mh * mw);
        for w in &waves {
            for y in 0..mh {
                for x in 0..mw {
                    data.push(if smooth {
                        (w[0] * x as f32 + w[4]).cos()
                            + (w[1] * y as f32 + w[5]).cos()
                            + w[2] * (w[3] * (x + y) as f32).sin()
                    } else {
                        rng.unit()
                    });
                }
            }
        }
        let protos = Protos { nm, mh, mw, data: Arc::new(data) };
        let (ow, oh) = (16 + rng.below(700), 16 + rng.below(500));
        let lb = Letterbox::new(ow, oh, iw, ih, false, 32);
        let geom = Arc::new(FrameGeometry::new(lb, protos, false));
        let objects: Vec<(Vec<f32>, [f32; 4])> = (0..1 + rng.below(4))
            .map(|_| {
                let c = (0..nm).map(|_| rng.unit() * 2.0).collect();
                let (x, y) = (rng.fraction() * iw as f32, rng.fraction() * ih as f32);
                let (w, h) = (8.0 + rng.fraction() * iw as f32 * 0.7, 8.0 + rng.fraction() * ih as f32 * 0.7);
                (c, [x - w / 2.0, y - h / 2.0, x + w / 2.0, y + h / 2.0])
            })
            .collect();
        let to_orig = |v: f32, pad: u32| ((v - pad as f32) as f64 / lb.ratio) as f32;
        (0..n)
            .map(|_| {
                let (c, b) = &objects[rng.below(objects.len() as u32) as usize];
                let jitter = [0.0, 0.05, 0.3][rng.below(3) as usize];
                let coeffs: Vec<f32> = c.iter().map(|&v| v + rng.unit() * jitter).collect();
                let d = (b[2] - b[0]).min(b[3] - b[1]) * 0.15;
                let ib = BBox::new(
                    b[0] + rng.unit() * d,
                    b[1] + rng.unit() * d,
                    b[2] + rng.unit() * d,
                    b[3] + rng.unit() * d,
                );
                let (l, t) = (lb.pad_left, lb.pad_top);
                let obox = BBox::new(to_orig(ib.x1, l), to_orig(ib.y1, t), to_orig(ib.x2, l), to_orig(ib.y2, t));
                (Arc::new(ProtoMask::new(geom.clone(), &coeffs, &ib, &obox)), obox, rng.fraction())
            })
            .collect()
    }

    /// [`busy_frame`] as detections with lazily rendered masks.
    pub(crate) fn busy_detections(rng: &mut Rng, n: usize) -> Vec<Detection> {
        busy_frame(rng, n)
            .into_iter()
            .map(|(m, bbox, score)| Detection {
                bbox,
                score,
                class_id: 0,
                mask: Some(crate::mask::Mask::lazy(Box::new(LazyProtoMask(m)))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: full bilinear upsample of a whole grid (direct formula, no caching).
    fn brute(src: &[f32], sw: usize, sh: usize, ow: usize, oh: usize) -> Vec<f32> {
        let xt = axis_taps(ow as u32, sw as u32, sw as f32 / ow as f32, 0);
        let yt = axis_taps(oh as u32, sh as u32, sh as f32 / oh as f32, 0);
        let mut out = vec![0f32; ow * oh];
        for (y, ty) in yt.iter().enumerate() {
            for (x, tx) in xt.iter().enumerate() {
                let v = |j: u32, i: u32| src[j as usize * sw + i as usize];
                out[y * ow + x] = ty.l0 * (tx.l0 * v(ty.i0, tx.i0) + tx.l1 * v(ty.i0, tx.i1))
                    + ty.l1 * (tx.l0 * v(ty.i1, tx.i0) + tx.l1 * v(ty.i1, tx.i1));
            }
        }
        out
    }

    #[test]
    fn taps_match_pytorch_formula() {
        // upsample 2 -> 8 (x4): src = (d+0.5)/4-0.5, clamped at 0; last index clamps to input-1
        let t = axis_taps(8, 2, 0.25, 0);
        assert_eq!((t[0].i0, t[0].i1, t[0].l1), (0, 1, 0.0));
        assert_eq!((t[2].i0, t[2].l1), (0, 0.125));
        // d=7: src = 1.375 -> i0 = 1 = last index, so i1 = i0
        assert_eq!((t[7].i0, t[7].i1, t[7].l1), (1, 1, 0.375));
    }

    #[test]
    fn windowed_resampling_equals_full_resampling() {
        let (sw, sh) = (10usize, 7usize);
        let src: Vec<f32> = (0..sw * sh).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
        let (ow, oh) = (40usize, 28usize);
        let full = brute(&src, sw, sh, ow, oh);
        let xt = axis_taps(ow as u32, sw as u32, 0.25, 0);
        let yt = axis_taps(oh as u32, sh as u32, 0.25, 0);
        let (x0, x1, y0, y1) = (7usize, 33usize, 3usize, 25usize);
        let (sx, sy) = (tap_span(&xt[x0..x1]), tap_span(&yt[y0..y1]));
        let mut g = Grid { x0: sx.0, y0: sy.0, w: sx.1 - sx.0, h: sy.1 - sy.0, data: Vec::new() };
        for j in sy.0..sy.1 {
            for i in sx.0..sx.1 {
                g.data.push(src[j as usize * sw + i as usize]);
            }
        }
        let mut rows = 0;
        let mut vals = Vec::new();
        resample_rows(&g, &xt[x0..x1], &yt[y0..y1], |r, pair| {
            pair.values(&mut vals);
            assert_eq!(vals, &full[(y0 + r) * ow + x0..(y0 + r) * ow + x1]);
            rows += 1;
            true
        });
        assert_eq!(rows, y1 - y0);
    }

    fn protos() -> Protos {
        Protos { nm: 1, mh: 160, mw: 160, data: Arc::new(vec![0.0; 160 * 160]) }
    }

    #[test]
    fn native_factor_follows_padding() {
        // 810x1080 on 160x160 protos: padding 160 input px (40 proto cells) -> f = 1
        let lb = Letterbox::new(810, 1080, 640, 640, false, 32);
        assert_eq!(FrameGeometry::new(lb, protos(), true).f, 1);
        // 100x98 -> 640: content 640x627, padding 13 -> odd -> f = 4
        let lb = Letterbox::new(100, 98, 640, 640, false, 32);
        assert_eq!(FrameGeometry::new(lb, protos(), true).f, 4);
        // padding 2 input px (0.5 proto cell) -> f = 2... 4*160 - 638 = 2: 2 | 1 = 3 -> gcd 1 -> f = 4
        // padding 8 -> 8|4 = 12 -> gcd 4 -> f = 1; padding 2*odd... 6 | 3 = 7 -> f = 4; 4 | 2 = 6 -> gcd 2 -> f = 2
        let lb = Letterbox::new(640, 636, 640, 640, false, 32);
        assert_eq!(FrameGeometry::new(lb, protos(), true).f, 2);
    }

    /// Independent reference: PyTorch `F.interpolate(bilinear, align_corners=False)` written out
    /// directly, with explicit scales.
    fn interp(src: &[f32], sw: usize, sh: usize, ow: usize, oh: usize, scale_x: f32, scale_y: f32) -> Vec<f32> {
        let tap = |d: usize, inp: usize, scale: f32| {
            let s = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(inp - 1);
            let i1 = if i0 < inp - 1 { i0 + 1 } else { i0 };
            let l1 = (s - i0 as f32).clamp(0.0, 1.0);
            (i0, i1, 1.0 - l1, l1)
        };
        let mut out = vec![0f32; ow * oh];
        for y in 0..oh {
            let (y0, y1, h0, h1) = tap(y, sh, scale_y);
            for x in 0..ow {
                let (x0, x1, w0, w1) = tap(x, sw, scale_x);
                let v = |j: usize, i: usize| src[j * sw + i];
                out[y * ow + x] = h0 * (w0 * v(y0, x0) + w1 * v(y0, x1)) + h1 * (w0 * v(y1, x0) + w1 * v(y1, x1));
            }
        }
        out
    }

    /// Full-frame Ultralytics pipeline (all logits, full upsampling, crop) against the windowed
    /// lazy masks, for retina on (with the f = 4 pre-upsample branch) and off.
    #[test]
    fn windowed_masks_equal_full_frame_reference() {
        let (nm, mh, mw) = (4usize, 16usize, 16usize);
        let mut seed = 12345u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let data: Vec<f32> = (0..nm * mh * mw).map(|_| rnd()).collect();
        let coeffs: Vec<f32> = (0..nm).map(|_| rnd() * 4.0).collect();
        let protos = Protos { nm, mh, mw, data: Arc::new(data.clone()) };
        let (ow, oh) = (100usize, 98usize);
        let lb = Letterbox::new(ow as u32, oh as u32, 64, 64, false, 32);
        assert_eq!((lb.new_w, lb.new_h, lb.pad_top, lb.pad_bottom), (64, 63, 0, 1));
        let logits: Vec<f32> =
            (0..mh * mw).map(|c| (0..nm).fold(0f32, |acc, k| acc + coeffs[k] * data[k * mh * mw + c])).collect();
        let in_box = BBox::new(3.3, 10.0, 50.7, 60.2);
        let orig_box = BBox::new(5.2, 15.5, 79.9, 93.0);
        let crop = |m: &mut Vec<u8>, w: usize, b: &BBox| {
            for (i, v) in m.iter_mut().enumerate() {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                if !(x >= b.x1 && x < b.x2 && y >= b.y1 && y < b.y2) {
                    *v = 0;
                }
            }
        };

        // retina=false: upsample logits to 64x64, > 0, crop with the input box
        let up = interp(&logits, mw, mh, 64, 64, 0.25, 0.25);
        let mut want: Vec<u8> = up.iter().map(|&v| (v > 0.0) as u8).collect();
        crop(&mut want, 64, &in_box);
        let geom = Arc::new(FrameGeometry::new(lb, protos.clone(), false));
        let m = ProtoMask::new(geom, &coeffs, &in_box, &orig_box);
        assert_eq!(m.native_mask().to_full().data, want);
        // original size: crop the padding rows (content 63x64 at top 0), resize, > 0.5
        let content: Vec<f32> = want[..63 * 64].iter().map(|&v| v as f32).collect();
        let big = interp(&content, 64, 63, ow, oh, 64.0 / ow as f32, 63.0 / oh as f32);
        let want_orig: Vec<u8> = big.iter().map(|&v| (v > 0.5) as u8).collect();
        assert_eq!(m.orig_mask().to_full().data, want_orig);
        assert!(want_orig.contains(&1) && want_orig.contains(&0));

        // retina=true: f = 4 (1 px of padding = 1/4 prototype cell)
        let geom = Arc::new(FrameGeometry::new(lb, protos, true));
        assert_eq!(geom.f, 4);
        let g = interp(&logits, mw, mh, 64, 64, 0.25, 0.25);
        // scale_masks on the 64x64 grid for 98x100: content 63x64 at (0, 0)
        let content: Vec<f32> = g[..63 * 64].to_vec();
        let big = interp(&content, 64, 63, ow, oh, 64.0 / ow as f32, 63.0 / oh as f32);
        let mut want: Vec<u8> = big.iter().map(|&v| (v > 0.0) as u8).collect();
        crop(&mut want, ow, &orig_box);
        let m = ProtoMask::new(geom, &coeffs, &in_box, &orig_box);
        assert_eq!(m.native_mask().to_full().data, want);
        assert_eq!(m.orig_mask().to_full().data, want);
        assert!(want.contains(&1) && !m.is_empty());
    }

    use crate::test_rng::Rng;

    /// Bit patterns, every NaN as one (Rust leaves a NaN's sign and payload unspecified, and
    /// the threshold treats every NaN alike).
    fn bit_patterns(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| if v.is_nan() { f32::NAN.to_bits() } else { v.to_bits() }).collect()
    }

    /// The SIMD kernels against their scalar forms on random rows with zeros of both signs,
    /// denormals, infinities and NaN: the same bits (up to NaN payloads), whatever the length
    /// (tails included).
    #[test]
    fn kernels_equal_scalar_code() {
        let mut rng = Rng(0x5eed_1234_abcd_0042);
        for case in 0..300 {
            let n = rng.below(150) as usize;
            let a: Vec<f32> = (0..n + 3).map(|_| rng.special()).collect();
            let b: Vec<f32> = (0..n + 3).map(|_| rng.special()).collect();
            let l1 = [0.0, 1.0, 0.5, 0.375, rng.unit().abs()][rng.below(5) as usize];
            let (l0, thr) = (1.0 - l1, [0.0, 0.5, -0.0][rng.below(3) as usize]);
            let (mut out, mut bits) = (vec![9u8; n], vec![!0u64; n.div_ceil(64) + 1]);
            threshold_row(&a, &b, l0, l1, thr, &mut out, &mut bits);
            let want: Vec<u8> = (0..n).map(|x| (l0 * a[x] + l1 * b[x] > thr) as u8).collect();
            assert_eq!(out, want, "case {case}: bytes");
            let want_bits: Vec<u64> = (0..n.div_ceil(64))
                .map(|k| (0..64).filter(|i| k * 64 + i < n && want[k * 64 + i] == 1).fold(0, |acc, i| acc | 1 << i))
                .collect();
            assert_eq!(bits[..n.div_ceil(64)], want_bits, "case {case}: bits");

            // horizontal taps: random (even out-of-order) indices into a row
            let row: Vec<f32> = (0..1 + rng.below(60)).map(|_| rng.special()).collect();
            let sx0 = rng.below(5);
            let taps: Vec<Tap> = (0..n)
                .map(|_| {
                    let l1 = rng.unit().abs();
                    let i0 = sx0 + rng.below(row.len() as u32);
                    Tap { i0, i1: sx0 + rng.below(row.len() as u32), l0: 1.0 - l1, l1 }
                })
                .collect();
            let h = HTaps::new(&taps, sx0);
            let mut got = vec![0f32; n];
            h.apply(&row, &mut got);
            let want: Vec<f32> =
                taps.iter().map(|t| t.l0 * row[(t.i0 - sx0) as usize] + t.l1 * row[(t.i1 - sx0) as usize]).collect();
            assert_eq!(bit_patterns(&got), bit_patterns(&want), "case {case}: taps");

            // 8-channel logits block
            let c: [f32; 8] = std::array::from_fn(|_| rng.special());
            let rows: Vec<Vec<f32>> = (0..8).map(|_| (0..n).map(|_| rng.special()).collect()).collect();
            let p: [&[f32]; 8] = std::array::from_fn(|i| &rows[i][..]);
            let init: Vec<f32> = (0..n).map(|_| rng.special()).collect();
            let (mut fast, mut slow) = (init.clone(), init);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is available (checked just above).
                unsafe { logits_block8_avx2(&c, &p, &mut fast) };
            }
            logits_block8_scalar(&c, &p, &mut slow, 0);
            assert_eq!(bit_patterns(&fast), bit_patterns(&slow), "case {case}: logits");
        }
    }

    /// The rendering against the scalar implementation it replaced (kept in `reference`), on
    /// random prototypes, coefficients, image sizes and boxes, retina on (every pre-upsample
    /// factor) and off: the same bytes, the same packed bits, the same emptiness.
    #[test]
    fn fast_rendering_equals_reference_on_random_masks() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut factors = [0usize; 5];
        let (mut set_px, mut empty) = (0u64, 0usize);
        for case in 0..240 {
            // input 32..=160 px a side (multiples of 32), prototypes at 1/4
            let (iw, ih) = (32 * (1 + rng.below(5)), 32 * (1 + rng.below(5)));
            let (mw, mh) = ((iw / 4) as usize, (ih / 4) as usize);
            let nm = [32usize, 37, 5, 8][rng.below(4) as usize];
            let data: Vec<f32> = (0..nm * mh * mw).map(|_| if rng.below(50) == 0 { 0.0 } else { rng.unit() }).collect();
            let protos = Protos { nm, mh, mw, data: Arc::new(data) };
            let (ow, oh) = (8 + rng.below(400), 8 + rng.below(300));
            let lb = Letterbox::new(ow, oh, iw, ih, false, 32);
            let retina = rng.below(3) != 0;
            let geom = Arc::new(FrameGeometry::new(lb, protos, retina));
            factors[geom.f as usize] += 1;
            for _ in 0..6 {
                let coeffs: Vec<f32> = (0..nm).map(|_| rng.unit() * 3.0).collect();
                let bx = |w: u32, r: &mut Rng| {
                    let a = r.unit() * 0.2 * w as f32 + r.below(w) as f32;
                    let b = a + r.unit().abs() * w as f32 * 0.8;
                    (a, b)
                };
                let (ix1, ix2) = bx(lb.input_w, &mut rng);
                let (iy1, iy2) = bx(lb.input_h, &mut rng);
                let (ox1, ox2) = bx(ow, &mut rng);
                let (oy1, oy2) = bx(oh, &mut rng);
                let m = ProtoMask::new(
                    geom.clone(),
                    &coeffs,
                    &BBox::new(ix1, iy1, ix2, iy2),
                    &BBox::new(ox1, oy1, ox2, oy2),
                );
                assert_eq!(m.native_mask(), reference::native_mask(&m), "case {case}: native mask");
                let (roi, bits) = m.orig_mask_with_bits();
                let (want_roi, want_bits) = reference::orig_mask(&m);
                assert_eq!(roi, want_roi, "case {case}: original-size mask");
                assert_eq!(bits, want_bits, "case {case}: packed bits");
                assert_eq!(m.is_empty(), reference::is_empty(&m), "case {case}: emptiness");
                // through the lazy `Mask`: the bits packed while rendering are the ones `bits`
                // hands out, equal to packing the rendered bytes
                let lazy = crate::mask::Mask::lazy(Box::new(LazyProtoMask(Arc::new(m))));
                assert_eq!(lazy.bits(), &RowBits::from_roi(lazy.roi()), "case {case}: lazy bits");
                set_px += bits.area();
                empty += want_roi.data.iter().all(|&v| v == 0) as usize;
            }
        }
        // the cases cover every pre-upsample factor, set pixels and empty masks
        assert!(factors[1] > 0 && factors[2] > 0 && factors[4] > 0, "factors {factors:?}");
        assert!(set_px > 100_000 && empty > 10, "{set_px} set pixels, {empty} empty masks");
    }

    /// [`CoarseAxes::pair_bounds`] pixel by pixel: original pixels whose (up to) 2x2 input taps
    /// are all set in both masks, and those with a tap set in each.
    fn brute_bounds(p: &ProtoMask, q: &ProtoMask) -> (u64, u64) {
        let g = &*p.geom;
        let (np, nq) = (p.native_mask(), q.native_mask());
        let (mut lo, mut hi) = (0, 0);
        for ty in &g.orig_y {
            for tx in &g.orig_x {
                let taps = [(tx.i0, ty.i0), (tx.i1, ty.i0), (tx.i0, ty.i1), (tx.i1, ty.i1)];
                let all = |m: &RoiBitmap| taps.iter().all(|&(x, y)| m.get(x, y));
                let any = |m: &RoiBitmap| taps.iter().any(|&(x, y)| m.get(x, y));
                lo += (all(&np) && all(&nq)) as u64;
                hi += (any(&np) && any(&nq)) as u64;
            }
        }
        (lo, hi)
    }

    /// The bounds of the original-size masks' pixel counts (area, pair intersections) that
    /// duplicate suppression uses before rendering hold against the rendered masks' exact counts,
    /// on random frames; they are tight enough to matter, and masks of another frame or with
    /// retina masks get none.
    #[test]
    fn coarse_bounds_hold_for_rendered_masks() {
        let mut rng = Rng(0xb0d5_0fc0_a25e);
        let (mut inter_lo, mut inter_exact, mut slack, mut total) = (0u64, 0u64, 0u64, 0u64);
        let mut prev: Option<Arc<ProtoMask>> = None;
        for case in 0..150 {
            let dets = testing::busy_frame(&mut rng, 6);
            let exact: Vec<RowBits> = dets.iter().map(|(m, _, _)| m.orig_mask_with_bits().1).collect();
            for (i, (m, _, _)) in dets.iter().enumerate() {
                let (lo, hi) = m.area_bounds();
                assert_eq!((lo, hi), brute_bounds(m, m), "case {case}, mask {i}: area bounds");
                let a = exact[i].area();
                assert!(lo <= a && a <= hi, "case {case}, mask {i}: area {a} outside [{lo}, {hi}]");
                slack += hi - lo;
                total += a;
                for (j, (n, _, _)) in dets.iter().enumerate() {
                    let (lo, hi) = m.intersection_bounds(&**n as &dyn CoarseMask).expect("same frame");
                    let x = exact[i].intersection(&exact[j]);
                    if j % 2 == 0 {
                        assert_eq!((lo, hi), brute_bounds(m, n), "case {case}, masks {i} {j}: bounds");
                    }
                    assert!(lo <= x && x <= hi, "case {case}, masks {i} {j}: intersection {x} outside [{lo}, {hi}]");
                    if i != j {
                        inter_lo += lo;
                        inter_exact += x;
                    }
                }
                if let Some(p) = &prev {
                    assert!(m.intersection_bounds(&**p as &dyn CoarseMask).is_none(), "another frame's mask compared");
                }
            }
            prev = dets.first().map(|d| d.0.clone());
        }
        // Non-trivial: the lower bounds hold most of the shared pixels, and the area bounds'
        // width is a small part of the areas.
        eprintln!("intersections: lower bounds {inter_lo} of {inter_exact}; areas: bounds {slack} wide for {total}");
        assert!(inter_lo * 3 > inter_exact * 2, "lower bounds {inter_lo} of {inter_exact} shared pixels");
        assert!(slack * 3 < total, "bounds {slack} wide for {total} set pixels");
        // retina masks render at the original size directly: no bounds
        let protos = Protos { nm: 1, mh: 8, mw: 8, data: Arc::new(vec![1.0; 64]) };
        let geom = Arc::new(FrameGeometry::new(Letterbox::new(40, 40, 32, 32, false, 32), protos, true));
        let b = BBox::new(2.0, 2.0, 20.0, 20.0);
        let lazy = LazyProtoMask(Arc::new(ProtoMask::new(geom, &[1.0], &b, &b)));
        assert!(lazy.coarse().is_none());
    }
}
