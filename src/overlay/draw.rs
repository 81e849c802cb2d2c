//! The OpenCV drawing of [`OverlayItem`]s (feature `overlay`).

use opencv::core::{Mat, Point, Rect, Scalar, Vector};
use opencv::imgproc;

use super::contour::{self, ContourPainter, Contours, Tracer};
use super::{OverlayItem, OverlayStyle, color_for};
use crate::mask::Mask;
use crate::types::PixelFormat;

/// Errors while drawing.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("image buffer too small: {len} bytes for {width}x{height} with stride {stride}")]
    BufferTooSmall { len: usize, width: u32, height: u32, stride: usize },
    #[error("mask is for a {mask_w}x{mask_h} image but the frame is {width}x{height}")]
    MaskSize { mask_w: u32, mask_h: u32, width: u32, height: u32 },
    #[error("OpenCV drawing failed: {0}")]
    OpenCv(#[from] opencv::Error),
}

/// Draws overlays, reusing its scratch buffers from frame to frame.
#[derive(Debug, Default)]
pub struct Overlay {
    style: OverlayStyle,
    scratch: Vec<u8>,
    painter: ContourPainter,
    tracer: Tracer,
    contours: Contours,
    /// Draw every contour with OpenCV's `draw_contours` (the reference of the equivalence tests).
    #[cfg(test)]
    opencv_contours: bool,
}

impl Overlay {
    pub fn new(style: OverlayStyle) -> Self {
        Self { style, ..Self::default() }
    }

    pub fn style(&self) -> &OverlayStyle {
        &self.style
    }

    /// Draw `items` onto an 8-bit 3-channel image in place.
    pub fn draw(
        &mut self,
        img: &mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
        items: &[OverlayItem<'_>],
    ) -> Result<(), OverlayError> {
        let need = if height == 0 { 0 } else { stride * (height as usize - 1) + width as usize * 3 };
        if img.len() < need || stride < width as usize * 3 {
            return Err(OverlayError::BufferTooSmall { len: img.len(), width, height, stride });
        }
        if width == 0 || height == 0 {
            return Ok(());
        }
        let alpha = self.style.alpha.clamp(0.0, 1.0);
        // Pass 1: blend masks (pure Rust, ROI only).
        for it in items {
            let Some(mask) = it.mask else { continue };
            let (mw, mh) = mask.image_size();
            if (mw, mh) != (width, height) {
                return Err(OverlayError::MaskSize { mask_w: mw, mask_h: mh, width, height });
            }
            let c = channel_order(color_for(it.color_key), format);
            blend_roi(img, stride, mask, c, alpha);
        }
        // Pass 2, item by item (later items draw over earlier ones): the contour, then the box
        // and the label with OpenCV on a view of the same buffer.
        for it in items {
            let rgb = color_for(it.color_key);
            let c = channel_order(rgb, format);
            let color = Scalar::new(c[0] as f64, c[1] as f64, c[2] as f64, 0.0);
            if self.style.contours
                && let Some(mask) = it.mask
            {
                self.draw_contours(img, width, height, stride, mask, c)?;
            }
            let b = it.bbox;
            let rect = Rect::new(
                b.x1.round() as i32,
                b.y1.round() as i32,
                (b.x2 - b.x1).round().max(1.0) as i32,
                (b.y2 - b.y1).round().max(1.0) as i32,
            );
            let mut text = if self.style.show_labels { it.label.clone().unwrap_or_default() } else { String::new() };
            if self.style.show_scores
                && let Some(s) = it.score
            {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&format!("{s:.2}"));
            }
            if !self.style.show_boxes && text.is_empty() {
                continue;
            }
            let mut mat = frame_mat(img, width, height, stride)?;
            if self.style.show_boxes {
                imgproc::rectangle(&mut *mat, rect, color, 2, imgproc::LINE_8, 0)?;
            }
            if !text.is_empty() {
                draw_label(&mut mat, &text, rect.x, rect.y, color, rgb, width as i32, height as i32)?;
            }
        }
        Ok(())
    }

    /// Draw the outer contours of `mask` in `c` (channel order of the frame): traced by
    /// [`Tracer`] and painted by [`ContourPainter`] for the thicknesses they cover (the same
    /// pixels as OpenCV), else by OpenCV's `find_contours` and `draw_contours`.
    fn draw_contours(
        &mut self,
        img: &mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        mask: &Mask,
        c: [u8; 3],
    ) -> Result<(), OverlayError> {
        let roi = mask.roi();
        let r = roi.rect;
        if r.is_empty() {
            return Ok(());
        }
        let thickness = self.style.contour_thickness.max(1);
        #[cfg(test)]
        let fast = !self.opencv_contours;
        #[cfg(not(test))]
        let fast = true;
        if fast && contour::supported(thickness) {
            // Our own outer border following and outline painting: the same pixels as OpenCV's
            // `find_contours` + `draw_contours` below.
            self.contours.clear();
            self.tracer.trace_external(
                &roi.data,
                r.w as usize,
                r.h as usize,
                r.x as i32,
                r.y as i32,
                &mut self.contours,
            );
            self.painter.paint(img, width, height, stride, r, &self.contours, thickness, c);
            return Ok(());
        }
        let contours = opencv_external_contours(&mut self.scratch, mask, imgproc::CHAIN_APPROX_SIMPLE)?;
        if contours.is_empty() {
            return Ok(());
        }
        let mut mat = frame_mat(img, width, height, stride)?;
        imgproc::draw_contours(
            &mut *mat,
            &contours,
            -1,
            Scalar::new(c[0] as f64, c[1] as f64, c[2] as f64, 0.0),
            thickness,
            imgproc::LINE_8,
            &opencv::core::no_array(),
            i32::MAX,
            Point::new(0, 0),
        )?;
        Ok(())
    }
}

