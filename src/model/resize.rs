//! Bilinear resize of 8-bit, 3-channel images, bit-exact with OpenCV 4.6's
//! `cv::resize(..., INTER_LINEAR)` (what Ultralytics' letterbox calls), in pure Rust.
//!
//! OpenCV's 8-bit path is fixed point (`modules/imgproc/src/resize.cpp`, `resizeGeneric_` with
//! `HResizeLinear<uchar,int,short,2048>` and the `VResizeLinear<uchar,int,short,FixedPtCast<int,uchar,22>>`
//! specialisation):
//! - source coordinates `f = (float)((d + 0.5) * scale - 0.5)` in double, rounded to float, with
//!   `scale = 1 / (dst / src)`; `s = floor(f)`, `f -= s`;
//! - coefficients `saturate_cast<short>((1 - f) * 2048)` and `saturate_cast<short>(f * 2048)`
//!   (round half to even);
//! - horizontally, `s < 0` becomes `s = 0, f = 0` and `s >= w - 1` becomes `s = w - 1, f = 0`;
//!   vertically the coefficients are kept and the two source rows are clamped to `[0, h - 1]`;
//! - the horizontal pass keeps `int` sums (`S[s] * a0 + S[s + 1] * a1`, scale 2^11);
//! - the vertical pass is `(((b0 * (R0 >> 4)) >> 16) + ((b1 * (R1 >> 4)) >> 16) + 2) >> 2`: the
//!   form of OpenCV's SIMD kernel (`v_mul_hi` on 16-bit lanes, `v_rshr_pack_u<2>`), which its scalar
//!   tail copies so that every pixel is computed the same way (the test against OpenCV below covers
//!   widths with and without a SIMD tail).
//!
//! OpenCV switches an exact 2x downscale to `INTER_AREA` (`(a + b + c + d + 2) >> 2`); the
//! fixed-point linear kernel gives the same values there (coefficients 1024/1024), so no special
//! case is needed. Same size is a copy.
//!
//! Coefficient tables are computed once per `(src, dst)` size pair and cached (a few pairs, for
//! batches of mixed sizes); the row buffers are reused, so a steady stream does not allocate.

use super::ModelError;
use super::letterbox::check_view;
use crate::types::ImageView;

/// Coefficient tables of one `(src_w, src_h) -> (dst_w, dst_h)` size pair.
#[derive(Debug)]
struct Tables {
    key: (u32, u32, u32, u32),
    /// Per destination pixel: byte offset of the first of the two (adjacent) source pixels; when
    /// the source is 1 pixel wide both taps read pixel 0.
    xofs: Vec<u32>,
    alpha: Vec<[i32; 2]>,
    /// Per destination row: the two source rows (clamped) and their coefficients.
    yofs: Vec<[u32; 2]>,
    beta: Vec<[i16; 2]>,
}

fn coefs(f: f32) -> [i32; 2] {
    let c = |v: f32| (v * 2048.0).round_ties_even().clamp(i16::MIN as f32, i16::MAX as f32) as i32;
    [c(1.0 - f), c(f)]
}

/// `(d + 0.5) * scale - 0.5` as OpenCV computes it, split into `(floor, fraction)`.
fn source_coord(d: u32, scale: f64) -> (i64, f32) {
    let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
    let s = f.floor();
    (s as i64, f - s)
}

