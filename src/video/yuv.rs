//! I420 → packed RGB conversion, done here rather than by GStreamer's `videoconvert`.
//!
//! GStreamer 1.22's 8-bit YUV→RGB path is biased by 2–3 grey levels (e.g. Y=126 → 126 instead of
//! 128), which darkens every re-encoded video and makes the model see slightly different pixels
//! than Ultralytics does. Ultralytics reads video with OpenCV, i.e. FFmpeg's swscale: BT.601
//! coefficients (swscale's default, whatever the stream's colorimetry), nearest-neighbour chroma,
//! and results one level below the exact inverse (measured against OpenCV 5.0 / FFmpeg on the
//! project's clips: mean |difference| 0.39 level, 61% of samples identical; an exact, rounded
//! inverse would be 1.09 levels brighter). This converter reproduces that: exact BT.601 in 16-bit
//! fixed point, then `floor(x - 0.5)` ([`SWSCALE_BIAS`]). [`rgb_to_i420`] is its
//! inverse for the encoder (BT.601 limited range, chroma averaged over 2x2 blocks, rounded, and
//! luma raised by the decoder's one-level bias so that decode → encode leaves Y unchanged;
//! `videoconvert`'s RGB→I420 truncates, another ~0.5 level of darkening).

/// Value range of the Y/U/V samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YuvRange {
    /// Y in 16..=235, U/V in 16..=240 (video).
    Limited,
    /// 0..=255 (JPEG).
    Full,
}

/// Borrowed I420 planes.
#[derive(Debug, Clone, Copy)]
pub struct I420<'a> {
    pub width: u32,
    pub height: u32,
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub u_stride: usize,
    pub v_stride: usize,
}

struct Coeffs {
    y_off: i32,
    cy: i32,
    crv: i32,
    cgu: i32,
    cgv: i32,
    cbu: i32,
}

const fn fx(v: f64) -> i32 {
    (v * 65536.0 + 0.5) as i32
}

impl Coeffs {
    const fn bt601(range: YuvRange) -> Self {
        match range {
            // 255/219 and 255/224 scaled BT.601 (Kr = 0.299, Kb = 0.114)
            YuvRange::Limited => Coeffs {
                y_off: 16,
                cy: fx(255.0 / 219.0),
                crv: fx(1.402 * 255.0 / 224.0),
                cgu: fx(0.344_136 * 255.0 / 224.0),
                cgv: fx(0.714_136 * 255.0 / 224.0),
                cbu: fx(1.772 * 255.0 / 224.0),
            },
            YuvRange::Full => {
                Coeffs { y_off: 0, cy: fx(1.0), crv: fx(1.402), cgu: fx(0.344_136), cgv: fx(0.714_136), cbu: fx(1.772) }
            }
        }
    }
}

/// swscale's output sits one level below the exact inverse: round with `floor(x - 0.5)`.
pub const SWSCALE_BIAS: i32 = -32768;

#[inline]
fn clamp8(v: i32) -> u8 {
    ((v + SWSCALE_BIAS) >> 16).clamp(0, 255) as u8
}

/// Convert to tightly packed RGB (`out.len() == 3 * width * height`).
pub fn i420_to_rgb(src: &I420<'_>, range: YuvRange, out: &mut [u8]) {
    let c = Coeffs::bt601(range);
    let w = src.width as usize;
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    for (yy, row) in out.chunks_exact_mut(w * 3).take(src.height as usize).enumerate() {
        let yrow = &src.y[yy * src.y_stride..yy * src.y_stride + w];
        let urow = &src.u[(yy / 2) * src.u_stride..];
        let vrow = &src.v[(yy / 2) * src.v_stride..];
        #[allow(unused_mut)]
        let mut from = 0;
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2 is available (checked above).
            from = unsafe { row_avx2(&c, yrow, urow, vrow, row) };
        }
        row_scalar(&c, yrow, urow, vrow, row, from);
    }
}