/// OpenCV's `find_contours(RETR_EXTERNAL, approx)` of `mask` (traced on its ROI alone, padded
/// in `scratch`), in image coordinates.
fn opencv_external_contours(
    scratch: &mut Vec<u8>,
    mask: &Mask,
    approx: i32,
) -> Result<Vector<Vector<Point>>, OverlayError> {
    let roi = mask.roi();
    let r = roi.rect;
    let mut contours: Vector<Vector<Point>> = Vector::new();
    if r.is_empty() {
        return Ok(contours);
    }
    // Pad by one pixel so that contours touching the ROI border close properly.
    let (pw, ph) = (r.w as usize + 2, r.h as usize + 2);
    scratch.clear();
    scratch.resize(pw * ph, 0);
    for y in 0..r.h as usize {
        let src = &roi.data[y * r.w as usize..(y + 1) * r.w as usize];
        scratch[(y + 1) * pw + 1..(y + 1) * pw + 1 + r.w as usize].copy_from_slice(src);
    }
    // SAFETY: `scratch` holds exactly ph*pw bytes and outlives `m`, which is dropped below.
    let m = unsafe {
        Mat::new_rows_cols_with_data_unsafe(
            ph as i32,
            pw as i32,
            opencv::core::CV_8UC1,
            scratch.as_mut_ptr().cast(),
            pw,
        )?
    };
    imgproc::find_contours(
        &m,
        &mut contours,
        imgproc::RETR_EXTERNAL,
        approx,
        Point::new(r.x as i32 - 1, r.y as i32 - 1),
    )?;
    drop(m);
    Ok(contours)
}

/// An OpenCV view of a frame that mutably borrows the frame's bytes for its lifetime.
struct FrameMat<'a> {
    mat: Mat,
    _img: std::marker::PhantomData<&'a mut [u8]>,
}

impl std::ops::Deref for FrameMat<'_> {
    type Target = Mat;
    fn deref(&self) -> &Mat {
        &self.mat
    }
}

impl std::ops::DerefMut for FrameMat<'_> {
    fn deref_mut(&mut self) -> &mut Mat {
        &mut self.mat
    }
}

/// An OpenCV view of the frame `img`, which the caller has checked to hold `height` rows of
/// `stride` >= 3 * `width` bytes.
fn frame_mat(img: &mut [u8], width: u32, height: u32, stride: usize) -> Result<FrameMat<'_>, OverlayError> {
    // SAFETY: `img` holds `height` rows of `stride` bytes (checked in `Overlay::draw`) and stays
    // mutably borrowed, by the returned view, for as long as the Mat exists.
    let mat = unsafe {
        Mat::new_rows_cols_with_data_unsafe(
            height as i32,
            width as i32,
            opencv::core::CV_8UC3,
            img.as_mut_ptr().cast(),
            stride,
        )?
    };
    Ok(FrameMat { mat, _img: std::marker::PhantomData })
}

fn channel_order(rgb: [u8; 3], format: PixelFormat) -> [u8; 3] {
    match format {
        PixelFormat::Rgb8 => rgb,
        PixelFormat::Bgr8 => [rgb[2], rgb[1], rgb[0]],
    }
}

/// `px = px * (1 - a) + c * a` for every mask pixel, in fixed point:
/// `px = (px * (256 - a) + c * a + 128) >> 8` with `a = round(alpha * 256)`.
///
/// Row by row with [`blend_row_avx2`] where the CPU has AVX2, else [`blend_row`]: the same
/// arithmetic either way.
#[inline(never)]
fn blend_roi(img: &mut [u8], stride: usize, mask: &Mask, c: [u8; 3], alpha: f32) {
    let roi = mask.roi();
    let r = roi.rect;
    if r.is_empty() {
        return;
    }
    let blend = Blend::new(c, alpha);
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    for yy in 0..r.h as usize {
        let mrow = &roi.data[yy * r.w as usize..(yy + 1) * r.w as usize];
        let off = (r.y as usize + yy) * stride + r.x as usize * 3;
        let prow = &mut img[off..off + r.w as usize * 3];
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2 was detected at run time.
            unsafe { blend_row_avx2(&blend, mrow, prow) };
            continue;
        }
        blend_row(&blend, mrow, prow);
    }
}

/// The fixed-point blend of one colour: `px = (px * ia + add[k]) >> 8` for channel `k`.
struct Blend {
    ia: u16,
    add: [u16; 3],
    /// The addend of every 16-bit lane of [`blend_row_avx2`]'s registers 0..3 after unpacking
    /// their bytes (`unpacklo`: bytes 0..8 and 16..24, `unpackhi`: bytes 8..16 and 24..32); byte
    /// `b` of register `k` is frame byte `32k + b` of a 96-byte run, channel `(32k + b) % 3`.
    lanes: [[[u16; 16]; 2]; 3],
}

/// [`blend_row_avx2`]'s shuffles that spread 32 mask bytes (one per pixel) over the 96 bytes of
/// their pixels: byte `b` of register `k` (frame byte `32k + b`) takes pixel `(32k + b) / 3`,
/// from a source that holds pixels 0..16 in both lanes (register 0), pixels 0..16 in lane 0 and
/// 16..32 in lane 1 (register 1), or pixels 16..32 in both lanes (register 2).
const SPREAD: [[u8; 32]; 3] = {
    let mut t = [[0u8; 32]; 3];
    let mut k = 0;
    while k < 3 {
        let mut b = 0;
        while b < 32 {
            let base = match (k, b / 16) {
                (0, _) | (1, 0) => 0,
                _ => 16,
            };
            t[k][b] = ((32 * k + b) / 3 - base) as u8;
            b += 1;
        }
        k += 1;
    }
    t
};

impl Blend {
    fn new(c: [u8; 3], alpha: f32) -> Self {
        let a = (alpha * 256.0).round() as u16;
        let add = [c[0] as u16 * a + 128, c[1] as u16 * a + 128, c[2] as u16 * a + 128];
        let byte_of = |j: usize, h: usize| (j / 8) * 16 + 8 * h + j % 8;
        let lanes = std::array::from_fn(|k| {
            std::array::from_fn(|h| std::array::from_fn(|j| add[(32 * k + byte_of(j, h)) % 3]))
        });
        Self { ia: 256 - a, add, lanes }
    }

    #[inline]
    fn px(&self, px: &mut [u8]) {
        for (v, &ad) in px.iter_mut().zip(&self.add) {
            *v = ((*v as u16 * self.ia + ad) >> 8) as u8;
        }
    }
}