impl Tables {
    fn new(sw: u32, sh: u32, dw: u32, dh: u32) -> Tables {
        let scale_x = 1.0 / (dw as f64 / sw as f64);
        let scale_y = 1.0 / (dh as f64 / sh as f64);
        let mut xofs = Vec::with_capacity(dw as usize);
        let mut alpha = Vec::with_capacity(dw as usize);
        for dx in 0..dw {
            let (mut sx, mut fx) = source_coord(dx, scale_x);
            if sx < 0 {
                (sx, fx) = (0, 0.0);
            }
            if sx >= sw as i64 - 1 {
                (sx, fx) = (sw as i64 - 1, 0.0);
            }
            let mut a = coefs(fx);
            let mut sx = sx as u32;
            // At the right edge the second tap has weight 0 (`a = [2048, 0]`): read the pair
            // (w-2, w-1) with the weights swapped instead, so that every pair is two adjacent
            // in-bounds pixels. Same integer sum.
            if sx + 1 >= sw && sw >= 2 {
                sx = sw - 2;
                a = [a[1], a[0]];
            }
            xofs.push(sx * 3);
            alpha.push(a);
        }
        let mut yofs = Vec::with_capacity(dh as usize);
        let mut beta = Vec::with_capacity(dh as usize);
        let clip = |y: i64| y.clamp(0, sh as i64 - 1) as u32;
        for dy in 0..dh {
            let (sy, fy) = source_coord(dy, scale_y);
            yofs.push([clip(sy), clip(sy + 1)]);
            let [b0, b1] = coefs(fy);
            beta.push([b0 as i16, b1 as i16]);
        }
        Tables { key: (sw, sh, dw, dh), xofs, alpha, yofs, beta }
    }
}

/// How many size pairs keep their tables.
const CACHED_SIZES: usize = 4;

/// Reusable OpenCV-exact `INTER_LINEAR` resizer for 8-bit, 3-channel images.
#[derive(Debug, Default)]
pub struct LinearResizer {
    /// Most recently used first.
    tables: Vec<Tables>,
    /// Horizontally resized source rows (sums at scale 2^11, shifted right by 4, as OpenCV's
    /// vertical pass uses them) and which source row each holds.
    rows: [Vec<i16>; 2],
    row_of: [Option<u32>; 2],
    out: Vec<u8>,
}

impl LinearResizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Move the tables of `key` to the front (computing them if needed).
    fn select_tables(&mut self, key: (u32, u32, u32, u32)) {
        if let Some(i) = self.tables.iter().position(|t| t.key == key) {
            if i != 0 {
                let t = self.tables.remove(i);
                self.tables.insert(0, t);
            }
        } else {
            if self.tables.len() >= CACHED_SIZES {
                self.tables.pop();
            }
            self.tables.insert(0, Tables::new(key.0, key.1, key.2, key.3));
        }
    }

    /// Resize `src` to `dst_w x dst_h`, calling `row(y, pixels)` for every destination row in order
    /// (`3 * dst_w` bytes, same channel order as the source). An empty or inconsistent view, or an
    /// empty destination, is an error.
    pub fn resize_rows(
        &mut self,
        src: &ImageView<'_>,
        dst_w: u32,
        dst_h: u32,
        mut row: impl FnMut(usize, &[u8]),
    ) -> Result<(), ModelError> {
        check_view(src)?;
        if dst_w == 0 || dst_h == 0 {
            return Err(ModelError::Preprocess(format!("cannot resize to an empty {dst_w}x{dst_h} image")));
        }
        let (sw, sh) = (src.width, src.height);
        if (sw, sh) == (dst_w, dst_h) {
            for y in 0..sh {
                row(y as usize, src.row(y));
            }
            return Ok(());
        }
        self.select_tables((sw, sh, dst_w, dst_h));
        let t = &self.tables[0];
        let n = dst_w as usize * 3;
        for r in &mut self.rows {
            r.resize(n, 0);
        }
        self.out.resize(n, 0);
        self.row_of = [None, None];
        for (dy, (ys, b)) in t.yofs.iter().zip(&t.beta).enumerate() {
            // rows[k] must hold source row ys[k]; reuse what the previous output row computed
            let [y0, y1] = *ys;
            if self.row_of[0] != Some(y0) {
                if self.row_of[1] == Some(y0) {
                    self.rows.swap(0, 1);
                    self.row_of.swap(0, 1);
                } else {
                    hresize(src.row(y0), sw, t, &mut self.rows[0]);
                    self.row_of[0] = Some(y0);
                }
            }
            if self.row_of[1] != Some(y1) {
                if y1 == y0 {
                    let (a, b) = self.rows.split_at_mut(1);
                    b[0].copy_from_slice(&a[0]);
                } else {
                    hresize(src.row(y1), sw, t, &mut self.rows[1]);
                }
                self.row_of[1] = Some(y1);
            }
            vresize(&self.rows[0], &self.rows[1], *b, &mut self.out);
            row(dy, &self.out);
        }
        Ok(())
    }

    /// Resize `src` into `dst` (packed `dst_w x dst_h`, resized to fit).
    pub fn resize(&mut self, src: &ImageView<'_>, dst_w: u32, dst_h: u32, dst: &mut Vec<u8>) -> Result<(), ModelError> {
        let n = dst_w as usize * 3;
        dst.resize(n * dst_h as usize, 0);
        self.resize_rows(src, dst_w, dst_h, |y, px| dst[y * n..(y + 1) * n].copy_from_slice(px))
    }
}

