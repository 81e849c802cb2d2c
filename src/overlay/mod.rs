//! Drawing detections and tracks onto frames: alpha-blended masks, contours, ID labels and
//! optional boxes/scores.
//!
//! Colours come from a key (the track ID in the pipeline, the detection index for single images)
//! through [`color_for`], so a track keeps its colour for its whole life. Masks are blended only
//! inside their region of interest; contours are traced by OpenCV on that region alone. The
//! [`Overlay`] keeps its scratch buffers between frames.

use crate::mask::Mask;
use crate::types::BBox;

#[cfg(feature = "overlay")]
mod contour;
#[cfg(feature = "overlay")]
mod draw;
#[cfg(feature = "overlay")]
pub use draw::{Overlay, OverlayError};

/// How the overlay looks.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayStyle {
    /// Mask opacity, 0..=1.
    pub alpha: f32,
    /// Draw mask outlines.
    pub contours: bool,
    /// Outline thickness in pixels.
    pub contour_thickness: i32,
    /// Draw the bounding box.
    pub show_boxes: bool,
    /// Draw the label (e.g. the track ID).
    pub show_labels: bool,
    /// Append the score to the label.
    pub show_scores: bool,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            contours: true,
            contour_thickness: 2,
            show_boxes: false,
            show_labels: true,
            show_scores: false,
        }
    }
}

/// One thing to draw.
#[derive(Debug, Clone)]
pub struct OverlayItem<'a> {
    pub mask: Option<&'a Mask>,
    pub bbox: BBox,
    /// Selects the colour (track ID or detection index).
    pub color_key: u64,
    pub label: Option<String>,
    pub score: Option<f32>,
}

/// A deterministic, well-spread RGB colour for `key` (golden-ratio hue walk, full saturation).
pub fn color_for(key: u64) -> [u8; 3] {
    let h = (key as f64 * 0.618_033_988_749_895).fract();
    let (s, v) = (0.85, 0.95);
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    let (r, g, b) = match i as u32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [(r * 255.0).round() as u8, (g * 255.0).round() as u8, (b * 255.0).round() as u8]
}
