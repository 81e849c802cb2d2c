//! fastsam-track: real-time video segmentation and tracking with FastSAM.
//!
//! Stages (one module each): [`model`] (FastSAM inference, pre/post-processing, prompts),
//! [`track`] (ByteTrack), [`video`] (GStreamer sources, sinks and the threaded pipeline),
//! [`overlay`] (drawing), [`export`] (track files), [`eval`] (MOT metrics),
//! [`convert`] (checkpoint download and `.pt` → ONNX conversion). [`outputs`] keeps every
//! subcommand from overwriting its inputs and writes outputs atomically. [`cli`] is the thin
//! command-line front end used by the `fastsam-track` binary.

pub mod assets;
pub mod cli;
pub mod convert;
pub mod error;
pub mod eval;
pub mod export;
pub mod mask;
pub mod model;
pub mod outputs;
pub mod overlay;
pub mod runtime;
pub mod track;
pub mod types;
pub mod video;

pub use error::{Error, Result};
pub use mask::{Bitmap, Mask, MaskSource, PixelRect, Rle, RoiBitmap};
pub use types::{BBox, Detection, ImageView, PixelFormat, SegmentTimings, Segmenter};
