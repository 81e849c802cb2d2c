//! CLIP's image preprocessing, in pure Rust (no OpenCV): open_clip's eval transform
//! `Resize(224, bicubic) → CenterCrop(224) → ToTensor → Normalize(CLIP mean, std)`.
//!
//! The resize is Pillow's (`Image.resize(size, BICUBIC)`, what torchvision's `Resize` calls on a
//! PIL image) re-implemented from its algorithm: a separable two-pass convolution (horizontal
//! first, into an 8-bit intermediate), bicubic kernel with `a = -0.5`, support widened by the scale
//! when shrinking (antialiasing), weights normalised per output pixel and applied in 22-bit fixed
//! point with round-half-up and clamping, exactly as Pillow's `Resample.c` does. So the resized
//! pixels are Pillow's own (the parity test measures it); any difference left comes from decoding
//! the JPEG (a different libjpeg build or IDCT), not from the resize.
//!
//! Only the 224×224 window the centre crop keeps is computed (the result is identical to resizing
//! the whole image and cropping).

use crate::types::{ImageView, PixelFormat};

/// The CLIP input side.
pub const CLIP_SIZE: u32 = 224;
/// CLIP's per-channel mean (RGB).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel standard deviation (RGB).
#[allow(clippy::excessive_precision)] // the published constants, as open_clip writes them
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// An owned, tightly packed RGB image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    /// `3 * width * height` bytes, RGB, row-major.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// A copy of `view` in RGB order.
    pub fn from_view(view: &ImageView<'_>) -> RgbImage {
        let mut data = Vec::with_capacity(view.width as usize * view.height as usize * 3);
        for y in 0..view.height {
            let row = view.row(y);
            match view.format {
                PixelFormat::Rgb8 => data.extend_from_slice(row),
                PixelFormat::Bgr8 => data.extend(row.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]])),
            }
        }
        RgbImage { width: view.width, height: view.height, data }
    }
}

/// torchvision `Resize(size)` on the shortest side: `(new_w, new_h)` with the short side `size`
/// and the long side `int(size * long / short)`.
pub fn short_side_size(w: u32, h: u32, size: u32) -> (u32, u32) {
    if w <= h {
        (size, ((size as u64 * h as u64) / w.max(1) as u64) as u32)
    } else {
        (((size as u64 * w as u64) / h.max(1) as u64) as u32, size)
    }
}

/// torchvision `CenterCrop` offset: `int(round((len - crop) / 2))` with Python's round (half to
/// even).
pub fn center_crop_offset(len: u32, crop: u32) -> u32 {
    let d = len.saturating_sub(crop);
    let q = d / 2;
    if d % 2 == 1 && q % 2 == 1 { q + 1 } else { q }
}

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for resizing `in_size` to `out_size`:
/// per output pixel `(first input pixel, fixed-point weights)`.
fn coeffs(in_size: u32, out_size: u32) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut k: Vec<f64> = (0..n).map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                for v in &mut k {
                    *v /= ww;
                }
            }
            let one = (1u32 << PRECISION_BITS) as f64;
            let fixed =
                k.iter().map(|&v| if v < 0.0 { (-0.5 + v * one) as i32 } else { (0.5 + v * one) as i32 }).collect();
            (xmin as usize, fixed)
        })
        .collect()
}

#[inline]
fn clip8(ss: i64) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The window `(x0, y0, cw, ch)` of `src` resized to `(out_w, out_h)` with Pillow's bicubic filter:
/// identical to resizing the whole image and cropping the window.
pub fn resize_window(src: &RgbImage, out_w: u32, out_h: u32, window: (u32, u32, u32, u32)) -> RgbImage {
    let (x0, y0, cw, ch) = window;
    let sw = src.width as usize;
    let need_h = out_w != src.width;
    let need_v = out_h != src.height;
    let hc = need_h.then(|| coeffs(src.width, out_w));
    let vc = need_v.then(|| coeffs(src.height, out_h));
    // source rows the vertical pass reads for the window's rows
    let (r0, r1) = match &vc {
        Some(vc) => {
            let rows = &vc[y0 as usize..(y0 + ch) as usize];
            let first = rows.iter().map(|r| r.0).min().unwrap_or(0);
            let last = rows.iter().map(|r| r.0 + r.1.len()).max().unwrap_or(0);
            (first, last)
        }
        None => (y0 as usize, (y0 + ch) as usize),
    };
    // horizontal pass: rows r0..r1, window columns only
    let cwu = cw as usize;
    let mut tmp = vec![0u8; (r1 - r0) * cwu * 3];
    for (ty, sy) in (r0..r1).enumerate() {
        let srow = &src.data[sy * sw * 3..(sy + 1) * sw * 3];
        let trow = &mut tmp[ty * cwu * 3..(ty + 1) * cwu * 3];
        match &hc {
            Some(hc) => {
                for (tx, (xmin, k)) in hc[x0 as usize..(x0 + cw) as usize].iter().enumerate() {
                    let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                    for (i, &w) in k.iter().enumerate() {
                        let p = &srow[(xmin + i) * 3..(xmin + i) * 3 + 3];
                        acc[0] += p[0] as i64 * w as i64;
                        acc[1] += p[1] as i64 * w as i64;
                        acc[2] += p[2] as i64 * w as i64;
                    }
                    trow[tx * 3..tx * 3 + 3].copy_from_slice(&[clip8(acc[0]), clip8(acc[1]), clip8(acc[2])]);
                }
            }
            None => trow.copy_from_slice(&srow[x0 as usize * 3..(x0 + cw) as usize * 3]),
        }
    }
    // vertical pass: whole rows at a time (accumulators across the row vectorise)
    let row_len = cwu * 3;
    let mut out = vec![0u8; row_len * ch as usize];
    // i32 as in Pillow (|sum| stays below 2^31: 255 * sum|w| * 2^22 with sum|w| < 2)
    let mut acc = vec![0i32; row_len];
    for oy in 0..ch as usize {
        let orow = &mut out[oy * row_len..(oy + 1) * row_len];
        match &vc {
            Some(vc) => {
                let (ymin, k) = &vc[y0 as usize + oy];
                acc.fill(1i32 << (PRECISION_BITS - 1));
                for (i, &w) in k.iter().enumerate() {
                    let off = (ymin + i - r0) * row_len;
                    for (a, &p) in acc.iter_mut().zip(&tmp[off..off + row_len]) {
                        *a = a.wrapping_add((p as i32).wrapping_mul(w));
                    }
                }
                for (o, &a) in orow.iter_mut().zip(&acc) {
                    *o = clip8(a as i64);
                }
            }
            None => {
                let off = (oy + y0 as usize - r0) * row_len;
                orow.copy_from_slice(&tmp[off..off + row_len]);
            }
        }
    }
    RgbImage { width: cw, height: ch, data: out }
}

