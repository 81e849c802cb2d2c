//! Pixel conversions between the negotiated frame and the packed 3-channel image the model and
//! the overlay work on. BT.601 (the matrix of SD video and of the library's I420 decoder), limited
//! or full range as the caps say.

/// Copy the first three channels of each `bpp`-byte pixel (RGBA/RGBx → RGB, BGRx → BGR) into a
/// tightly packed buffer.
pub fn pack3(src: &[u8], stride: usize, width: usize, height: usize, bpp: usize, out: &mut Vec<u8>) {
    out.resize(width * height * 3, 0);
    for (y, dst) in out.chunks_exact_mut(width * 3).enumerate().take(height) {
        let row = &src[y * stride..y * stride + width * bpp];
        for (d, s) in dst.chunks_exact_mut(3).zip(row.chunks_exact(bpp)) {
            d.copy_from_slice(&s[..3]);
        }
    }
}

/// The inverse of [`pack3`]: write the three channels back, leaving the fourth (alpha) untouched.
pub fn unpack3(packed: &[u8], dst: &mut [u8], stride: usize, width: usize, height: usize, bpp: usize) {
    for (y, src) in packed.chunks_exact(width * 3).enumerate().take(height) {
        let row = &mut dst[y * stride..y * stride + width * bpp];
        for (d, s) in row.chunks_exact_mut(bpp).zip(src.chunks_exact(3)) {
            d[..3].copy_from_slice(s);
        }
    }
}

/// An NV12 frame's two planes.
pub struct Nv12<'a> {
    pub y: &'a [u8],
    pub y_stride: usize,
    pub uv: &'a [u8],
    pub uv_stride: usize,
}

/// BT.601 coefficients for one range.
#[derive(Debug, Clone, Copy)]
pub struct Matrix {
    full: bool,
}

impl Matrix {
    pub fn new(full_range: bool) -> Self {
        Self { full: full_range }
    }

    #[inline]
    fn to_rgb(self, y: u8, u: u8, v: u8) -> [u8; 3] {
        let (u, v) = (u as f32 - 128.0, v as f32 - 128.0);
        let (y, ku) = if self.full { (y as f32, 1.0) } else { ((y as f32 - 16.0) * (255.0 / 219.0), 255.0 / 224.0) };
        let (u, v) = (u * ku, v * ku);
        let r = y + 1.402 * v;
        let g = y - 0.344_136 * u - 0.714_136 * v;
        let b = y + 1.772 * u;
        [clamp8(r), clamp8(g), clamp8(b)]
    }

    #[inline]
    fn luma(self, p: &[u8]) -> u8 {
        let y = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        if self.full { clamp8(y) } else { clamp8(16.0 + y * (219.0 / 255.0)) }
    }

    #[inline]
    fn chroma(self, r: f32, g: f32, b: f32) -> [u8; 2] {
        let u = -0.168_736 * r - 0.331_264 * g + 0.5 * b;
        let v = 0.5 * r - 0.418_688 * g - 0.081_312 * b;
        let k = if self.full { 1.0 } else { 224.0 / 255.0 };
        [clamp8(128.0 + u * k), clamp8(128.0 + v * k)]
    }
}

#[inline]
fn clamp8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// NV12 → packed RGB.
pub fn nv12_to_rgb(src: &Nv12<'_>, width: usize, height: usize, m: Matrix, out: &mut Vec<u8>) {
    out.resize(width * height * 3, 0);
    for (y, dst) in out.chunks_exact_mut(width * 3).enumerate().take(height) {
        let yrow = &src.y[y * src.y_stride..y * src.y_stride + width];
        let uvrow = &src.uv[(y / 2) * src.uv_stride..];
        for (x, d) in dst.chunks_exact_mut(3).enumerate() {
            let c = (x / 2) * 2;
            d.copy_from_slice(&m.to_rgb(yrow[x], uvrow[c], uvrow[c + 1]));
        }
    }
}