/// Horizontal pass of one source row into `d` (`3 * dst_w` values): OpenCV's exact integer sums
/// `S[x] * a0 + S[x + 1] * a1` (scale 2^11), stored shifted right by 4 (what the vertical pass
/// reads; the sums are non-negative and below 2^20, so the result fits 16 bits).
fn hresize(s: &[u8], sw: u32, t: &Tables, d: &mut [i16]) {
    let (xofs, alpha) = (&t.xofs[..], &t.alpha[..]);
    let (d3, _) = d.as_chunks_mut::<3>();
    if sw < 2 {
        for (a, d) in alpha.iter().zip(d3) {
            let w = a[0] + a[1];
            for c in 0..3 {
                d[c] = ((s[c] as i32 * w) >> 4) as i16;
            }
        }
        return;
    }
    // (wrapping arithmetic: the values never overflow; this keeps overflow checks of debug/test
    // builds out of the per-pixel loop)
    let mac = |p0: u8, p1: u8, a0: i32, a1: i32| {
        ((p0 as i32).wrapping_mul(a0).wrapping_add((p1 as i32).wrapping_mul(a1)) >> 4) as i16
    };
    for ((&x, a), d) in xofs.iter().zip(alpha).zip(d3) {
        let x = x as usize;
        let Some(p) = s.get(x..x + 6) else { continue };
        let (a0, a1) = (a[0], a[1]);
        d[0] = mac(p[0], p[3], a0, a1);
        d[1] = mac(p[1], p[4], a0, a1);
        d[2] = mac(p[2], p[5], a0, a1);
    }
}

