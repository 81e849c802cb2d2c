//! Raw inference throughput of a segmenter on the first frames of an input, for comparing the
//! pipeline's end-to-end rate against it (`fastsam-track INPUT --bench-raw N`).
//!
//! The frames are decoded into memory first, so only `Segmenter::segment` (pre-processing,
//! inference, post-processing) is timed, one frame after the other, after one warm-up frame.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::{FramePool, SourceConfig, VideoSource};
use crate::types::Segmenter;

/// Result of [`raw_inference`].
#[derive(Debug, Clone, Copy)]
pub struct RawInference {
    /// Frames timed (the warm-up frame excluded).
    pub frames: u64,
    pub elapsed: Duration,
}

impl RawInference {
    pub fn fps(&self) -> f64 {
        if self.elapsed.is_zero() { 0.0 } else { self.frames as f64 / self.elapsed.as_secs_f64() }
    }
}

/// Segment the first `n` frames of `input` (plus one warm-up frame) back to back.
pub fn raw_inference(
    input: &str,
    cfg: &SourceConfig,
    seg: &mut dyn Segmenter,
    n: usize,
) -> Result<RawInference, super::VideoError> {
    let mut src = VideoSource::open(input, cfg)?;
    let pool = FramePool::new(1);
    let stop = AtomicBool::new(false);
    let mut frames = Vec::with_capacity(n + 1);
    while frames.len() < n + 1 {
        match src.next_frame(&pool, &stop)? {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    drop(src);
    let mut it = frames.iter();
    if let Some(f) = it.next() {
        seg.segment(f.view()).map_err(|e| stage_err(f, e))?;
    }
    let t0 = Instant::now();
    let mut count = 0u64;
    for f in it {
        seg.segment(f.view()).map_err(|e| stage_err(f, e))?;
        count += 1;
    }
    Ok(RawInference { frames: count, elapsed: t0.elapsed() })
}

fn stage_err(f: &super::Frame, e: crate::model::ModelError) -> super::VideoError {
    super::VideoError::Stage { stage: "segment", frame: f.index + 1, cause: e.into() }
}
