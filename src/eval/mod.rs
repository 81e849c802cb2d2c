//! Evaluation: MOTChallenge file I/O ([`io`]), CLEAR MOT / identity metrics with
//! py-motmetrics 1.4.0 semantics ([`mot`]), HOTA with TrackEval 1.3.0 semantics ([`hota`]), and
//! COCO box/mask mAP with pycocotools semantics ([`coco`]).

pub mod coco;
pub mod hota;
pub mod io;
pub mod mot;

pub use hota::{HotaMetrics, combine_hota, evaluate_hota};
pub use io::{DetectionSequence, MotRow, read_detections, read_mot, write_mot};
pub use mot::{MotMetrics, evaluate};

/// Errors of the evaluation stage and of the track/detection file readers.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read or write {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Parse { path: String, line: usize, message: String },
    #[error("{what} has two rows with id {id} in frame {frame}; each id may appear once per frame (fix the file)")]
    DuplicateId { what: String, frame: i64, id: i64 },
    #[error("{0}")]
    Other(String),
}