/// Pixels `from..` of one row, one at a time.
fn row_scalar(c: &Coeffs, yrow: &[u8], urow: &[u8], vrow: &[u8], row: &mut [u8], from: usize) {
    for (x, px) in (from..).zip(row[from * 3..].chunks_exact_mut(3)) {
        let y = (yrow[x] as i32 - c.y_off) * c.cy;
        let u = urow[x / 2] as i32 - 128;
        let v = vrow[x / 2] as i32 - 128;
        px[0] = clamp8(y + c.crv * v);
        px[1] = clamp8(y - c.cgu * u - c.cgv * v);
        px[2] = clamp8(y + c.cbu * u);
    }
}

/// `pshufb` masks that interleave 16 R, 16 G and 16 B bytes into 48 RGB bytes: entry `[k][c]`
/// picks, for output bytes `16k..16k + 16`, the pixels whose channel is `c` (`0x80`: zero).
#[cfg(target_arch = "x86_64")]
const INTERLEAVE: [[[u8; 16]; 3]; 3] = {
    let mut m = [[[0x80u8; 16]; 3]; 3];
    let mut q = 0;
    while q < 48 {
        m[q / 16][q % 3][q % 16] = (q / 3) as u8;
        q += 1;
    }
    m
};

/// [`row_scalar`] 16 pixels at a time (the same integer arithmetic, so the same bytes: the
/// saturating packs clamp exactly as `clamp(0, 255)` does). Returns the first pixel left for the
/// scalar loop.
///
/// # Safety
/// AVX2 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_avx2(c: &Coeffs, yrow: &[u8], urow: &[u8], vrow: &[u8], row: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let w = yrow.len().min(row.len() / 3);
    let set = _mm256_set1_epi32;
    let (y_off, cy, crv, cgu, cgv, cbu) = (set(c.y_off), set(c.cy), set(c.crv), set(c.cgu), set(c.cgv), set(c.cbu));
    let (bias, c128) = (set(SWSCALE_BIAS), set(128));
    let halves = [_mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7)];
    // 8 i32 lanes of 16 pixels each (two halves) -> 16 bytes, clamped to 0..=255
    let to_bytes = |lo: __m256i, hi: __m256i| {
        let w16 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(lo, hi));
        let b = _mm256_packus_epi16(w16, w16);
        _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b00_00_10_00>(b))
    };
    let mut x = 0;
    while x + 16 <= w && x / 2 + 8 <= urow.len() && x / 2 + 8 <= vrow.len() {
        // SAFETY: `x + 16 <= w <= yrow.len()` and `x / 2 + 8` is within both chroma rows, so
        // every load reads inside its slice (8 or 16 bytes, unaligned).
        let (ylo, yhi, u, v) = unsafe {
            (
                _mm_loadl_epi64(yrow.as_ptr().add(x).cast()),
                _mm_loadl_epi64(yrow.as_ptr().add(x + 8).cast()),
                _mm_loadl_epi64(urow.as_ptr().add(x / 2).cast()),
                _mm_loadl_epi64(vrow.as_ptr().add(x / 2).cast()),
            )
        };
        let u = _mm256_sub_epi32(_mm256_cvtepu8_epi32(u), c128);
        let v = _mm256_sub_epi32(_mm256_cvtepu8_epi32(v), c128);
        // one chroma sample per pixel pair: its R, G, B terms
        let rt = _mm256_mullo_epi32(crv, v);
        let gt = _mm256_sub_epi32(
            _mm256_setzero_si256(),
            _mm256_add_epi32(_mm256_mullo_epi32(cgu, u), _mm256_mullo_epi32(cgv, v)),
        );
        let bt = _mm256_mullo_epi32(cbu, u);
        let mut ch = [[_mm256_setzero_si256(); 2]; 3];
        for (h, yb) in [ylo, yhi].into_iter().enumerate() {
            let y = _mm256_mullo_epi32(_mm256_sub_epi32(_mm256_cvtepu8_epi32(yb), y_off), cy);
            for (k, t) in [rt, gt, bt].into_iter().enumerate() {
                let t = _mm256_permutevar8x32_epi32(t, halves[h]);
                ch[k][h] = _mm256_srai_epi32::<16>(_mm256_add_epi32(_mm256_add_epi32(y, t), bias));
            }
        }
        let rgb = [to_bytes(ch[0][0], ch[0][1]), to_bytes(ch[1][0], ch[1][1]), to_bytes(ch[2][0], ch[2][1])];
        for (k, masks) in INTERLEAVE.iter().enumerate() {
            let mut o = _mm_setzero_si128();
            for (chan, m) in rgb.iter().zip(masks) {
                // SAFETY: `m` is 16 bytes.
                let m = unsafe { _mm_loadu_si128(m.as_ptr().cast()) };
                o = _mm_or_si128(o, _mm_shuffle_epi8(*chan, m));
            }
            // SAFETY: `3 * (x + 16) <= 3 * w <= row.len()`.
            unsafe { _mm_storeu_si128(row.as_mut_ptr().add(3 * x + 16 * k).cast(), o) };
        }
        x += 16;
    }
    x
}

