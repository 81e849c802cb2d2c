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
pub fn histogram(image: &ImageView<'_>, mask: &RoiBitmap, out: &mut Vec<f32>) -> bool {
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

    #[test]
    fn out_of_range_parameters_are_refused() {
        assert!(ReidConfig::default().validate().is_ok());
        assert!(ReidConfig { min_similarity: 1.5, ..ReidConfig::default() }.validate().is_err());
        assert!(ReidConfig { gate: 0.0, ..ReidConfig::default() }.validate().is_err());
        assert!(ReidConfig { gate_frames: 0, ..ReidConfig::default() }.validate().is_err());
    }
}
