//! The shared segment stage: `workers` inference workers take frames from one channel fed by
//! every stream's decoder, run them in batches, and hand each result back to its stream in
//! decode order.
//!
//! ```text
//!  decoders ─► Job channel ─┬─► worker 0 (its own Segmenter) ─┐
//!                           └─► worker 1 (its own Segmenter) ─┴─► Router ─► stream i's track channel
//! ```
//!
//! Workers finish frames out of order (two workers may hold consecutive frames of one stream), so
//! each decoded frame carries its stream's sequence number and the [`Router`] keeps a small
//! reorder buffer per stream: a stream's track stage always sees its frames in decode order, and
//! its results do not depend on how many workers there are. A stream's channel closes once its
//! decoder has said how many frames it sent and all of them were delivered.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{Segmented, stage_err};
use crate::frame::{Frame, FramePool};
use crate::model::ModelError;
use crate::types::{SegmentTimings, Segmenter};
use crate::video::VideoError;

/// What decoders send to the segment stage.
pub(super) enum Job {
    /// Frame number `seq` (counting only the frames sent) of stream `stream`.
    Frame { stream: usize, seq: u64, frame: Frame },
    /// A live stream's newest frame is waiting in its [`Latest`] slot.
    Live { stream: usize },
    /// The stream sent `frames` frames and no more will come.
    End { stream: usize, frames: u64 },
}

/// A live stream's newest decoded frame. The decoder replaces the frame waiting there (the
/// replaced one is dropped: it is stale) and posts a [`Job::Live`] token only when the slot was
/// empty; a worker takes whatever is newest when it gets to the token. So a live frame waits at
/// most one inference for a worker, and latency never grows however slow the model is.
#[derive(Default)]
pub(super) struct Latest(Mutex<LatestState>);

#[derive(Default)]
struct LatestState {
    frame: Option<Frame>,
    /// Sequence number of the next frame taken.
    next_seq: u64,
    closed: bool,
}

impl Latest {
    /// Put the newest frame. Returns whether a token must be posted (the slot was empty) and the
    /// stale frame it replaced.
    pub(super) fn put(&self, frame: Frame) -> (bool, Option<Frame>) {
        let mut st = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = st.frame.replace(frame);
        (old.is_none(), old)
    }

    /// Take the waiting frame with its sequence number.
    fn take(&self) -> Option<(u64, Frame)> {
        let mut st = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let f = st.frame.take()?;
        let seq = st.next_seq;
        st.next_seq += 1;
        Some((seq, f))
    }

    /// The decoder ends: no more frames are taken. Returns the frame left waiting (never
    /// processed) and how many frames were taken.
    pub(super) fn close(&self) -> (Option<Frame>, u64) {
        let mut st = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.closed = true;
        (st.frame.take(), st.next_seq)
    }
}

/// One stream's delivery state.
struct Slot {
    /// `None` once the stream's channel is closed (ended, or its stages are gone).
    tx: Option<Sender<Segmented>>,
    /// The next sequence number to deliver.
    next: u64,
    /// Results that finished before an earlier frame of the same stream.
    pending: BTreeMap<u64, Segmented>,
    /// How many frames the stream sent, once its decoder has ended.
    end: Option<u64>,
}

/// Delivers results to each stream in decode order (see the module docs).
pub(super) struct Router<'a> {
    slots: Vec<Mutex<Slot>>,
    /// Each live stream's newest frame (unused for files).
    pub(super) latest: Vec<Latest>,
    halts: &'a [AtomicBool],
    pool: &'a FramePool,
}

impl<'a> Router<'a> {
    pub(super) fn new(txs: Vec<Sender<Segmented>>, halts: &'a [AtomicBool], pool: &'a FramePool) -> Self {
        let latest = txs.iter().map(|_| Latest::default()).collect();
        let slots = txs
            .into_iter()
            .map(|tx| Mutex::new(Slot { tx: Some(tx), next: 0, pending: BTreeMap::new(), end: None }))
            .collect();
        Router { slots, latest, halts, pool }
    }

    fn slot(&self, stream: usize) -> std::sync::MutexGuard<'_, Slot> {
        // A poisoned slot only means another worker panicked mid-delivery; its state is still
        // consistent (every field is updated before anything that can panic).
        self.slots[stream].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hand frame `seq` of `stream` to the stream, with every result that was waiting for it.
    /// Blocks while the stream's channel is full (backpressure reaches the workers).
    pub(super) fn deliver(&self, stream: usize, seq: u64, result: Segmented) {
        let mut slot = self.slot(stream);
        if slot.tx.is_none() {
            self.pool.give(result.frame.data);
            return;
        }
        slot.pending.insert(seq, result);
        loop {
            let next = slot.next;
            let Some(ready) = slot.pending.remove(&next) else { break };
            slot.next += 1;
            let sent = match &slot.tx {
                Some(tx) => tx.send(ready).map_err(|e| e.into_inner()),
                None => Err(ready),
            };
            if let Err(back) = sent {
                // The stream's own stages are gone (an error there): stop its decoder.
                self.pool.give(back.frame.data);
                self.halts[stream].store(true, Ordering::Relaxed);
                self.close(&mut slot);
                return;
            }
        }
        if slot.end == Some(slot.next) {
            self.close(&mut slot);
        }
    }