/// Mutable I420 planes.
#[derive(Debug)]
pub struct I420Mut<'a> {
    pub y: &'a mut [u8],
    pub u: &'a mut [u8],
    pub v: &'a mut [u8],
    pub y_stride: usize,
    pub u_stride: usize,
    pub v_stride: usize,
}

// Y = 16 + 219/255 * (0.299 R + 0.587 G + 0.114 B), U/V = 128 + 224/255 * (B-Y)/1.772, (R-Y)/1.402
const KY: [i32; 3] = [fx(0.299 * 219.0 / 255.0), fx(0.587 * 219.0 / 255.0), fx(0.114 * 219.0 / 255.0)];
const KU: [i32; 3] =
    [fx(-0.299 / 1.772 * 224.0 / 255.0), fx(-0.587 / 1.772 * 224.0 / 255.0), fx(0.886 / 1.772 * 224.0 / 255.0)];
const KV: [i32; 3] =
    [fx(0.701 / 1.402 * 224.0 / 255.0), fx(-0.587 / 1.402 * 224.0 / 255.0), fx(-0.114 / 1.402 * 224.0 / 255.0)];

#[inline]
fn luma(p: &[u8]) -> u8 {
    let v = KY[0] * p[0] as i32 + KY[1] * p[1] as i32 + KY[2] * p[2] as i32;
    // + 219/255 of a level: undo the decoder's SWSCALE_BIAS
    ((v + (16 << 16) + fx(219.0 / 255.0) + 32768) >> 16).clamp(0, 255) as u8
}

/// U and V of a block from its channel sums `acc` over `n` pixels (`/ n` truncates toward zero;
/// with a constant `n` of 4 the compiler makes it a shift and a fix-up, not a division).
#[inline]
fn chroma(acc: [i32; 3], n: i32) -> (u8, u8) {
    let u = (KU[0] * acc[0] + KU[1] * acc[1] + KU[2] * acc[2]) / n;
    let v = (KV[0] * acc[0] + KV[1] * acc[1] + KV[2] * acc[2]) / n;
    (((u + (128 << 16) + 32768) >> 16).clamp(0, 255) as u8, ((v + (128 << 16) + 32768) >> 16).clamp(0, 255) as u8)
}