/// Blend the pixels `prow` (3 bytes each) under the non-zero bytes of `mrow` (one per pixel).
///
/// Runs of 16 pixels that are all outside the mask are skipped; the others blend all their 48 bytes
/// in one straight loop (which the compiler vectorises; the sum stays below 2^16, so 16-bit lanes
/// are exact) and, where the run is only partly inside, keep the blended bytes under the mask
/// with a byte select. The same arithmetic everywhere.
fn blend_row(blend: &Blend, mrow: &[u8], prow: &mut [u8]) {
    let ia = blend.ia;
    let pattern: [u16; 48] = std::array::from_fn(|i| blend.add[i % 3]);
    let mut mchunks = mrow.chunks_exact(16);
    let mut pchunks = prow.chunks_exact_mut(48);
    for (m, p) in (&mut mchunks).zip(&mut pchunks) {
        let (lo, hi) = (load8(&m[..8]), load8(&m[8..]));
        if lo | hi == 0 {
            continue;
        }
        if all_nonzero8(lo) && all_nonzero8(hi) {
            for (v, &ad) in p.iter_mut().zip(&pattern) {
                *v = ((*v as u16 * ia + ad) >> 8) as u8;
            }
            continue;
        }
        // Mixed run: blend all 48 bytes, keep the blended ones under the mask (branch-free:
        // ragged masks make a per-pixel branch unpredictable).
        let mut sel = [0u8; 48];
        for (j, &mv) in m.iter().enumerate() {
            let t = 0u8.wrapping_sub((mv != 0) as u8);
            sel[3 * j..3 * j + 3].fill(t);
        }
        for ((v, &ad), &t) in p.iter_mut().zip(&pattern).zip(&sel) {
            let b = ((*v as u16 * ia + ad) >> 8) as u8;
            *v = (b & t) | (*v & !t);
        }
    }
    for (&mv, px) in mchunks.remainder().iter().zip(pchunks.into_remainder().chunks_exact_mut(3)) {
        if mv != 0 {
            blend.px(px);
        }
    }
}

/// [`blend_row`] with AVX2, 32 pixels (96 bytes, three registers) at a time: the same integer
/// arithmetic in 16-bit lanes (`_mm256_mullo_epi16`, add, shift right by 8, pack), the mask
/// bytes spread over their pixels' 3 bytes with in-lane shuffles; the rest of the row (under 32
/// pixels) through a zero-padded copy.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blend_row_avx2(blend: &Blend, mrow: &[u8], prow: &mut [u8]) {
    use std::arch::x86_64::*;
    let n32 = mrow.len() / 32 * 32;
    let ld = |a: &[u8; 32]| unsafe { _mm256_loadu_si256(a.as_ptr().cast()) };
    let ld16 = |a: &[u16; 16]| unsafe { _mm256_loadu_si256(a.as_ptr().cast()) };
    let idx = [ld(&SPREAD[0]), ld(&SPREAD[1]), ld(&SPREAD[2])];
    let a = &blend.lanes;
    let adds = [[ld16(&a[0][0]), ld16(&a[0][1])], [ld16(&a[1][0]), ld16(&a[1][1])], [ld16(&a[2][0]), ld16(&a[2][1])]];
    let ia = _mm256_set1_epi16(blend.ia as i16);
    let zero = _mm256_setzero_si256();
    let mix = |v: __m256i, k: usize| {
        let lo = _mm256_mullo_epi16(_mm256_unpacklo_epi8(v, zero), ia);
        let hi = _mm256_mullo_epi16(_mm256_unpackhi_epi8(v, zero), ia);
        let lo = _mm256_srli_epi16::<8>(_mm256_add_epi16(lo, adds[k][0]));
        let hi = _mm256_srli_epi16::<8>(_mm256_add_epi16(hi, adds[k][1]));
        _mm256_packus_epi16(lo, hi)
    };
    // 32 pixels: `m` their 32 mask bytes, `p` their 96 frame bytes.
    let run = |m: &[u8; 32], p: &mut [u8; 96]| {
        let is_zero = _mm256_cmpeq_epi8(ld(m), zero);
        let zbits = _mm256_movemask_epi8(is_zero) as u32;
        if zbits == u32::MAX {
            return;
        }
        let pp = p.as_mut_ptr();
        // SAFETY: `p` holds 96 bytes: three unaligned 32-byte loads and stores at 0, 32 and 64.
        unsafe {
            let v = [
                _mm256_loadu_si256(pp.cast()),
                _mm256_loadu_si256(pp.add(32).cast()),
                _mm256_loadu_si256(pp.add(64).cast()),
            ];
            let b = [mix(v[0], 0), mix(v[1], 1), mix(v[2], 2)];
            if zbits == 0 {
                for (k, bk) in b.iter().enumerate() {
                    _mm256_storeu_si256(pp.add(32 * k).cast(), *bk);
                }
                return;
            }
            // Mixed run: select per byte, 0xff where the pixel is in the mask.
            let on = _mm256_xor_si256(is_zero, _mm256_set1_epi8(-1));
            let src = [_mm256_permute2x128_si256::<0x00>(on, on), on, _mm256_permute2x128_si256::<0x11>(on, on)];
            for k in 0..3 {
                let sel = _mm256_shuffle_epi8(src[k], idx[k]);
                _mm256_storeu_si256(pp.add(32 * k).cast(), _mm256_blendv_epi8(v[k], b[k], sel));
            }
        }
    };
    for (m, p) in mrow[..n32].chunks_exact(32).zip(prow[..3 * n32].chunks_exact_mut(96)) {
        if let (Ok(m), Ok(p)) = (<&[u8; 32]>::try_from(m), <&mut [u8; 96]>::try_from(p)) {
            run(m, p);
        }
    }
    // The last pixels (under 32) through a zero-padded copy: the padding is outside the mask,
    // so those bytes stay as they are and only the row's own bytes are copied back.
    let rest = mrow.len() - n32;
    if rest > 0 {
        let (mut m, mut p) = ([0u8; 32], [0u8; 96]);
        m[..rest].copy_from_slice(&mrow[n32..]);
        p[..3 * rest].copy_from_slice(&prow[3 * n32..]);
        run(&m, &mut p);
        prow[3 * n32..].copy_from_slice(&p[..3 * rest]);
    }
}