    /// The stream's decoder ended after sending `frames` frames.
    pub(super) fn end(&self, stream: usize, frames: u64) {
        let mut slot = self.slot(stream);
        slot.end = Some(frames);
        if slot.next >= frames {
            self.close(&mut slot);
        }
    }

    /// Close every stream (a model error, or the end of the stage).
    pub(super) fn close_all(&self) {
        for i in 0..self.slots.len() {
            let mut slot = self.slot(i);
            self.close(&mut slot);
        }
    }

    fn close(&self, slot: &mut Slot) {
        slot.tx = None;
        for (_, r) in std::mem::take(&mut slot.pending) {
            self.pool.give(r.frame.data);
        }
    }
}

/// What the segment stage hands back (all workers together).
pub(super) struct BatchOutcome {
    /// Per stream: its share of pre/infer/post time.
    pub(super) times: Vec<SegmentTimings>,
    pub(super) batches: u64,
    pub(super) frames: u64,
    pub(super) error: Option<VideoError>,
}

impl BatchOutcome {
    fn new(streams: usize) -> Self {
        BatchOutcome { times: vec![SegmentTimings::default(); streams], batches: 0, frames: 0, error: None }
    }

    fn merge(&mut self, other: BatchOutcome) {
        for (a, b) in self.times.iter_mut().zip(other.times) {
            a.pre += b.pre;
            a.infer += b.infer;
            a.post += b.post;
        }
        self.batches += other.batches;
        self.frames += other.frames;
        if self.error.is_none() {
            self.error = other.error;
        }
    }
}

/// How the workers batch.
#[derive(Clone, Copy)]
pub(super) struct BatchPolicy {
    pub(super) max: usize,
    pub(super) timeout: Duration,
}

/// Run the segment stage: one thread per segmenter, until every decoder has ended or a model
/// error. On a model error every stream is halted and closed.
pub(super) fn run_stage(
    rx: Receiver<Job>,
    router: &Router<'_>,
    segmenters: &mut [&mut dyn Segmenter],
    policy: BatchPolicy,
    streams: usize,
) -> BatchOutcome {
    let failed = AtomicBool::new(false);
    let mut total = BatchOutcome::new(streams);
    std::thread::scope(|s| {
        let handles: Vec<_> = segmenters
            .iter_mut()
            .map(|seg| {
                let rx = rx.clone();
                let failed = &failed;
                s.spawn(move || worker(rx, router, &mut **seg, policy, failed, streams))
            })
            .collect();
        drop(rx);
        for h in handles {
            let out = h.join().unwrap_or_else(|_| {
                failed.store(true, Ordering::Relaxed);
                BatchOutcome {
                    error: Some(VideoError::Other("an inference worker panicked".into())),
                    ..BatchOutcome::new(streams)
                }
            });
            total.merge(out);
        }
    });
    if total.error.is_some() {
        for h in router.halts {
            h.store(true, Ordering::Relaxed);
        }
    }
    router.close_all();
    total
}

/// One inference worker: gather a batch, run it, deliver each result. Its receiver is dropped
/// when it returns, so once every worker is gone, decoders blocked on a full channel get an error.
fn worker(
    rx: Receiver<Job>,
    router: &Router<'_>,
    segmenter: &mut dyn Segmenter,
    policy: BatchPolicy,
    failed: &AtomicBool,
    streams: usize,
) -> BatchOutcome {
    let max = policy.max.max(1);
    let mut out = BatchOutcome::new(streams);
    let mut batch: Vec<(usize, u64, Frame)> = Vec::with_capacity(max);
    while !failed.load(Ordering::Relaxed) {
        let Ok(first) = rx.recv() else { break };
        take_job(first, &mut batch, router);
        gather(&rx, &mut batch, router, max, policy.timeout);
        if batch.is_empty() {
            continue;
        }
        if failed.load(Ordering::Relaxed) {
            break;
        }
        if let Err(e) = run_batch(&mut batch, router, segmenter, &mut out) {
            failed.store(true, Ordering::Relaxed);
            out.error = Some(e);
            break;
        }
    }
    for (_, _, f) in batch.drain(..) {
        router.pool.give(f.data);
    }
    out
}

fn take_job(job: Job, batch: &mut Vec<(usize, u64, Frame)>, router: &Router<'_>) {
    match job {
        Job::Frame { stream, seq, frame } => batch.push((stream, seq, frame)),
        Job::Live { stream } => {
            if let Some((seq, frame)) = router.latest[stream].take() {
                batch.push((stream, seq, frame));
            }
        }
        Job::End { stream, frames } => router.end(stream, frames),
    }
}

