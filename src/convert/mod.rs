//! Getting a runnable ONNX model without Python: resolving `--model`, downloading the official
//! Ultralytics FastSAM checkpoints, reading them safely and converting them to ONNX in Rust.
//!
//! - [`resolve_model`]: turns a model spec (path, `FastSAM-s`, `FastSAM-x.pt`, or nothing) into an
//!   `.onnx` path, downloading and converting as needed (cached).
//! - [`download`]: resumable, verified downloads with a progress bar.
//! - [`pickle`] / [`checkpoint`]: a data-only pickle reader (never executes code) for `.pt` files.
//! - [`graph`]: builds the YOLOv8-seg ONNX graph (BatchNorm folded) from the checkpoint's modules.
//! - [`onnx_proto`]: hand-written prost structs for the ONNX protobuf schema.
//! - [`quantize`]: static INT8 (QDQ) quantization with calibration, for fast CPU inference.

use std::path::{Path, PathBuf};

pub mod cache;
pub mod checkpoint;
pub mod download;
pub mod graph;
pub mod onnx_proto;
pub mod pickle;
pub mod quantize;

pub use cache::{cache_dir, convert_cached, resolve_model};
pub use graph::{ConvertOptions, convert_checkpoint};

/// How to obtain FastSAM-s when no model is available; appended to "model not found" errors.
pub const HOW_TO_GET: &str = "fastsam-track downloads FastSAM-s.pt automatically when online (`fastsam-track model fetch FastSAM-s`); \
or put FastSAM-s.pt / an exported .onnx in place yourself (with Python: `pip install ultralytics` then \
`yolo export model=FastSAM-s.pt format=onnx`) and pass --model PATH";

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error("unsafe or malformed pickle in {path}: {source}")]
    Pickle {
        path: PathBuf,
        #[source]
        source: pickle::PickleError,
    },
    #[error("cannot convert {path}: {msg}")]
    Unsupported { path: PathBuf, msg: String },
    #[error("download of {url} failed: {msg}")]
    Download { url: String, msg: String },
    #[error("{url}: downloaded file is corrupt: {msg}; it was deleted - try again (or check the mirror)")]
    Corrupt { url: String, msg: String },
    #[error(
        "model {name} is not available offline (FASTSAM_OFFLINE=1): put the file at {expected} \
         (download it from {url}) or unset FASTSAM_OFFLINE"
    )]
    Offline { name: String, expected: PathBuf, url: String },
    #[error("model not found: {spec}. {hint}", hint = HOW_TO_GET)]
    NotFound { spec: String },
    #[error("no cache directory: set FASTSAM_CACHE_DIR (or HOME) so that models can be stored")]
    NoCacheDir,
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Output(Box<crate::outputs::OutputError>),
}

impl ConvertError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ConvertError::Io { path: path.to_path_buf(), source }
    }
}

impl From<crate::outputs::OutputError> for ConvertError {
    fn from(e: crate::outputs::OutputError) -> Self {
        ConvertError::Output(Box::new(e))
    }
}
