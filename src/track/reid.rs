//! Appearance re-identification of lost tracks (`[reid]` in the tracker config).
//!
//! ByteTrack re-finds a lost track only where its Kalman-predicted box still overlaps a new
//! detection. An object that leaves the view, or stays hidden or undetected for longer than the
//! motion model can bridge, comes back as a new track with a new ID. With `[reid]` enabled, a
//! track that is about to receive its first ID (lazy IDs: when it is confirmed) is compared by
//! appearance with the lost tracks first; if one is similar enough, the new track continues that
//! track's ID instead, and the lost track is retired.
//!
//! The appearance of a detection is the colour histogram of the frame's pixels under its mask
//! (8 x 8 x 8 bins, L1-normalised); a track keeps an exponential moving average of the
//! histograms of its confident matches. Similarity is the Bhattacharyya coefficient (1 for equal
//! histograms, 0 for disjoint ones). This is a cheap, model-free stand-in for the learned
//! re-ID embeddings of BoT-SORT or Deep OC-SORT: it needs no second network and costs one pass
//! over a subsample of the mask's pixels per confident match.

use serde::{Deserialize, Serialize};

use crate::mask::RoiBitmap;
use crate::types::{ImageView, PixelFormat};

use super::TrackError;

/// Bins per colour channel.
const BINS: usize = 8;
/// Length of an appearance vector.
pub const FEATURE_LEN: usize = BINS * BINS * BINS;

/// Appearance re-identification parameters (TOML table `[reid]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReidConfig {
    /// Compare newly confirmed tracks with lost tracks by appearance before giving them an ID.
    pub enabled: bool,
    /// Minimum Bhattacharyya similarity (0..1) of the two colour histograms.
    pub min_similarity: f32,
    /// The best lost track must beat the second best by at least this much (0 disables).
    pub margin: f32,
    /// Weight of the previous appearance in the moving average (0..1).
    pub ema: f32,
    /// How far (in multiples of the lost track's box diagonal) the new track's centre may lie
    /// from the lost track's last seen centre, plus that much again per `gate_frames` frames lost.
    pub gate: f32,
    /// Frames over which the gate grows by one more `gate` (how far a hidden object may travel).
    pub gate_frames: u32,
}

impl Default for ReidConfig {
    fn default() -> Self {
        Self { enabled: false, min_similarity: 0.8, margin: 0.0, ema: 0.9, gate: 2.0, gate_frames: 25 }
    }
}

impl ReidConfig {
    /// Check the parameters' ranges.
    pub fn validate(&self) -> Result<(), TrackError> {
        for (name, v) in
            [("reid.min_similarity", self.min_similarity), ("reid.margin", self.margin), ("reid.ema", self.ema)]
        {
            if !(0.0..=1.0).contains(&v) {
                return Err(TrackError::InvalidParameter { name, value: v.to_string(), fix: "use a value in [0, 1]" });
            }
        }
        if !(self.gate.is_finite() && self.gate > 0.0) {
            return Err(TrackError::InvalidParameter {
                name: "reid.gate",
                value: self.gate.to_string(),
                fix: "use a positive number of box diagonals",
            });
        }
        if self.gate_frames == 0 {
            return Err(TrackError::InvalidParameter {
                name: "reid.gate_frames",
                value: "0".into(),
                fix: "use at least 1",
            });
        }
        Ok(())
    }
}