/// Fill the batch up to `max` frames: what is queued now, then what arrives before the deadline.
fn gather(rx: &Receiver<Job>, batch: &mut Vec<(usize, u64, Frame)>, router: &Router<'_>, max: usize, wait: Duration) {
    let deadline = Instant::now() + wait;
    while batch.len() < max {
        match rx.recv_deadline(deadline) {
            Ok(job) => take_job(job, batch, router),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// Run the gathered frames, one inference call per frame size (frames of one size share a
/// letterbox, so a stream's results do not depend on what it was batched with), and deliver each
/// result.
fn run_batch(
    batch: &mut Vec<(usize, u64, Frame)>,
    router: &Router<'_>,
    segmenter: &mut dyn Segmenter,
    out: &mut BatchOutcome,
) -> Result<(), VideoError> {
    while !batch.is_empty() {
        let size = (batch[0].2.width, batch[0].2.height);
        let (group, rest): (Vec<_>, Vec<_>) = batch.drain(..).partition(|(_, _, f)| (f.width, f.height) == size);
        *batch = rest;
        run_group(group, router, segmenter, out)?;
    }
    Ok(())
}

/// Run one group of same-size frames; on a model error their buffers go back to the pool.
fn run_group(
    group: Vec<(usize, u64, Frame)>,
    router: &Router<'_>,
    segmenter: &mut dyn Segmenter,
    out: &mut BatchOutcome,
) -> Result<(), VideoError> {
    let views: Vec<_> = group.iter().map(|(_, _, f)| f.view()).collect();
    let result = segmenter.segment_batch(&views);
    drop(views);
    let failure = match result {
        Ok(d) if d.len() == group.len() => Ok(d),
        Ok(d) => Err(stage_err(
            "segment",
            &group[0].2,
            ModelError::Output(format!("{} results for a batch of {} frames", d.len(), group.len())),
        )),
        Err(e) => Err(stage_err("segment", &group[0].2, e)),
    };
    let dets = match failure {
        Ok(d) => d,
        Err(e) => {
            for (_, _, f) in group {
                router.pool.give(f.data);
            }
            return Err(e);
        }
    };
    let t = segmenter.last_timings();
    let k = group.len() as u32;
    out.batches += 1;
    out.frames += group.len() as u64;
    for ((stream, seq, frame), dets) in group.into_iter().zip(dets) {
        let share = &mut out.times[stream];
        share.pre += t.pre / k;
        share.infer += t.infer / k;
        share.post += t.post / k;
        router.deliver(stream, seq, Segmented { frame, dets });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    fn result(index: u64) -> Segmented {
        let frame = Frame { index, pts: None, duration: None, width: 1, height: 1, data: vec![0; 3] };
        Segmented { frame, dets: Vec::new() }
    }

    fn indices(rx: &Receiver<Segmented>) -> Vec<u64> {
        rx.try_iter().map(|s| s.frame.index).collect()
    }

    #[test]
    fn results_reach_each_stream_in_decode_order() {
        let pool = FramePool::new(8);
        let halts = [AtomicBool::new(false), AtomicBool::new(false)];
        let (tx0, rx0) = bounded(16);
        let (tx1, rx1) = bounded(16);
        let router = Router::new(vec![tx0, tx1], &halts, &pool);
        // Stream 0 finishes 2, 0, 3, 1; stream 1 finishes in order.
        router.deliver(0, 2, result(2));
        assert_eq!(indices(&rx0), Vec::<u64>::new(), "frame 2 waits for 0 and 1");
        router.deliver(1, 0, result(10));
        router.deliver(0, 0, result(0));
        assert_eq!(indices(&rx0), vec![0]);
        router.deliver(0, 3, result(3));
        router.deliver(0, 1, result(1));
        assert_eq!(indices(&rx0), vec![1, 2, 3]);
        assert_eq!(indices(&rx1), vec![10]);
        // The end closes a stream only once everything it sent is delivered.
        router.end(0, 5);
        assert!(matches!(rx0.try_recv(), Err(crossbeam_channel::TryRecvError::Empty)));
        router.deliver(0, 4, result(4));
        assert_eq!(indices(&rx0), vec![4]);
        assert!(matches!(rx0.try_recv(), Err(crossbeam_channel::TryRecvError::Disconnected)));
        // Stream 1 ends with everything delivered: closed at once.
        router.end(1, 1);
        assert!(matches!(rx1.try_recv(), Err(crossbeam_channel::TryRecvError::Disconnected)));
        assert!(!halts[0].load(Ordering::Relaxed) && !halts[1].load(Ordering::Relaxed));
    }

    #[test]
    fn a_stream_whose_stages_are_gone_is_halted_and_its_frames_go_back_to_the_pool() {
        let pool = FramePool::new(8);
        let halts = [AtomicBool::new(false)];
        let (tx, rx) = bounded(4);
        let router = Router::new(vec![tx], &halts, &pool);
        router.deliver(0, 1, result(1)); // waits for frame 0
        drop(rx);
        router.deliver(0, 0, result(0));
        assert!(halts[0].load(Ordering::Relaxed), "the decoder is told to stop");
        // Both buffers (the undeliverable one and the waiting one) are back for reuse, and later
        // results are returned too, not queued.
        router.deliver(0, 2, result(2));
        let before = pool.allocations();
        for _ in 0..3 {
            let _ = pool.take(3);
        }
        assert_eq!(pool.allocations(), before, "three buffers were given back");
    }
}