/// Convert packed RGB (`3 * width` bytes per row) to I420, limited-range BT.601.
pub fn rgb_to_i420(rgb: &[u8], width: u32, height: u32, out: &mut I420Mut<'_>) {
    let (w, h) = (width as usize, height as usize);
    let (ys, cs, vs) = (out.y_stride, out.u_stride, out.v_stride);
    let (yplane, uplane, vplane) = (&mut *out.y, &mut *out.u, &mut *out.v);
    for y in 0..h {
        let src = &rgb[y * w * 3..(y + 1) * w * 3];
        let dst = &mut yplane[y * ys..y * ys + w];
        for (d, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
            *d = luma(p);
        }
    }
    let full = w / 2; // chroma columns whose 2x2 block lies inside the image
    for cy in 0..h.div_ceil(2) {
        let r0 = &rgb[cy * 2 * w * 3..(cy * 2 + 1) * w * 3];
        let urow = &mut uplane[cy * cs..cy * cs + w.div_ceil(2)];
        let vrow = &mut vplane[cy * vs..cy * vs + w.div_ceil(2)];
        if cy * 2 + 1 < h {
            let r1 = &rgb[(cy * 2 + 1) * w * 3..(cy * 2 + 2) * w * 3];
            for (((a, b), u), v) in r0.chunks_exact(6).zip(r1.chunks_exact(6)).zip(urow.iter_mut()).zip(vrow.iter_mut())
            {
                let acc = [0, 1, 2].map(|k| a[k] as i32 + a[k + 3] as i32 + b[k] as i32 + b[k + 3] as i32);
                (*u, *v) = chroma(acc, 4);
            }
            if w % 2 == 1 {
                let x = (w - 1) * 3;
                let acc = [0, 1, 2].map(|k| r0[x + k] as i32 + r1[x + k] as i32);
                (urow[full], vrow[full]) = chroma(acc, 2);
            }
        } else {
            // the last row of an odd height: 2x1 blocks (and 1x1 in the corner)
            for ((a, u), v) in r0.chunks_exact(6).zip(urow.iter_mut()).zip(vrow.iter_mut()) {
                let acc = [0, 1, 2].map(|k| a[k] as i32 + a[k + 3] as i32);
                (*u, *v) = chroma(acc, 2);
            }
            if w % 2 == 1 {
                let x = (w - 1) * 3;
                (urow[full], vrow[full]) = chroma([0, 1, 2].map(|k| r0[x + k] as i32), 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the BT.601 inverse in floating point, with swscale's one-level-down rounding.
    fn reference(y: u8, u: u8, v: u8, range: YuvRange) -> [u8; 3] {
        let (y, u, v) = match range {
            YuvRange::Limited => (
                (y as f64 - 16.0) * 255.0 / 219.0,
                (u as f64 - 128.0) * 255.0 / 224.0,
                (v as f64 - 128.0) * 255.0 / 224.0,
            ),
            YuvRange::Full => (y as f64, u as f64 - 128.0, v as f64 - 128.0),
        };
        // invert Y = 0.299R + 0.587G + 0.114B, U = (B - Y)/1.772, V = (R - Y)/1.402
        let r = y + 1.402 * v;
        let b = y + 1.772 * u;
        let g = (y - 0.299 * r - 0.114 * b) / 0.587;
        [r, g, b].map(|c| (c - 0.5).floor().clamp(0.0, 255.0) as u8)
    }

    #[test]
    fn matches_the_bt601_inverse() {
        for range in [YuvRange::Limited, YuvRange::Full] {
            for y in (0..=255).step_by(7) {
                for u in (0..=255).step_by(17) {
                    for v in (0..=255).step_by(13) {
                        let planes = I420 {
                            width: 2,
                            height: 2,
                            y: &[y, y, y, y],
                            u: &[u],
                            v: &[v],
                            y_stride: 2,
                            u_stride: 1,
                            v_stride: 1,
                        };
                        let mut out = [0u8; 12];
                        i420_to_rgb(&planes, range, &mut out);
                        let want = reference(y, u, v, range);
                        for k in 0..3 {
                            assert!(
                                (out[k] as i32 - want[k] as i32).abs() <= 1,
                                "{range:?} yuv ({y},{u},{v}): {:?} vs {want:?}",
                                &out[..3]
                            );
                        }
                        assert_eq!(out[..3], out[9..12], "all four pixels share the chroma sample");
                    }
                }
            }
        }
        // grey g encoded exactly (Y = 16 + 219/255 g) decodes one level down, like swscale
        for g in [0u8, 40, 76, 128, 167, 230, 255] {
            let yv = (16.0 + g as f64 * 219.0 / 255.0).round() as u8;
            let planes =
                I420 { width: 1, height: 1, y: &[yv], u: &[128], v: &[128], y_stride: 1, u_stride: 1, v_stride: 1 };
            let mut out = [0u8; 3];
            i420_to_rgb(&planes, YuvRange::Limited, &mut out);
            let want = (g as i32 - 1).max(0);
            assert!(out.iter().all(|&c| (c as i32 - want).abs() <= 1), "grey {g} -> {out:?}");
        }
    }

    #[test]
    fn rgb_to_i420_round_trips() {
        // a 5x3 image (odd sizes) of flat 2x2 blocks round-trips within a level
        let (w, h) = (5u32, 3u32);
        let colours = [[200u8, 30, 40], [10, 220, 90], [128, 128, 128], [255, 255, 255], [0, 0, 0], [90, 60, 250]];
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        for y in 0..h as usize {
            for x in 0..w as usize {
                let c = colours[(y / 2) * 3 + x / 2];
                rgb[(y * w as usize + x) * 3..(y * w as usize + x) * 3 + 3].copy_from_slice(&c);
            }
        }
        let (ys, cs) = (8usize, 4usize); // padded strides
        let (mut yp, mut up, mut vp) = (vec![0u8; ys * 3], vec![0u8; cs * 2], vec![0u8; cs * 2]);
        let mut out = I420Mut { y: &mut yp, u: &mut up, v: &mut vp, y_stride: ys, u_stride: cs, v_stride: cs };
        rgb_to_i420(&rgb, w, h, &mut out);
        let planes = I420 { width: w, height: h, y: &yp, u: &up, v: &vp, y_stride: ys, u_stride: cs, v_stride: cs };
        let mut back = vec![0u8; rgb.len()];
        i420_to_rgb(&planes, YuvRange::Limited, &mut back);
        for (i, (a, b)) in rgb.iter().zip(&back).enumerate() {
            assert!((*a as i32 - *b as i32).abs() <= 2, "byte {i}: {a} -> {b}");
        }
        // grey 128 -> Y 127 (16 + 219*128/255 = 125.9, + 0.86 for the decoder's bias), U = V = 128
        let (mut yp, mut up, mut vp) = (vec![0u8; 4], vec![0u8; 1], vec![0u8; 1]);
        let mut out = I420Mut { y: &mut yp, u: &mut up, v: &mut vp, y_stride: 2, u_stride: 1, v_stride: 1 };
        rgb_to_i420(&[128u8; 12], 2, 2, &mut out);
        assert_eq!((yp, up[0], vp[0]), (vec![127; 4], 128, 128));
    }

    #[test]
    fn chroma_is_sampled_per_2x2_block_with_strides() {
        // 4x2 image, padded strides: the left and right halves get different chroma
        let y = [100u8, 100, 100, 100, 0, 0, 100, 100, 100, 100, 0, 0];
        let (u, v) = ([128u8, 200, 0, 0], [128u8, 60, 0, 0]);
        let planes = I420 { width: 4, height: 2, y: &y, u: &u, v: &v, y_stride: 6, u_stride: 4, v_stride: 4 };
        let mut out = [0u8; 24];
        i420_to_rgb(&planes, YuvRange::Limited, &mut out);
        let grey = reference(100, 128, 128, YuvRange::Limited);
        let tinted = reference(100, 200, 60, YuvRange::Limited);
        for row in 0..2 {
            for x in 0..4 {
                let px = &out[(row * 4 + x) * 3..(row * 4 + x) * 3 + 3];
                let want = if x < 2 { grey } else { tinted };
                assert!(px.iter().zip(want).all(|(a, b)| (*a as i32 - b as i32).abs() <= 1), "{row},{x}: {px:?}");
            }
        }
    }

    /// The encoder as first written (one pixel, one block at a time, `/ n` for every block): the
    /// reference the faster loops above must equal byte for byte.
    fn rgb_to_i420_reference(rgb: &[u8], width: u32, height: u32, out: &mut I420Mut<'_>) {
        let (w, h) = (width as usize, height as usize);
        for y in 0..h {
            for x in 0..w {
                out.y[y * out.y_stride + x] = luma(&rgb[(y * w + x) * 3..(y * w + x) * 3 + 3]);
            }
        }
        for cy in 0..h.div_ceil(2) {
            for cx in 0..w.div_ceil(2) {
                let mut acc = [0i32; 3];
                let mut n = 0;
                for yy in cy * 2..(cy * 2 + 2).min(h) {
                    for xx in cx * 2..(cx * 2 + 2).min(w) {
                        for k in 0..3 {
                            acc[k] += rgb[(yy * w + xx) * 3 + k] as i32;
                        }
                        n += 1;
                    }
                }
                let u = (KU[0] * acc[0] + KU[1] * acc[1] + KU[2] * acc[2]) / n;
                let v = (KV[0] * acc[0] + KV[1] * acc[1] + KV[2] * acc[2]) / n;
                out.u[cy * out.u_stride + cx] = ((u + (128 << 16) + 32768) >> 16).clamp(0, 255) as u8;
                out.v[cy * out.v_stride + cx] = ((v + (128 << 16) + 32768) >> 16).clamp(0, 255) as u8;
            }
        }
    }

    /// A random frame of 1..=`max_w` x 1..=`max_h` pixels with padded strides (as GStreamer
    /// gives): luma stride `ys`, chroma stride `cs`, `ch` chroma rows.
    struct Geometry {
        w: usize,
        h: usize,
        ch: usize,
        ys: usize,
        cs: usize,
    }

    impl Geometry {
        fn random(rng: &mut crate::test_rng::Rng, max_w: u32, max_h: u32) -> Self {
            let (w, h) = (1 + rng.below(max_w) as usize, 1 + rng.below(max_h) as usize);
            let (ys, cs) = (w + rng.below(9) as usize, w.div_ceil(2) + rng.below(5) as usize);
            Geometry { w, h, ch: h.div_ceil(2), ys, cs }
        }
    }

    #[test]
    fn i420_to_rgb_simd_equals_the_scalar_loop_on_random_frames() {
        let mut rng = crate::test_rng::Rng(0x1420);
        for case in 0..300 {
            let Geometry { w, h, ch, ys, cs } = Geometry::random(&mut rng, 70, 9);
            let mut bytes = |n: usize| (0..n).map(|_| rng.below(256) as u8).collect::<Vec<u8>>();
            let (y, u, v) = (bytes(ys * h), bytes(cs * ch), bytes(cs * ch));
            let range = if case % 2 == 0 { YuvRange::Limited } else { YuvRange::Full };
            let planes = I420 {
                width: w as u32,
                height: h as u32,
                y: &y,
                u: &u,
                v: &v,
                y_stride: ys,
                u_stride: cs,
                v_stride: cs,
            };
            let mut got = vec![0u8; w * h * 3];
            i420_to_rgb(&planes, range, &mut got);
            let c = Coeffs::bt601(range);
            let mut want = vec![0u8; w * h * 3];
            for (yy, row) in want.chunks_exact_mut(w * 3).enumerate() {
                row_scalar(&c, &y[yy * ys..yy * ys + w], &u[yy / 2 * cs..], &v[yy / 2 * cs..], row, 0);
            }
            assert_eq!(got, want, "{w}x{h} {range:?}");
        }
    }

    #[test]
    fn rgb_to_i420_equals_its_reference_on_random_frames() {
        let mut rng = crate::test_rng::Rng(0x420);
        for _ in 0..300 {
            // the planes start filled with 7s
            let Geometry { w, h, ch, ys, cs } = Geometry::random(&mut rng, 41, 23);
            let rgb: Vec<u8> = (0..w * h * 3).map(|_| rng.below(256) as u8).collect();
            let enc = |f: fn(&[u8], u32, u32, &mut I420Mut<'_>)| {
                let (mut y, mut u, mut v) = (vec![7u8; ys * h], vec![7u8; cs * ch], vec![7u8; cs * ch]);
                let mut out = I420Mut { y: &mut y, u: &mut u, v: &mut v, y_stride: ys, u_stride: cs, v_stride: cs };
                f(&rgb, w as u32, h as u32, &mut out);
                (y, u, v)
            };
            assert_eq!(enc(rgb_to_i420), enc(rgb_to_i420_reference), "rgb_to_i420 {w}x{h}");
        }
    }
}