#[inline]
fn load8(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Whether all 8 bytes of `x` are non-zero.
#[inline]
fn all_nonzero8(x: u64) -> bool {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    ((x & LO7).wrapping_add(LO7) | x) & HI == HI
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn draw_label(
    mat: &mut Mat,
    text: &str,
    x: i32,
    y: i32,
    bg: Scalar,
    rgb: [u8; 3],
    width: i32,
    height: i32,
) -> Result<(), OverlayError> {
    let font = imgproc::FONT_HERSHEY_SIMPLEX;
    let scale = 0.5;
    let mut base = 0;
    let size = imgproc::get_text_size(text, font, scale, 1, &mut base)?;
    let (tw, th) = (size.width + 4, size.height + base + 4);
    let lx = x.clamp(0, (width - tw).max(0));
    let ly = if y - th >= 0 { y - th } else { (y).clamp(0, (height - th).max(0)) };
    imgproc::rectangle(mat, Rect::new(lx, ly, tw, th), bg, imgproc::FILLED, imgproc::LINE_8, 0)?;
    // Black text on light colours, white on dark ones.
    let luma = 0.299 * rgb[0] as f64 + 0.587 * rgb[1] as f64 + 0.114 * rgb[2] as f64;
    let fg = if luma > 140.0 { Scalar::new(0.0, 0.0, 0.0, 0.0) } else { Scalar::new(255.0, 255.0, 255.0, 0.0) };
    imgproc::put_text(
        mat,
        text,
        Point::new(lx + 2, ly + size.height + 2),
        font,
        scale,
        fg,
        1,
        imgproc::LINE_AA,
        false,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Bitmap, RoiBitmap};
    use crate::types::BBox;

    /// The box of a mask's region of interest.
    fn roi_box(m: &Mask) -> BBox {
        let r = m.roi().rect;
        BBox::new(r.x as f32, r.y as f32, r.right() as f32, r.bottom() as f32)
    }

    fn disc(w: u32, h: u32, cx: f32, cy: f32, r: f32) -> Mask {
        let mut bm = Bitmap::zeros(w, h);
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if dx * dx + dy * dy <= r * r {
                    bm.data[(y * w + x) as usize] = 1;
                }
            }
        }
        Mask::from_roi(RoiBitmap::from_full(&bm))
    }

    /// The per-pixel blend this module used before the 16-pixel runs: the reference.
    fn blend_reference(img: &mut [u8], stride: usize, mask: &Mask, c: [u8; 3], alpha: f32) {
        let roi = mask.roi();
        let r = roi.rect;
        let a = (alpha * 256.0).round() as u32;
        let ia = 256 - a;
        let add = [c[0] as u32 * a + 128, c[1] as u32 * a + 128, c[2] as u32 * a + 128];
        for yy in 0..r.h as usize {
            let mrow = &roi.data[yy * r.w as usize..(yy + 1) * r.w as usize];
            let off = (r.y as usize + yy) * stride + r.x as usize * 3;
            let prow = &mut img[off..off + r.w as usize * 3];
            for (m, px) in mrow.iter().zip(prow.chunks_exact_mut(3)) {
                if *m != 0 {
                    px[0] = ((px[0] as u32 * ia + add[0]) >> 8) as u8;
                    px[1] = ((px[1] as u32 * ia + add[1]) >> 8) as u8;
                    px[2] = ((px[2] as u32 * ia + add[2]) >> 8) as u8;
                }
            }
        }
    }

    /// The row kernels ([`blend_row`], and [`blend_row_avx2`] where the CPU has AVX2) against the
    /// per-pixel formula on random rows: lengths 0..300 (tails of every length), masks empty,
    /// full, in runs or random at any density (non-zero values other than 1), any alpha.
    #[test]
    fn blend_row_kernels_match_the_per_pixel_formula_on_random_rows() {
        let mut rng = crate::test_rng::Rng(0x6a09_e667_f3bc_c908);
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        let mut checked = 0;
        for case in 0..3000u32 {
            let n = rng.below(300) as usize;
            let density = rng.below(11);
            let mut mrow: Vec<u8> = (0..n)
                .map(|_| if rng.below(10) < density { [1, 1, 1, 255, 7][rng.below(5) as usize] } else { 0 })
                .collect();
            if case % 5 == 0 && n > 0 {
                // runs: a solid stretch and an empty one
                let (a, b) = (rng.below(n as u32) as usize, rng.below(n as u32) as usize);
                mrow[a.min(b)..a.max(b)].fill(if case % 10 == 0 { 1 } else { 0 });
            }
            let alpha = match case % 7 {
                0 => 0.0,
                1 => 1.0,
                _ => rng.below(1001) as f32 / 1000.0,
            };
            let c = [rng.below(256) as u8, rng.below(256) as u8, rng.below(256) as u8];
            let prow: Vec<u8> = (0..3 * n).map(|_| rng.below(256) as u8).collect();
            let a = (alpha * 256.0).round() as u32;
            let mut want = prow.clone();
            for (&m, px) in mrow.iter().zip(want.chunks_exact_mut(3)) {
                if m != 0 {
                    for k in 0..3 {
                        px[k] = ((px[k] as u32 * (256 - a) + c[k] as u32 * a + 128) >> 8) as u8;
                    }
                }
            }
            let blend = Blend::new(c, alpha);
            let mut got = prow.clone();
            blend_row(&blend, &mrow, &mut got);
            assert!(got == want, "case {case}: blend_row, {n} px, alpha {alpha}");
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                let mut got = prow.clone();
                // SAFETY: AVX2 was detected.
                unsafe { blend_row_avx2(&blend, &mrow, &mut got) };
                assert!(
                    got == want,
                    "case {case}: blend_row_avx2, {n} px, alpha {alpha}: first difference at {:?}",
                    got.iter().zip(&want).position(|(x, y)| x != y)
                );
                checked += 1;
            }
        }
        #[cfg(target_arch = "x86_64")]
        assert!(checked > 0 || !avx2);
        let _ = checked;
    }

    /// ~200 overlapping random masks (blobs, noise, solid blocks, rings) on a noisy image with
    /// padded rows: the fast blend and the whole `draw` (blend, contours, labels) give the same
    /// bytes as the per-pixel reference followed by the same contour and label drawing.
    #[test]
    fn busy_frame_draws_the_same_pixels_as_the_reference_blend() {
        let (w, h, stride) = (331u32, 187u32, 331 * 3 + 5);
        let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15u64);
        let mut rnd = move |n: u32| rng.below(n);
        let mut masks = Vec::new();
        for k in 0..200u32 {
            let (x, y) = (rnd(w), rnd(h));
            let rect = crate::mask::PixelRect::new(x, y, 1 + rnd(w - x), 1 + rnd(h - y));
            let kind = k % 4;
            let mut data = vec![0u8; rect.area() as usize];
            for yy in 0..rect.h {
                for xx in 0..rect.w {
                    let (dx, dy) = (2.0 * xx as f32 / rect.w as f32 - 1.0, 2.0 * yy as f32 / rect.h as f32 - 1.0);
                    let r2 = dx * dx + dy * dy;
                    let on = match kind {
                        0 => r2 <= 1.0,
                        1 => rnd(3) == 0,
                        2 => true,
                        _ => (0.4..=1.0).contains(&r2) && rnd(10) != 0,
                    };
                    data[(yy * rect.w + xx) as usize] = if on { [1, 1, 255][rnd(3) as usize] } else { 0 };
                }
            }
            masks.push(Mask::from_roi(RoiBitmap { img_w: w, img_h: h, rect, data }));
        }
        let base: Vec<u8> = (0..stride * h as usize).map(|_| rnd(256) as u8).collect();
        for alpha in [0.5f32, 0.0, 1.0, 0.37] {
            // blend alone, mask by mask, against the reference
            let (mut fast, mut want) = (base.clone(), base.clone());
            for (k, m) in masks.iter().enumerate() {
                let c = color_for(k as u64);
                blend_roi(&mut fast, stride, m, c, alpha);
                blend_reference(&mut want, stride, m, c, alpha);
            }
            assert!(fast == want, "alpha {alpha}: blend differs");
            assert!(fast != base || alpha == 0.0, "the masks changed nothing");
        }
        // the whole draw against: every mask blended by the reference, then contours and labels
        let items: Vec<OverlayItem<'_>> = masks
            .iter()
            .enumerate()
            .map(|(k, m)| OverlayItem {
                mask: Some(m),
                bbox: roi_box(m),
                color_key: k as u64,
                label: Some(k.to_string()),
                score: None,
            })
            .collect();
        let mut drawn = base.clone();
        Overlay::new(OverlayStyle::default()).draw(&mut drawn, w, h, stride, PixelFormat::Bgr8, &items).unwrap();
        let mut want = base.clone();
        for (k, m) in masks.iter().enumerate() {
            blend_reference(&mut want, stride, m, channel_order(color_for(k as u64), PixelFormat::Bgr8), 0.5);
        }
        let lines = OverlayStyle { alpha: 0.0, ..OverlayStyle::default() };
        // alpha 0 leaves every pixel as it is ((p * 256 + 128) >> 8 = p), so this adds only the
        // contours and labels
        Overlay::new(lines).draw(&mut want, w, h, stride, PixelFormat::Bgr8, &items).unwrap();
        assert!(drawn == want, "draw differs from reference blend + contours + labels");
    }

    #[test]
    fn colours_are_deterministic_and_distinct() {
        assert_eq!(color_for(7), color_for(7));
        let cs: std::collections::HashSet<_> = (0..32).map(color_for).collect();
        assert_eq!(cs.len(), 32);
    }

    #[test]
    fn blend_changes_exactly_the_mask_pixels() {
        let (w, h) = (64u32, 48u32);
        let mask = disc(w, h, 30.0, 20.0, 10.0);
        let mut img = vec![100u8; (w * h * 3) as usize];
        let style = OverlayStyle { contours: false, show_labels: false, ..Default::default() };
        let mut ov = Overlay::new(style);
        let item = OverlayItem {
            mask: Some(&mask),
            bbox: BBox::new(20.0, 10.0, 40.0, 30.0),
            color_key: 3,
            label: None,
            score: None,
        };
        ov.draw(&mut img, w, h, (w * 3) as usize, PixelFormat::Rgb8, &[item]).unwrap();
        let c = color_for(3);
        let full = mask.to_bitmap(w, h);
        for y in 0..h {
            for x in 0..w {
                let px = &img[((y * w + x) * 3) as usize..((y * w + x) * 3 + 3) as usize];
                if full.get(x, y) {
                    for k in 0..3 {
                        let want = (100.0 * 0.5 + c[k] as f32 * 0.5).round();
                        assert!((px[k] as f32 - want).abs() <= 1.0, "({x},{y}) ch{k}: {} vs {want}", px[k]);
                    }
                } else {
                    assert_eq!(px, [100, 100, 100], "pixel ({x},{y}) outside the mask changed");
                }
            }
        }
    }

    #[test]
    fn contour_lies_on_the_mask_boundary_and_bgr_swaps() {
        let (w, h) = (64u32, 48u32);
        let mask = disc(w, h, 32.0, 24.0, 12.0);
        let mut img = vec![0u8; (w * h * 3) as usize];
        let style = OverlayStyle { alpha: 0.0, contour_thickness: 1, show_labels: false, ..Default::default() };
        let mut ov = Overlay::new(style);
        let item = OverlayItem {
            mask: Some(&mask),
            bbox: BBox::new(20.0, 12.0, 44.0, 36.0),
            color_key: 1,
            label: None,
            score: None,
        };
        ov.draw(&mut img, w, h, (w * 3) as usize, PixelFormat::Bgr8, &[item]).unwrap();
        let c = color_for(1);
        let full = mask.to_bitmap(w, h);
        let mut drawn = 0;
        for y in 0..h {
            for x in 0..w {
                let px = &img[((y * w + x) * 3) as usize..((y * w + x) * 3 + 3) as usize];
                if px != [0, 0, 0] {
                    drawn += 1;
                    assert_eq!(px, [c[2], c[1], c[0]], "contour colour must be BGR");
                    // Thickness 1 contour pixels are mask pixels with a 4-neighbour outside the mask.
                    assert!(full.get(x, y), "contour pixel ({x},{y}) outside the mask");
                    let inside = |dx: i32, dy: i32| full.get((x as i32 + dx) as u32, (y as i32 + dy) as u32);
                    assert!(
                        !(inside(-1, 0) && inside(1, 0) && inside(0, -1) && inside(0, 1)),
                        "interior pixel ({x},{y})"
                    );
                }
            }
        }
        assert!(drawn > 40, "a radius-12 disc has a perimeter of ~75 px, got {drawn}");
    }

    #[test]
    fn wrong_mask_size_is_an_error_not_a_panic() {
        let mask = disc(10, 10, 5.0, 5.0, 3.0);
        let mut img = vec![0u8; 20 * 20 * 3];
        let item = OverlayItem { mask: Some(&mask), bbox: BBox::default(), color_key: 0, label: None, score: None };
        let err = Overlay::default().draw(&mut img, 20, 20, 60, PixelFormat::Rgb8, &[item]).unwrap_err();
        assert!(err.to_string().contains("10x10"), "{err}");
        let err = Overlay::default().draw(&mut img[..10], 20, 20, 60, PixelFormat::Rgb8, &[]).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
    }

    const BG: [u8; 3] = [7, 7, 7];

    /// Draw one label-only item (no mask, no box) onto a `w`x`h` image filled with [`BG`].
    fn draw_label_only(w: u32, h: u32, bbox: BBox, key: u64, label: &str, score: Option<f32>) -> Vec<u8> {
        let mut img = BG.repeat((w * h) as usize);
        let item = OverlayItem { mask: None, bbox, color_key: key, label: Some(label.into()), score };
        let style = OverlayStyle { show_scores: score.is_some(), show_boxes: false, ..Default::default() };
        Overlay::new(style).draw(&mut img, w, h, (w * 3) as usize, PixelFormat::Rgb8, &[item]).unwrap();
        img
    }

    /// The label's extent `(x0, y0, x1, y1)` (exclusive ends): the bounding box of the changed
    /// pixels, checked to be a solid tag (every pixel in it changed, none outside it) filled with
    /// the track's colour and carrying text in black or white, whichever contrasts with it (with
    /// anti-aliased pixels between the two).
    fn label_extent(img: &[u8], w: u32, h: u32, key: u64) -> (u32, u32, u32, u32) {
        let px = |x: u32, y: u32| -> [u8; 3] {
            let p = ((y * w + x) * 3) as usize;
            [img[p], img[p + 1], img[p + 2]]
        };
        let changed: Vec<(u32, u32)> =
            (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| px(x, y) != BG).collect();
        assert!(!changed.is_empty(), "no label drawn");
        let x0 = changed.iter().map(|p| p.0).min().unwrap();
        let x1 = changed.iter().map(|p| p.0).max().unwrap() + 1;
        let y0 = changed.iter().map(|p| p.1).min().unwrap();
        let y1 = changed.iter().map(|p| p.1).max().unwrap() + 1;
        assert_eq!(changed.len() as u32, (x1 - x0) * (y1 - y0), "the label is one solid tag, nothing elsewhere");
        let fill = color_for(key);
        let luma = |c: [u8; 3]| 0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64;
        let text = if luma(fill) > 140.0 { [0, 0, 0] } else { [255, 255, 255] };
        let (mut n_fill, mut n_text) = (0, 0);
        for &(x, y) in &changed {
            let c = px(x, y);
            n_fill += usize::from(c == fill);
            // Anti-aliased 1-px strokes rarely reach the exact text colour: count pixels nearer
            // to it than to the fill.
            let d = |a: [u8; 3], b: [u8; 3]| (0..3).map(|k| (a[k] as i32 - b[k] as i32).abs()).sum::<i32>();
            n_text += usize::from(d(c, text) < d(c, fill));
            for k in 0..3 {
                let (lo, hi) = (fill[k].min(text[k]), fill[k].max(text[k]));
                assert!((lo..=hi).contains(&c[k]), "({x},{y}) {c:?} is neither fill {fill:?} nor text {text:?}");
            }
        }
        assert!(n_fill * 2 > changed.len(), "the tag is mostly the track colour ({n_fill}/{})", changed.len());
        assert!(n_text >= 10, "pixels nearer the text colour {text:?} than the fill: {n_text}");
        // The text sits inside the tag, off its border rows and columns.
        for x in x0..x1 {
            assert_eq!(px(x, y0), fill, "top border ({x},{y0})");
            assert_eq!(px(x, y1 - 1), fill, "bottom border ({x},{})", y1 - 1);
        }
        for y in y0..y1 {
            assert_eq!(px(x0, y), fill, "left border ({x0},{y})");
        }
        (x0, y0, x1, y1)
    }

    #[test]
    fn label_sits_on_top_of_the_box_in_the_track_colour() {
        let (w, h) = (160u32, 120u32);
        // A light and a dark track colour (black and white text respectively).
        let luma = |k: u64| {
            let c = color_for(k);
            0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64
        };
        let light = (0..32).find(|&k| luma(k) > 170.0).unwrap();
        let dark = (0..32).find(|&k| luma(k) < 110.0).unwrap();
        for key in [light, dark] {
            let img = draw_label_only(w, h, BBox::new(40.0, 60.0, 110.0, 100.0), key, "#12", None);
            let (x0, y0, x1, y1) = label_extent(&img, w, h, key);
            // Left-aligned with the box, its bottom edge on the box's top edge.
            assert_eq!((x0, y1), (40, 60), "key {key}: tag at ({x0},{y0})-({x1},{y1})");
            // One line of small text: a tag about 20 px high and narrower than the box.
            assert!((12..=30).contains(&(y1 - y0)), "tag height {}", y1 - y0);
            assert!((20..=70).contains(&(x1 - x0)), "tag width {} for \"#12\"", x1 - x0);
            // A longer text gives a wider tag at the same place.
            let img2 = draw_label_only(w, h, BBox::new(40.0, 60.0, 110.0, 100.0), key, "#12", Some(0.9));
            let (a0, b0, a1, b1) = label_extent(&img2, w, h, key);
            assert_eq!((a0, b0, b1), (x0, y0, y1));
            assert!(a1 > x1 + 15, "\"#12 0.90\" is wider than \"#12\": {a1} vs {x1}");
        }
    }

    #[test]
    fn labels_are_drawn_inside_the_image() {
        // A box in the top-right corner: no room above it or to its right, so the tag moves down
        // (inside the box) and left, and stays whole within the image.
        let (w, h) = (80u32, 40u32);
        let img = draw_label_only(w, h, BBox::new(70.0, 0.0, 80.0, 10.0), 2, "#12", Some(0.9));
        let (x0, y0, x1, y1) = label_extent(&img, w, h, 2);
        assert_eq!((y0, x1), (0, w), "tag at ({x0},{y0})-({x1},{y1})");
        assert!(x0 > 0 && x0 < 70, "the tag was moved left to fit: x0 {x0}");
        assert!((12..=30).contains(&(y1 - y0)), "tag height {}", y1 - y0);
    }

    /// OpenCV's `draw_contours` of `contours` (thickness `t`, LINE_8) onto a copy of `base`.
    fn opencv_contours(base: &[u8], w: u32, h: u32, contours: &[Vec<Point>], t: i32, c: [u8; 3]) -> Vec<u8> {
        let mut out = base.to_vec();
        let mut mat = frame_mat(&mut out, w, h, w as usize * 3).unwrap();
        let v: Vector<Vector<Point>> = contours.iter().map(|c| Vector::from_slice(c)).collect();
        let color = Scalar::new(c[0] as f64, c[1] as f64, c[2] as f64, 0.0);
        let none = opencv::core::no_array();
        imgproc::draw_contours(&mut *mat, &v, -1, color, t, imgproc::LINE_8, &none, i32::MAX, Point::new(0, 0))
            .unwrap();
        drop(mat);
        out
    }

    /// [`ContourPainter`] of `contours` (bounds: their bounding rectangle) onto a copy of `base`.
    fn painted(base: &[u8], w: u32, h: u32, contours: &[Vec<Point>], t: i32, c: [u8; 3]) -> Vec<u8> {
        let pts = contours.iter().flatten();
        let (x0, y0) = (pts.clone().map(|p| p.x).min().unwrap(), pts.clone().map(|p| p.y).min().unwrap());
        let (x1, y1) = (pts.clone().map(|p| p.x).max().unwrap(), pts.map(|p| p.y).max().unwrap());
        let bounds = crate::mask::PixelRect::new(x0 as u32, y0 as u32, (x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32);
        let mut all = Contours::default();
        for c in contours {
            all.push(c);
        }
        let mut out = base.to_vec();
        ContourPainter::default().paint(&mut out, w, h, w as usize * 3, bounds, &all, t, c);
        out
    }

    /// Where two frames differ, for the failure message.
    fn first_diff(a: &[u8], b: &[u8], w: u32) -> Option<(u32, u32)> {
        let i = a.iter().zip(b).position(|(x, y)| x != y)? as u32 / 3;
        Some((i % w, i / w))
    }

    const DIRS: [(i32, i32); 8] = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)];

    /// Every chain direction and segment length 0..=40, plus long ones up to 700 px, at random
    /// places (on and next to the image border too), as 2-point closed contours: the painter
    /// draws the same bytes as OpenCV for thicknesses 1 and 2.
    #[test]
    fn segments_of_every_direction_and_length_match_opencv() {
        let mut rng = crate::test_rng::Rng(0x51ed_2701_a3c4_9b01);
        let (w, h) = (733u32, 719u32);
        let base: Vec<u8> = (0..w * h * 3).map(|_| rng.below(256) as u8).collect();
        let mut cases = 0;
        for t in [1, 2] {
            for (dx, dy) in DIRS {
                for len in (0..=40).chain([63, 64, 65, 127, 128, 255, 256, 257, 511, 700]) {
                    for _ in 0..3 {
                        // A start point that keeps the end inside the image; now and then on the border.
                        let mut span = |d: i32, n: u32| -> i32 {
                            let free = n as i32 - len * d.abs();
                            let v = match rng.below(4) {
                                0 => 0,
                                1 => free - 1,
                                _ => rng.below(free as u32) as i32,
                            };
                            if d < 0 { v + len } else { v }
                        };
                        let p0 = Point::new(span(dx, w), span(dy, h));
                        let p1 = Point::new(p0.x + dx * len, p0.y + dy * len);
                        let c = color_for(rng.next());
                        let contours = vec![vec![p0, p1]];
                        let want = opencv_contours(&base, w, h, &contours, t, c);
                        let got = painted(&base, w, h, &contours, t, c);
                        assert!(want != base, "nothing drawn for {p0:?}-{p1:?}");
                        assert!(
                            got == want,
                            "thickness {t}, {p0:?} -> {p1:?}: first difference at {:?}",
                            first_diff(&got, &want, w)
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 2 * 8 * 51 * 3);
    }

    /// Random closed 8-direction chains (random walks with runs of 1-12 steps, closed along a
    /// diagonal and a straight run; revisits and reversals included) within a small image whose
    /// border they touch: the painter draws the same bytes as OpenCV.
    #[test]
    fn random_closed_chains_match_opencv() {
        let mut rng = crate::test_rng::Rng(0x7f4a_7c15_9e37_79b9);
        let (w, h) = (61u32, 47u32);
        let base: Vec<u8> = (0..w * h * 3).map(|_| rng.below(256) as u8).collect();
        for case in 0..400 {
            let mut ncont = 1 + rng.below(3);
            let mut contours = Vec::new();
            while ncont > 0 {
                ncont -= 1;
                let mut p = Point::new(rng.below(w) as i32, rng.below(h) as i32);
                let mut c = vec![p];
                for _ in 0..rng.below(12) {
                    let (dx, dy) = DIRS[rng.below(8) as usize];
                    let n = 1 + rng.below(12) as i32;
                    let q = Point::new((p.x + dx * n).clamp(0, w as i32 - 1), (p.y + dy * n).clamp(0, h as i32 - 1));
                    // Clamping may bend the run off its direction: keep only chain directions.
                    let (ex, ey) = (q.x - p.x, q.y - p.y);
                    if (ex, ey) != (0, 0) && (ex == 0 || ey == 0 || ex.abs() == ey.abs()) {
                        c.push(q);
                        p = q;
                    }
                }
                // Close: a diagonal run, then a straight one, back to the start.
                let s = c[0];
                let (ex, ey) = (s.x - p.x, s.y - p.y);
                let m = ex.abs().min(ey.abs());
                let mid = Point::new(p.x + ex.signum() * m, p.y + ey.signum() * m);
                if mid != p && mid != s {
                    c.push(mid);
                }
                contours.push(c);
            }
            let t = 1 + (case % 2) as i32;
            let col = color_for(case);
            let want = opencv_contours(&base, w, h, &contours, t, col);
            let got = painted(&base, w, h, &contours, t, col);
            assert!(got == want, "case {case}, {contours:?}: first difference at {:?}", first_diff(&got, &want, w));
        }
    }

    /// A random mask of one of several kinds inside a random ROI of a `w`x`h` image (the ROI
    /// touches the image border in about a third of the cases).
    fn random_mask(rng: &mut crate::test_rng::Rng, w: u32, h: u32, kind: u32) -> Mask {
        let mut pick = |n: u32, lo: u32| -> (u32, u32) {
            // (start, length) of the ROI along an axis of n pixels.
            let len = (lo + rng.below(n)).min(n);
            let start = match rng.below(6) {
                0 => 0,
                1 => n - len,
                _ => rng.below(n - len + 1),
            };
            (start, len)
        };
        let (x, rw) = pick(w, 1);
        let (y, rh) = pick(h, 1);
        let rect = crate::mask::PixelRect::new(x, y, rw, rh);
        let mut data = vec![0u8; (rw * rh) as usize];
        let set = |xx: i32, yy: i32, data: &mut Vec<u8>| {
            if xx >= 0 && yy >= 0 && (xx as u32) < rw && (yy as u32) < rh {
                data[(yy as u32 * rw + xx as u32) as usize] = 1;
            }
        };
        let (fw, fh) = (rw as f32, rh as f32);
        match kind {
            // a blob with a ragged edge, sometimes with holes that hold islands
            0 | 1 => {
                let holes = kind == 1;
                for yy in 0..rh {
                    for xx in 0..rw {
                        let (dx, dy) = (2.0 * (xx as f32 + 0.5) / fw - 1.0, 2.0 * (yy as f32 + 0.5) / fh - 1.0);
                        let r2 = dx * dx + dy * dy + 0.3 * rng.unit();
                        let on = if holes { r2 <= 1.0 && !(0.2..0.5).contains(&r2) } else { r2 <= 1.0 };
                        if on {
                            set(xx as i32, yy as i32, &mut data);
                        }
                    }
                }
            }
            // thin lines at any angle and along chain directions
            2 => {
                for _ in 0..1 + rng.below(6) {
                    let (x0, y0) = (rng.below(rw) as f32, rng.below(rh) as f32);
                    let (x1, y1) = (rng.below(rw) as f32, rng.below(rh) as f32);
                    let n = (x1 - x0).abs().max((y1 - y0).abs()) as i32 + 1;
                    for k in 0..=n {
                        let f = k as f32 / n as f32;
                        set((x0 + f * (x1 - x0)).round() as i32, (y0 + f * (y1 - y0)).round() as i32, &mut data);
                    }
                }
            }
            // single pixels, some touching diagonally
            3 => {
                for _ in 0..1 + rng.below(20) {
                    let (px, py) = (rng.below(rw) as i32, rng.below(rh) as i32);
                    set(px, py, &mut data);
                    if rng.below(3) == 0 {
                        set(px + 1, py + 1, &mut data);
                    }
                }
            }
            // random noise of random density
            4 => {
                let d = 1 + rng.below(9);
                for v in data.iter_mut() {
                    *v = u8::from(rng.below(10) < d);
                }
            }
            // diagonal staircases, one and two pixels thick
            5 => {
                for _ in 0..1 + rng.below(4) {
                    let (mut px, mut py) = (rng.below(rw) as i32, rng.below(rh) as i32);
                    let sx = if rng.below(2) == 0 { 1 } else { -1 };
                    let thick = rng.below(2) as i32;
                    for _ in 0..rng.below(40) {
                        set(px, py, &mut data);
                        set(px + thick, py, &mut data);
                        match rng.below(3) {
                            0 => px += sx,
                            1 => py += 1,
                            _ => {
                                px += sx;
                                py += 1;
                            }
                        }
                    }
                }
            }
            // the whole ROI, or the ROI with a frame of holes
            _ => {
                for yy in 0..rh {
                    for xx in 0..rw {
                        if rng.below(8) != 0 || (xx % 3 != 1 || yy % 3 != 1) {
                            set(xx as i32, yy as i32, &mut data);
                        }
                    }
                }
            }
        }
        // Mask values other than 1 count as "in" as well.
        for v in data.iter_mut() {
            if *v != 0 && rng.below(7) == 0 {
                *v = 255;
            }
        }
        Mask::from_roi(RoiBitmap { img_w: w, img_h: h, rect, data })
    }

    /// The proof that the fast outlines change no pixel: whole frames of random masks (blobs,
    /// holes with islands, thin lines, single pixels, noise, diagonal staircases, full ROIs;
    /// ROIs touching the image border) drawn by `Overlay::draw` equal the same drawing with
    /// every contour drawn by OpenCV's `draw_contours`, byte for byte, for thicknesses 1 and 2
    /// (and 3, which goes to OpenCV either way).
    #[test]
    fn random_masks_draw_the_same_pixels_as_opencv_contours() {
        let mut rng = crate::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        let mut masks_drawn = 0;
        for case in 0..240u32 {
            let (w, h) = (8 + rng.below(150), 8 + rng.below(110));
            let stride = w as usize * 3 + rng.below(4) as usize;
            let masks: Vec<Mask> = (0..1 + rng.below(6)).map(|k| random_mask(&mut rng, w, h, (case + k) % 7)).collect();
            let items: Vec<OverlayItem<'_>> = masks
                .iter()
                .enumerate()
                .map(|(k, m)| OverlayItem {
                    mask: Some(m),
                    bbox: roi_box(m),
                    color_key: k as u64 + case as u64,
                    label: (k % 2 == 0).then(|| format!("{k}")),
                    score: None,
                })
                .collect();
            let base: Vec<u8> = (0..stride * h as usize).map(|_| rng.below(256) as u8).collect();
            let t = [2, 2, 1, 3][case as usize % 4];
            let style = OverlayStyle { contour_thickness: t, show_boxes: case % 5 == 0, ..OverlayStyle::default() };
            let mut fast = Overlay::new(style.clone());
            let mut reference = Overlay::new(style);
            reference.opencv_contours = true;
            let (mut got, mut want) = (base.clone(), base.clone());
            fast.draw(&mut got, w, h, stride, PixelFormat::Bgr8, &items).unwrap();
            reference.draw(&mut want, w, h, stride, PixelFormat::Bgr8, &items).unwrap();
            assert!(want != base, "case {case}: nothing drawn");
            assert!(
                got == want,
                "case {case} ({w}x{h}, thickness {t}): first difference at {:?}",
                first_diff(&got, &want, w)
            );
            masks_drawn += masks.len();
        }
        assert!(masks_drawn > 600, "{masks_drawn} masks");
    }

    /// The tracer finds the same contours as OpenCV's `find_contours(RETR_EXTERNAL,
    /// CHAIN_APPROX_NONE)`: the same point sequences (start pixel, direction, every border
    /// pixel), on random masks of every kind, islands in holes and ROIs on the border included.
    #[test]
    fn tracer_finds_the_contours_opencv_finds() {
        let mut rng = crate::test_rng::Rng(0x0123_4567_89ab_cdef);
        let (mut tracer, mut scratch, mut mine) = (Tracer::default(), Vec::new(), Contours::default());
        let mut total = 0;
        for case in 0..1400u32 {
            let (w, h) = (4 + rng.below(120), 4 + rng.below(90));
            let mask = random_mask(&mut rng, w, h, case % 7);
            let r = mask.roi().rect;
            mine.clear();
            tracer.trace_external(&mask.roi().data, r.w as usize, r.h as usize, r.x as i32, r.y as i32, &mut mine);
            let mut got: Vec<Vec<(i32, i32)>> = mine.iter().map(|c| c.iter().map(|p| (p.x, p.y)).collect()).collect();
            let theirs = opencv_external_contours(&mut scratch, &mask, imgproc::CHAIN_APPROX_NONE).unwrap();
            let mut want: Vec<Vec<(i32, i32)>> =
                theirs.iter().map(|c| c.iter().map(|p| (p.x, p.y)).collect()).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "case {case}: {w}x{h}, ROI {r:?}");
            total += want.len();
        }
        assert!(total > 3000, "{total} contours");
    }
}
