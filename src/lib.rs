//! fastsam-track: real-time video segmentation and tracking with FastSAM.
//!
//! The model core builds without GStreamer (and, once letterboxing is pure Rust, without
//! OpenCV):
//! - [`model`]: FastSAM inference, pre/post-processing, prompts; sessions from [`engine`];
//! - [`track`]: ByteTrack with mask-aware association;
//! - [`stream`]: the per-stream core ([`stream::StreamProcessor`]) every way in shares: the CLI on
//!   files, live cameras, many streams in one process, the GStreamer element;
//! - [`export`] (track files), [`eval`] (MOT metrics), [`convert`] (`.pt` → ONNX), [`frame`]
//!   (decoded frames and their pool), [`overlay`] (what to draw; drawing with feature `overlay`),
//!   [`outputs`] (no run overwrites its inputs; outputs are written atomically).
//!
//! Feature `video` adds [`video`]: GStreamer sources and sinks, the threaded pipeline and the
//! multi-stream runner with its batching stage. The `fastsam-track` binary (feature `cli`) is a
//! thin front end over this library.

pub mod clip;
pub mod convert;
pub mod engine;
pub mod eval;
pub mod export;
pub mod frame;
pub mod mask;
pub mod model;
pub mod outputs;
pub mod overlay;
pub mod runtime;
pub mod stream;
#[cfg(test)]
mod test_rng;
pub mod track;
pub mod types;
#[cfg(feature = "video")]
pub mod video;

pub use mask::{Bitmap, Mask, MaskSource, PixelRect, Rle, RoiBitmap};
pub use types::{BBox, Detection, ImageView, PixelFormat, SegmentTimings, Segmenter};
