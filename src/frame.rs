//! Decoded frames and the stream facts a source knows after its first frame. No GStreamer here:
//! the stream core ([`crate::stream`]) and every way in (CLI, live cameras, the GStreamer element)
//! share these types.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::types::{ImageView, PixelFormat};

/// One decoded frame: tightly packed RGB (`stride == 3 * width`), with its timestamps.
#[derive(Debug)]
pub struct Frame {
    /// 0-based index in decode order (dropped live frames leave gaps).
    pub index: u64,
    pub pts: Option<Duration>,
    pub duration: Option<Duration>,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn stride(&self) -> usize {
        self.width as usize * 3
    }
    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            width: self.width,
            height: self.height,
            stride: self.stride(),
            format: PixelFormat::Rgb8,
            data: &self.data,
        }
    }
}

/// What a source knows about its stream after the first frame.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Frame rate as a fraction (`None` when unknown or variable).
    pub fps: Option<(i32, i32)>,
    /// Stream duration when the container says.
    pub duration: Option<Duration>,
    pub live: bool,
    /// The URI that was opened.
    pub uri: String,
}

impl VideoInfo {
    pub fn fps_f64(&self) -> Option<f64> {
        self.fps.filter(|(n, d)| *n > 0 && *d > 0).map(|(n, d)| n as f64 / d as f64)
    }
    /// Expected number of frames (duration × fps) when both are known.
    pub fn expected_frames(&self) -> Option<u64> {
        Some((self.duration?.as_secs_f64() * self.fps_f64()?).round() as u64)
    }
}

/// Recycles frame buffers: stages hand buffers back once a frame is encoded (or dropped), so a
/// steady-state run allocates no full-size image per frame. Bounded: surplus buffers are freed.
#[derive(Clone)]
pub struct FramePool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    allocated: AtomicU64,
}

impl FramePool {
    /// A pool keeping at most `capacity` spare buffers.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Self { inner: Arc::new(PoolInner { tx, rx, allocated: AtomicU64::new(0) }) }
    }
    /// A buffer of exactly `len` bytes (contents unspecified), recycled when one is available.
    pub fn take(&self, len: usize) -> Vec<u8> {
        match self.inner.rx.try_recv() {
            Ok(mut v) => {
                if v.capacity() < len {
                    self.inner.allocated.fetch_add(1, Ordering::Relaxed);
                }
                v.resize(len, 0);
                v
            }
            Err(_) => {
                self.inner.allocated.fetch_add(1, Ordering::Relaxed);
                vec![0; len]
            }
        }
    }
    /// Hand a buffer back for reuse.
    pub fn give(&self, v: Vec<u8>) {
        let _ = self.inner.tx.try_send(v);
    }
    /// How many buffers were allocated (or grown) so far.
    pub fn allocations(&self) -> u64 {
        self.inner.allocated.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_recycles_buffers() {
        let pool = FramePool::new(4);
        let a = pool.take(100);
        let b = pool.take(100);
        assert_eq!(pool.allocations(), 2);
        pool.give(a);
        pool.give(b);
        for _ in 0..50 {
            let x = pool.take(100);
            assert_eq!(x.len(), 100);
            pool.give(x);
        }
        assert_eq!(pool.allocations(), 2);
    }

    #[test]
    fn expected_frames_from_duration_and_rate() {
        let info = VideoInfo {
            width: 4,
            height: 2,
            fps: Some((25, 1)),
            duration: Some(Duration::from_secs(10)),
            live: false,
            uri: String::new(),
        };
        assert_eq!(info.expected_frames(), Some(250));
        assert_eq!(VideoInfo { fps: Some((0, 1)), ..info }.expected_frames(), None);
    }
}
