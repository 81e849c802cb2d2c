//! Data types shared by every stage: boxes, image views, detections and the segmenter trait.

use serde::{Deserialize, Serialize};

use crate::mask::Mask;
use crate::model::ModelError;

/// An axis-aligned box in continuous pixel coordinates: `x1,y1` top-left, `x2,y2` bottom-right.
/// A box covering pixel columns 0..=9 has `x1 = 0, x2 = 10`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }
    pub fn from_xywh(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self::new(x, y, x + w, y + h)
    }
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) * 0.5, (self.y1 + self.y2) * 0.5)
    }
    /// Intersection over union (0 when the union is empty).
    pub fn iou(&self, o: &BBox) -> f32 {
        let iw = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let ih = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        let inter = iw * ih;
        let uni = self.area() + o.area() - inter;
        if uni <= 0.0 { 0.0 } else { inter / uni }
    }
    pub fn to_array(&self) -> [f32; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }
}

/// Channel order of 8-bit, 3-channel interleaved pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelFormat {
    Rgb8,
    Bgr8,
}

/// A borrowed 8-bit, 3-channel image.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    pub width: u32,
    pub height: u32,
    /// Bytes per row (>= `3 * width`).
    pub stride: usize,
    pub format: PixelFormat,
    pub data: &'a [u8],
}

impl<'a> ImageView<'a> {
    /// A tightly packed image; `None` if `data` is too short.
    pub fn packed(width: u32, height: u32, format: PixelFormat, data: &'a [u8]) -> Option<Self> {
        let stride = width as usize * 3;
        (data.len() >= stride * height as usize).then_some(Self { width, height, stride, format, data })
    }
    /// Row `y` as `3 * width` bytes.
    pub fn row(&self, y: u32) -> &'a [u8] {
        let off = y as usize * self.stride;
        &self.data[off..off + self.width as usize * 3]
    }
}

/// One segmented instance, in original-image coordinates.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// Final box in original pixels.
    pub bbox: BBox,
    pub score: f32,
    pub class_id: u32,
    /// The instance mask at original image size (lazy; serialised as COCO RLE).
    pub mask: Option<Mask>,
}

/// Anything that turns an image into instance detections: the FastSAM ONNX model, or a scripted
/// source in tests. The pipeline's segmentation stage owns one.
pub trait Segmenter: Send {
    /// Segment one frame.
    fn segment(&mut self, image: ImageView<'_>) -> Result<Vec<Detection>, ModelError>;

    /// Segment several frames (for batched inference); one result per image, in order. The
    /// default runs them one by one; [`crate::model::FastSam`] runs up to
    /// [`Segmenter::max_batch`] frames in one inference call.
    fn segment_batch(&mut self, images: &[ImageView<'_>]) -> Result<Vec<Vec<Detection>>, ModelError> {
        images.iter().map(|im| self.segment(*im)).collect()
    }

    /// How many frames one inference call takes at most (a batching stage gathers up to this
    /// many). 1 for segmenters that do not batch.
    fn max_batch(&self) -> usize {
        1
    }

    /// A short human-readable description (model file, provider, input size).
    fn describe(&self) -> String;

    /// Time spent in the last call, split into pre-processing, inference and post-processing.
    fn last_timings(&self) -> SegmentTimings {
        SegmentTimings::default()
    }
}

/// Per-call timing of a [`Segmenter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SegmentTimings {
    pub pre: std::time::Duration,
    pub infer: std::time::Duration,
    pub post: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_iou_known_values() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(a.iou(&a), 1.0);
    }
}