/// The L1-normalised colour histogram of `image` under `mask` (every second pixel of every
/// second row). `None` when the mask does not belong to this image or covers no sampled pixel.
///
/// Counts in integers without a branch per pixel (each sampled pixel adds its mask value, 0 or
/// 1), in four interleaved tables (so that runs of one colour, which hit one bin, do not wait on
/// each other's increments), then converts each count to `f32` once: the same
/// values as adding `1.0` per pixel in `f32` wherever no bin can exceed 2^24 pixels (`f32`
/// counts exactly up to there), and that loop itself on larger masks (and on a mask whose
/// rectangle leaves the image).
pub fn histogram(image: &ImageView<'_>, mask: &RoiBitmap, out: &mut Vec<f32>) -> bool {
    let r = mask.rect;
    let samples = (r.w as u64).div_ceil(2) * (r.h as u64).div_ceil(2);
    if samples > 1 << 24 || r.x as u64 + r.w as u64 > image.width as u64 {
        return histogram_f32(image, mask, out);
    }
    out.clear();
    out.resize(FEATURE_LEN, 0.0);
    if mask.img_w != image.width || mask.img_h != image.height {
        return false;
    }
    let (c0, c2) = match image.format {
        PixelFormat::Rgb8 => (0, 2),
        PixelFormat::Bgr8 => (2, 0),
    };
    let shift = 8 - BINS.trailing_zeros();
    let mut counts = [[0u32; FEATURE_LEN]; 4];
    let mut n = 0usize;
    let mut complete = true;
    for yy in (0..r.h).step_by(2) {
        let row = &mask.data[(yy * r.w) as usize..((yy + 1) * r.w) as usize];
        let y = (r.y + yy) as usize;
        let Some(px_row) = image.data.get(y * image.stride..y * image.stride + image.width as usize * 3) else {
            complete = false;
            break;
        };
        // The rectangle lies inside the image: `px` holds its row and maybe more.
        let px = &px_row[r.x as usize * 3..];
        // Branch-free: every sampled pixel adds its mask value (0 or 1) to its bin.
        for (k, (&m, p)) in row.iter().step_by(2).zip(px.chunks_exact(6)).enumerate() {
            let bin = ((p[c0] >> shift) as usize * BINS + (p[1] >> shift) as usize) * BINS + (p[c2] >> shift) as usize;
            let on = (m != 0) as u32;
            counts[k & 3][bin] += on;
            n += on as usize;
        }
        // The last sampled pixel of an odd-width row at the image's right edge has no 6 bytes.
        if r.w % 2 == 1 && row[r.w as usize - 1] != 0 && px.len() < r.w as usize * 3 + 3 {
            let p = &px[(r.w as usize - 1) * 3..];
            let bin = ((p[c0] >> shift) as usize * BINS + (p[1] >> shift) as usize) * BINS + (p[c2] >> shift) as usize;
            counts[n & 3][bin] += 1;
            n += 1;
        }
    }
    for (b, o) in out.iter_mut().enumerate() {
        *o = (counts[0][b] + counts[1][b] + counts[2][b] + counts[3][b]) as f32;
    }
    if !complete || n == 0 {
        return false;
    }
    let inv = 1.0 / n as u32 as f32;
    out.iter_mut().for_each(|v| *v *= inv);
    true
}

/// [`histogram`] adding `1.0` per pixel in `f32`: the loop it replaced, used for masks too large
/// for its exactness argument, and its test reference.
fn histogram_f32(image: &ImageView<'_>, mask: &RoiBitmap, out: &mut Vec<f32>) -> bool {
    out.clear();
    out.resize(FEATURE_LEN, 0.0);
    if mask.img_w != image.width || mask.img_h != image.height {
        return false;
    }
    let r = mask.rect;
    let (c0, c2) = match image.format {
        PixelFormat::Rgb8 => (0, 2),
        PixelFormat::Bgr8 => (2, 0),
    };
    let shift = 8 - BINS.trailing_zeros();
    let mut n = 0u32;
    for yy in (0..r.h).step_by(2) {
        let row = &mask.data[(yy * r.w) as usize..((yy + 1) * r.w) as usize];
        let y = (r.y + yy) as usize;
        let Some(px_row) = image.data.get(y * image.stride..y * image.stride + image.width as usize * 3) else {
            return false;
        };
        for xx in (0..r.w as usize).step_by(2) {
            if row[xx] == 0 {
                continue;
            }
            let p = &px_row[(r.x as usize + xx) * 3..(r.x as usize + xx) * 3 + 3];
            let bin = ((p[c0] >> shift) as usize * BINS + (p[1] >> shift) as usize) * BINS + (p[c2] >> shift) as usize;
            out[bin] += 1.0;
            n += 1;
        }
    }
    if n == 0 {
        return false;
    }
    let inv = 1.0 / n as f32;
    out.iter_mut().for_each(|v| *v *= inv);
    true
}

/// Bhattacharyya coefficient of two L1-normalised histograms.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x * y).sqrt()).sum::<f32>().min(1.0)
}