/// Vertical pass: OpenCV's `VResizeLinear<uchar, int, short, FixedPtCast<int, uchar, 22>>`,
/// `(((b0 * (R0 >> 4)) >> 16) + ((b1 * (R1 >> 4)) >> 16) + 2) >> 2`, in 16-bit lanes like its SIMD
/// kernel (`v_mul_hi`, `v_rshr_pack_u<2>`).
fn vresize(r0: &[i16], r1: &[i16], b: [i16; 2], out: &mut [u8]) {
    // `mul_hi` of two 16-bit values fits 16 bits: this form vectorises to `pmulhw`
    let mul_hi = |a: i16, b: i16| ((a as i32 * b as i32) >> 16) as i16;
    let (b0, b1) = (b[0], b[1]);
    for ((o, &s0), &s1) in out.iter_mut().zip(r0).zip(r1) {
        let v = mul_hi(b0, s0).wrapping_add(mul_hi(b1, s1));
        *o = (v.wrapping_add(2) >> 2).clamp(0, 255) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PixelFormat;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn constant_images_stay_constant_and_same_size_is_a_copy() {
        let mut r = LinearResizer::new();
        for (sw, sh, dw, dh) in [(10, 7, 33, 5), (640, 360, 320, 180), (5, 5, 1, 1), (3, 9, 640, 17)] {
            for v in [0u8, 1, 114, 254, 255] {
                let src = vec![v; sw * sh * 3];
                let img = ImageView::packed(sw as u32, sh as u32, PixelFormat::Rgb8, &src).unwrap();
                let mut out = Vec::new();
                r.resize(&img, dw, dh, &mut out).unwrap();
                assert!(out.iter().all(|&p| p == v), "{sw}x{sh}->{dw}x{dh} value {v}");
            }
        }
        let src = noise(13 * 11 * 3, 1);
        let img = ImageView::packed(13, 11, PixelFormat::Rgb8, &src).unwrap();
        let mut out = Vec::new();
        r.resize(&img, 13, 11, &mut out).unwrap();
        assert_eq!(out, src);
        // bad inputs are errors, not panics
        assert!(r.resize(&img, 0, 3, &mut out).is_err());
        let bad = ImageView { width: 4, height: 4, stride: 12, format: PixelFormat::Rgb8, data: &src[..40] };
        assert!(r.resize(&bad, 2, 2, &mut out).is_err());
    }

    #[test]
    fn exact_half_is_the_rounded_mean_of_2x2() {
        let (sw, sh) = (14usize, 10usize);
        let src = noise(sw * sh * 3, 7);
        let img = ImageView::packed(sw as u32, sh as u32, PixelFormat::Rgb8, &src).unwrap();
        let mut out = Vec::new();
        LinearResizer::new().resize(&img, 7, 5, &mut out).unwrap();
        for y in 0..5 {
            for x in 0..7 {
                for c in 0..3 {
                    let p = |yy: usize, xx: usize| src[(yy * sw + xx) * 3 + c] as u32;
                    let want =
                        (p(2 * y, 2 * x) + p(2 * y, 2 * x + 1) + p(2 * y + 1, 2 * x) + p(2 * y + 1, 2 * x + 1) + 2)
                            >> 2;
                    assert_eq!(out[(y * 7 + x) * 3 + c] as u32, want);
                }
            }
        }
    }

    /// Bit-exact with OpenCV's own `resize(INTER_LINEAR)` (the library the goldens were made with)
    /// over many size pairs: up- and down-scaling, odd sizes, 1-pixel edges, exact 2x, strides.
    #[cfg(feature = "overlay")]
    #[test]
    fn bit_exact_with_opencv_inter_linear() {
        use opencv::core::{Mat, MatTraitConstManual, Size};

        let mut pairs: Vec<(u32, u32, u32, u32)> = vec![
            (1, 1, 7, 5),
            (7, 5, 1, 1),
            (1, 9, 4, 3),
            (9, 1, 3, 4),
            (2, 2, 1, 1),
            (640, 360, 320, 180),
            (1280, 720, 640, 360),
            (810, 1080, 480, 640),
            (548, 342, 320, 200),
            (176, 144, 320, 262),
            (3, 3, 640, 640),
            (1920, 1080, 320, 180),
            (101, 77, 203, 155),
            (640, 480, 639, 479),
        ];
        let mut s = 0x2545F4914F6CDD1Du64;
        let mut next = |m: u32| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % m as u64) as u32 + 1
        };
        while pairs.len() < 240 {
            let (sw, sh) = (next(700), next(500));
            let (dw, dh) = if pairs.len().is_multiple_of(3) { (next(64), next(64)) } else { (next(700), next(500)) };
            pairs.push((sw, sh, dw, dh));
        }
        let mut r = LinearResizer::new();
        let mut out = Vec::new();
        for (i, &(sw, sh, dw, dh)) in pairs.iter().enumerate() {
            // every other case has a padded stride
            let stride = sw as usize * 3 + if i % 2 == 0 { 0 } else { 5 };
            let data = noise(stride * sh as usize, i as u64);
            let img = ImageView { width: sw, height: sh, stride, format: PixelFormat::Bgr8, data: &data };
            // SAFETY: the Mat only borrows `data` during this iteration.
            let src = unsafe {
                Mat::new_rows_cols_with_data_unsafe(
                    sh as i32,
                    sw as i32,
                    opencv::core::CV_8UC3,
                    data.as_ptr() as *mut std::ffi::c_void,
                    stride,
                )
            }
            .unwrap();
            let mut want = Mat::default();
            opencv::imgproc::resize(
                &src,
                &mut want,
                Size::new(dw as i32, dh as i32),
                0.0,
                0.0,
                opencv::imgproc::INTER_LINEAR,
            )
            .unwrap();
            let want = want.data_bytes().unwrap();
            r.resize(&img, dw, dh, &mut out).unwrap();
            let diff = out.iter().zip(want).filter(|(a, b)| a != b).count();
            assert_eq!(diff, 0, "{sw}x{sh} -> {dw}x{dh}: {diff} of {} values differ from OpenCV", out.len());
        }
        eprintln!("bit-exact with OpenCV INTER_LINEAR over {} size pairs", pairs.len());
    }
}