/// open_clip's resize (short side to 224, bicubic) and centre crop: the 224×224 RGB pixels.
pub fn resize_center_crop(src: &RgbImage) -> RgbImage {
    let (nw, nh) = short_side_size(src.width, src.height, CLIP_SIZE);
    let x0 = center_crop_offset(nw, CLIP_SIZE);
    let y0 = center_crop_offset(nh, CLIP_SIZE);
    resize_window(src, nw, nh, (x0, y0, CLIP_SIZE.min(nw), CLIP_SIZE.min(nh)))
}

/// `ToTensor` + `Normalize`: 224×224 RGB pixels into `out` (`3*224*224` floats, CHW), in float32
/// with torch's order of operations (`x / 255`, then `(x - mean) / std`).
pub fn normalize_into(img: &RgbImage, out: &mut [f32]) {
    let plane = img.width as usize * img.height as usize;
    debug_assert_eq!(out.len(), plane * 3);
    for c in 0..3 {
        let (m, s) = (CLIP_MEAN[c], CLIP_STD[c]);
        for (o, p) in out[c * plane..(c + 1) * plane].iter_mut().zip(img.data.chunks_exact(3)) {
            *o = (p[c] as f32 / 255.0 - m) / s;
        }
    }
}

/// The full CLIP preprocessing of one image: `[3, 224, 224]` floats appended to `out`.
/// Images smaller than one pixel on a side are not valid CLIP inputs (the caller skips them).
pub fn preprocess_into(src: &RgbImage, out: &mut Vec<f32>) {
    let crop = resize_center_crop(src);
    let n = out.len();
    out.resize(n + 3 * (CLIP_SIZE * CLIP_SIZE) as usize, 0.0);
    normalize_into(&crop, &mut out[n..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_torchvision() {
        assert_eq!(short_side_size(600, 400, 224), (336, 224));
        assert_eq!(short_side_size(400, 600, 224), (224, 336));
        // int() truncates: 224 * 1001 / 1000 = 224.224
        assert_eq!(short_side_size(1001, 1000, 224), (224, 224));
        assert_eq!(center_crop_offset(336, 224), 56);
        // Python round(0.5) = 0, round(1.5) = 2, round(2.5) = 2
        assert_eq!(center_crop_offset(225, 224), 0);
        assert_eq!(center_crop_offset(227, 224), 2);
        assert_eq!(center_crop_offset(229, 224), 2);
    }

    #[test]
    fn constant_image_stays_constant_and_identity_size_is_a_copy() {
        let src = RgbImage { width: 50, height: 30, data: [10u8, 128, 250].repeat(50 * 30) };
        let r = resize_window(&src, 373, 224, (0, 0, 373, 224));
        assert!(r.data.chunks_exact(3).all(|p| p == [10, 128, 250]));
        let ramp = RgbImage { width: 4, height: 3, data: (0..36).map(|v| v as u8).collect() };
        assert_eq!(resize_window(&ramp, 4, 3, (0, 0, 4, 3)), ramp);
        assert_eq!(resize_window(&ramp, 4, 3, (1, 1, 2, 2)).data, [15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32]);
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let (w, h) = (97u32, 61u32);
        let data: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        let src = RgbImage { width: w, height: h, data };
        for (ow, oh) in [(40, 25), (300, 180), (97, 30)] {
            let full = resize_window(&src, ow, oh, (0, 0, ow, oh));
            let win = resize_window(&src, ow, oh, (5, 3, ow - 11, oh - 7));
            for y in 0..oh - 7 {
                for x in 0..ow - 11 {
                    let a = ((y * (ow - 11) + x) * 3) as usize;
                    let b = (((y + 3) * ow + x + 5) * 3) as usize;
                    assert_eq!(win.data[a..a + 3], full.data[b..b + 3], "{ow}x{oh} at {x},{y}");
                }
            }
        }
    }
}