/// `avg = ema * avg + (1 - ema) * new`.
pub fn blend(avg: &mut [f32], new: &[f32], ema: f32) {
    for (a, n) in avg.iter_mut().zip(new) {
        *a = ema * *a + (1.0 - ema) * n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::PixelRect;

    fn image(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&f(x, y));
            }
        }
        v
    }

    fn full_mask(w: u32, h: u32, rect: PixelRect) -> RoiBitmap {
        RoiBitmap { img_w: w, img_h: h, rect, data: vec![1; (rect.w * rect.h) as usize] }
    }

    #[test]
    fn histogram_sees_only_the_masked_pixels() {
        // Left half red, right half blue: a mask over the left half is pure red.
        let (w, h) = (16, 8);
        let data = image(w, h, |x, _| if x < 8 { [255, 0, 0] } else { [0, 0, 255] });
        let img = ImageView::packed(w, h, PixelFormat::Rgb8, &data).unwrap();
        let mut left = Vec::new();
        assert!(histogram(&img, &full_mask(w, h, PixelRect::new(0, 0, 8, 8)), &mut left));
        let red_bin = (BINS - 1) * BINS * BINS;
        assert_eq!(left[red_bin], 1.0);
        let mut right = Vec::new();
        assert!(histogram(&img, &full_mask(w, h, PixelRect::new(8, 0, 8, 8)), &mut right));
        assert_eq!(right[BINS - 1], 1.0);
        assert_eq!(similarity(&left, &right), 0.0);
        assert!((similarity(&left, &left) - 1.0).abs() < 1e-6);
        // The same image as BGR: the red region has the same histogram as RGB red.
        let bgr = image(w, h, |x, _| if x < 8 { [0, 0, 255] } else { [255, 0, 0] });
        let img_bgr = ImageView::packed(w, h, PixelFormat::Bgr8, &bgr).unwrap();
        let mut left_bgr = Vec::new();
        assert!(histogram(&img_bgr, &full_mask(w, h, PixelRect::new(0, 0, 8, 8)), &mut left_bgr));
        assert_eq!(left_bgr, left);
        // Half and half: similarity sqrt(0.5) with each pure half.
        let mut both = Vec::new();
        assert!(histogram(&img, &full_mask(w, h, PixelRect::new(0, 0, 16, 8)), &mut both));
        assert!((similarity(&both, &left) - 0.5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn a_mask_of_another_image_size_or_empty_has_no_histogram() {
        let data = image(8, 8, |_, _| [1, 2, 3]);
        let img = ImageView::packed(8, 8, PixelFormat::Rgb8, &data).unwrap();
        let mut h = Vec::new();
        assert!(!histogram(&img, &full_mask(16, 16, PixelRect::new(0, 0, 8, 8)), &mut h));
        let empty = RoiBitmap { img_w: 8, img_h: 8, rect: PixelRect::new(0, 0, 4, 4), data: vec![0; 16] };
        assert!(!histogram(&img, &empty, &mut h));
    }

    /// `histogram` against the `f32` loop it replaced, bit for bit (values and verdict), on random
    /// images (RGB and BGR, padded rows, short data) and masks (any rectangle, touching the
    /// image's edges or not, odd and even sizes, sparse to full, empty, of another image size).
    #[test]
    fn histogram_matches_the_f32_loop() {
        let mut rng = crate::test_rng::Rng(0x5EED_0FC0);
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        let mut valid = 0;
        for case in 0..3000 {
            let (w, h) = (1 + rng.below(90), 1 + rng.below(70));
            let stride = (w * 3 + rng.below(3) * rng.below(7)) as usize;
            let format = if rng.below(2) == 0 { PixelFormat::Rgb8 } else { PixelFormat::Bgr8 };
            // A few colours, in runs (one bin hit many times in a row), or noise.
            let palette: Vec<u8> = (0..3 * (1 + rng.below(4))).map(|_| rng.next() as u8).collect();
            let noisy = rng.below(3) == 0;
            let mut data: Vec<u8> = (0..stride * h as usize)
                .map(|i| if noisy { rng.next() as u8 } else { palette[(i / 3 / 5 * 3 + i % 3) % palette.len()] })
                .collect();
            if rng.below(20) == 0 {
                data.truncate(stride * rng.below(h) as usize + rng.below(stride as u32) as usize);
            }
            let img = ImageView { width: w, height: h, stride, format, data: &data };
            let x = rng.below(w);
            let y = rng.below(h);
            // Often up to the right or bottom edge.
            let rw = if rng.below(3) == 0 { w - x } else { rng.below(w - x + 1) };
            let rh = if rng.below(3) == 0 { h - y } else { rng.below(h - y + 1) };
            let density = rng.below(101);
            let mut mask = RoiBitmap {
                img_w: w,
                img_h: h,
                rect: PixelRect::new(x, y, rw, rh),
                data: (0..rw * rh).map(|_| (rng.below(100) < density) as u8).collect(),
            };
            if rng.below(30) == 0 {
                mask.img_w += 1;
            }
            let ok = histogram(&img, &mask, &mut fast);
            let want = histogram_f32(&img, &mask, &mut slow);
            assert_eq!(ok, want, "case {case}: {w}x{h}, rect {:?}", mask.rect);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "case {case}: {w}x{h}, rect {:?}", mask.rect);
            valid += ok as u32;
        }
        assert!(valid > 1500, "only {valid} cases with a histogram");
    }

    #[test]
    fn out_of_range_parameters_are_refused() {
        assert!(ReidConfig::default().validate().is_ok());
        assert!(ReidConfig { min_similarity: 1.5, ..ReidConfig::default() }.validate().is_err());
        assert!(ReidConfig { gate: 0.0, ..ReidConfig::default() }.validate().is_err());
        assert!(ReidConfig { gate_frames: 0, ..ReidConfig::default() }.validate().is_err());
    }
}
