//! Cost matrices for association: box IoU distance (bit-compatible with Ultralytics'
//! `bbox_ioa(iou=True)` in `float32`, including its `eps = 1e-7`), score fusion, and mask IoU
//! between a track's last mask (kept downscaled) and a detection's mask, evaluated only where the
//! boxes overlap.

use crate::mask::{PixelRect, RoiBitmap};

/// IoU of two `xyxy` boxes exactly as Ultralytics computes it in `float32`.
#[inline]
pub fn iou_f32(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let union = area_b + area_a - inter;
    inter / (union + 1e-7f32)
}

/// Fill `out` (row-major `a.len() x b.len()`) with `1 - IoU` (f32 arithmetic, like Ultralytics).
pub fn iou_distance(a: &[[f32; 4]], b: &[[f32; 4]], out: &mut Vec<f32>) {
    out.clear();
    out.reserve(a.len() * b.len());
    for ra in a {
        for rb in b {
            out.push(1.0 - iou_f32(ra, rb));
        }
    }
}

/// Ultralytics' `fuse_score`: `cost = 1 - (1 - cost) * score`, in f32.
pub fn fuse_score(cost: &mut [f32], scores: &[f32]) {
    if scores.is_empty() {
        return;
    }
    for row in cost.chunks_mut(scores.len()) {
        for (c, s) in row.iter_mut().zip(scores) {
            let sim = 1.0 - *c;
            *c = 1.0 - sim * *s;
        }
    }
}

/// A binary mask downscaled by an integer factor (nearest sampling at block centres), with its
/// pixel count. Coordinates are in downscaled pixels.
#[derive(Debug, Clone, Default)]
pub struct SmallMask {
    pub roi: RoiBitmap,
    pub area: u64,
}

impl SmallMask {
    /// Downscale a full-resolution ROI mask by `factor` (>= 1), reusing `self`'s buffer.
    pub fn downscale_from(&mut self, src: &RoiBitmap, factor: u32) {
        let f = factor.max(1);
        let sw = src.img_w.div_ceil(f);
        let sh = src.img_h.div_ceil(f);
        let r = src.rect;
        self.roi.img_w = sw;
        self.roi.img_h = sh;
        self.roi.data.clear();
        self.area = 0;
        if r.is_empty() {
            self.roi.rect = PixelRect::default();
            return;
        }
        // Small pixel (sx, sy) samples the full pixel at the block centre (sx*f + f/2, sy*f + f/2).
        let half = f / 2;
        let x0 = r.x.saturating_sub(half).div_ceil(f);
        let y0 = r.y.saturating_sub(half).div_ceil(f);
        let x1 = r.right().saturating_sub(half).div_ceil(f).min(sw).max(x0);
        let y1 = r.bottom().saturating_sub(half).div_ceil(f).min(sh).max(y0);
        self.roi.rect = PixelRect::new(x0, y0, x1 - x0, y1 - y0);
        self.roi.data.reserve((x1 - x0) as usize * (y1 - y0) as usize);
        // Every sample lies inside `r` (x0..x1 and y0..y1 were chosen so), so rows and columns
        // index the ROI directly.
        let (rw, step) = (r.w as usize, f as usize);
        if x1 == x0 {
            return;
        }
        for sy in y0..y1 {
            let row = &src.data[(sy * f + half - r.y) as usize * rw..][..rw];
            let first = (x0 * f + half - r.x) as usize;
            let before = self.roi.data.len();
            self.roi.data.extend(row[first..].iter().step_by(step).take((x1 - x0) as usize).map(|&v| (v != 0) as u8));
            self.area += self.roi.data[before..].iter().map(|&v| v as u64).sum::<u64>();
        }
    }

    /// IoU with `other` shifted by `(dx, dy)` small pixels (0 when both are empty).
    pub fn iou_shifted(&self, other: &SmallMask, dx: i32, dy: i32) -> f32 {
        let inter = self.roi.intersection_area(&other.roi, dx, dy);
        let union = self.area + other.area - inter;
        if union == 0 { 0.0 } else { (inter as f64 / union as f64) as f32 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::Bitmap;

    #[test]
    fn iou_known_value() {
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [5.0, 0.0, 15.0, 10.0];
        assert!((iou_f32(&a, &b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(iou_f32(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
    }

    /// The sampling as first written (`RoiBitmap::get` per small pixel, bounds checked): the
    /// reference for the row-slice version.
    fn downscale_reference(src: &RoiBitmap, f: u32) -> (PixelRect, Vec<u8>, u64) {
        let mut m = SmallMask::default();
        m.downscale_from(src, f); // for the rectangle only
        let r = m.roi.rect;
        let half = f / 2;
        let mut data = Vec::new();
        for sy in r.y..r.bottom() {
            for sx in r.x..r.right() {
                data.push(src.get(sx * f + half, sy * f + half) as u8);
            }
        }
        let area = data.iter().map(|&v| v as u64).sum();
        (r, data, area)
    }

    #[test]
    fn downscale_equals_per_pixel_sampling_on_random_masks() {
        let mut rng = crate::test_rng::Rng(0x5eed_u64);
        let mut rnd = move |n: u32| rng.below(n);
        for case in 0..300 {
            let (w, h) = (1 + rnd(200), 1 + rnd(120));
            let (x, y) = (rnd(w), rnd(h));
            let rect = PixelRect::new(x, y, rnd(w - x + 1), rnd(h - y + 1));
            let data = (0..rect.area()).map(|_| [0u8, 1, 255][rnd(3) as usize]).collect();
            let src = RoiBitmap { img_w: w, img_h: h, rect, data };
            for f in [1u32, 2, 3, 4, 5, 8] {
                let mut m = SmallMask::default();
                m.downscale_from(&src, f);
                let (r, data, area) = downscale_reference(&src, f);
                assert_eq!((m.roi.rect, &m.roi.data, m.area), (r, &data, area), "case {case}, factor {f}");
                assert_eq!((m.roi.img_w, m.roi.img_h), (w.div_ceil(f), h.div_ceil(f)));
            }
        }
    }

    #[test]
    fn downscaled_mask_iou_tracks_full_resolution() {
        // Two 40x40 squares offset by 8 px: full-res IoU = 32*40 / (2*1600 - 32*40).
        let mut a = Bitmap::zeros(128, 96);
        let mut b = Bitmap::zeros(128, 96);
        for y in 20..60 {
            for x in 10..50 {
                a.data[y * 128 + x] = 1;
                b.data[y * 128 + x + 8] = 1;
            }
        }
        let (ra, rb) = (RoiBitmap::from_full(&a), RoiBitmap::from_full(&b));
        let full = ra.iou(&rb) as f32;
        let (mut sa, mut sb) = (SmallMask::default(), SmallMask::default());
        sa.downscale_from(&ra, 4);
        sb.downscale_from(&rb, 4);
        assert_eq!(sa.area, 100);
        assert!((sa.iou_shifted(&sb, 0, 0) - full).abs() < 0.02, "{} vs {full}", sa.iou_shifted(&sb, 0, 0));
        // Shifting a by the 8 px (2 small px) offset makes them coincide.
        assert!((sb.iou_shifted(&sa, 2, 0) - 1.0).abs() < 1e-6);
    }
}
