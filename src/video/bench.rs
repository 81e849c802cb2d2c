//! Raw inference throughput of a segmenter on the first frames of an input, for comparing the
//! pipeline's end-to-end rate against it (`fastsam-track INPUT --bench-raw N`).
//!
//! The frames are decoded into memory first, so only `Segmenter::segment` (pre-processing,
//! inference, post-processing) is timed, after one warm-up frame per worker. With several
//! inference workers the frames are shared out among them and they run side by side, as in the
//! pipeline: the raw rate is that of the model set-up the pipeline uses.

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

/// Segment the first `n` frames of `input` (after a warm-up frame), shared out among `workers`
/// running side by side.
pub fn raw_inference(
    input: &str,
    cfg: &SourceConfig,
    workers: &mut [&mut dyn Segmenter],
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
    let Some((warm, timed)) = frames.split_first() else {
        return Ok(RawInference { frames: 0, elapsed: Duration::ZERO });
    };
    for seg in workers.iter_mut() {
        seg.segment(warm.view()).map_err(|e| stage_err(warm, e))?;
    }
    let k = workers.len().max(1);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .enumerate()
            .map(|(w, seg)| {
                s.spawn(move || {
                    for f in timed.iter().skip(w).step_by(k) {
                        seg.segment(f.view()).map_err(|e| stage_err(f, e))?;
                    }
                    Ok::<(), super::VideoError>(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| super::VideoError::Other("an inference worker panicked".into()))??;
        }
        Ok::<(), super::VideoError>(())
    })?;
    Ok(RawInference { frames: timed.len() as u64, elapsed: t0.elapsed() })
}

fn stage_err(f: &super::Frame, e: crate::model::ModelError) -> super::VideoError {
    super::VideoError::Stage { stage: "segment", frame: f.index + 1, cause: e.into() }
}