/// Write the pixels of `drawn` that differ from `orig` (both packed RGB) back into an NV12 frame:
/// luma of each changed pixel, chroma of each 2x2 block with a changed pixel (from the block's
/// mean colour). Untouched pixels keep their exact original values.
#[allow(clippy::too_many_arguments)]
pub fn write_back_nv12(
    orig: &[u8],
    drawn: &[u8],
    width: usize,
    height: usize,
    y_plane: &mut [u8],
    y_stride: usize,
    uv_plane: &mut [u8],
    uv_stride: usize,
    m: Matrix,
) {
    let px = |x: usize, y: usize| (y * width + x) * 3;
    for by in (0..height).step_by(2) {
        for bx in (0..width).step_by(2) {
            let mut changed = false;
            let (mut r, mut g, mut b, mut n) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
            for y in by..(by + 2).min(height) {
                for x in bx..(bx + 2).min(width) {
                    let i = px(x, y);
                    let p = &drawn[i..i + 3];
                    if p != &orig[i..i + 3] {
                        changed = true;
                        y_plane[y * y_stride + x] = m.luma(p);
                    }
                    r += p[0] as f32;
                    g += p[1] as f32;
                    b += p[2] as f32;
                    n += 1.0;
                }
            }
            if changed {
                let uv = m.chroma(r / n, g / n, b / n);
                let o = (by / 2) * uv_stride + bx;
                uv_plane[o..o + 2].copy_from_slice(&uv);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_keeps_alpha() {
        let (w, h, stride) = (3usize, 2usize, 16usize);
        let src: Vec<u8> = (0..stride * h).map(|i| i as u8).collect();
        let mut packed = Vec::new();
        pack3(&src, stride, w, h, 4, &mut packed);
        assert_eq!(&packed[..6], &[0, 1, 2, 4, 5, 6]);
        assert_eq!(&packed[9..12], &[16, 17, 18]);
        let mut dst = vec![9u8; stride * h];
        unpack3(&packed, &mut dst, stride, w, h, 4);
        for y in 0..h {
            for x in 0..w {
                let o = y * stride + x * 4;
                assert_eq!(&dst[o..o + 3], &src[o..o + 3]);
                assert_eq!(dst[o + 3], 9, "alpha untouched");
            }
        }
    }

    #[test]
    fn nv12_round_trip_and_untouched_pixels() {
        let (w, h) = (6usize, 4usize);
        for full in [false, true] {
            let m = Matrix::new(full);
            let yv: Vec<u8> = (0..w * h).map(|i| 40 + (i * 7 % 150) as u8).collect();
            let uv: Vec<u8> = (0..w * h / 2).map(|i| 100 + (i * 13 % 60) as u8).collect();
            let mut rgb = Vec::new();
            nv12_to_rgb(&Nv12 { y: &yv, y_stride: w, uv: &uv, uv_stride: w }, w, h, m, &mut rgb);
            // nothing drawn: the frame is unchanged
            let (mut y2, mut uv2) = (yv.clone(), uv.clone());
            write_back_nv12(&rgb, &rgb, w, h, &mut y2, w, &mut uv2, w, m);
            assert_eq!((y2.clone(), uv2.clone()), (yv.clone(), uv.clone()));
            // paint pixel (0,0) pure red: its luma and its block's chroma change, nothing else
            let mut drawn = rgb.clone();
            drawn[..3].copy_from_slice(&[255, 0, 0]);
            write_back_nv12(&rgb, &drawn, w, h, &mut y2, w, &mut uv2, w, m);
            let want_y = if full { 76 } else { 82 };
            assert!((y2[0] as i32 - want_y).abs() <= 1, "luma of red {}", y2[0]);
            assert_eq!(&y2[1..], &yv[1..]);
            assert_eq!(&uv2[2..], &uv[2..]);
            assert!(uv2[1] > uv[1], "V grows towards red");
        }
    }
}
