//! The per-stream core that every way in shares: the CLI on files, live cameras, many streams in
//! one process and the GStreamer element.
//!
//! A [`StreamProcessor`] is synchronous and owns one stream's state: its tracker, its prompt
//! selection and the set of followed track IDs. It takes a frame's pixels and that frame's
//! detections, and returns a [`FrameResult`]: the tracked objects with their masks, what to draw
//! ([`FrameResult::overlay_items`]) and what to export ([`FrameResult::export_objects`]). The
//! threaded pipeline, the multi-stream runner and the element call it; none re-implements it.
//!
//! [`io`] holds the traits at a pipeline's edges: [`FrameSource`], [`FrameSink`] (pixels) and
//! [`ResultSink`] (track files).

pub mod io;

use std::collections::HashSet;
use std::time::Duration;

pub use io::{FrameSink, FrameSource, ResultSink};

use crate::export::ExportObject;
use crate::mask::Mask;
use crate::model::ModelError;
use crate::model::prompt::{Prompt, select};
use crate::overlay::OverlayItem;
use crate::track::{ByteTracker, TrackedObject, TrackerConfig};
use crate::types::{Detection, ImageView};

/// Picks, on a stream's first frame, which detections the stream follows. It sees the frame's
/// pixels as well as the detections (a text prompt crops them for CLIP).
pub trait PromptSelector: Send {
    /// Indices into `detections` of the objects to follow.
    fn select(&mut self, image: ImageView<'_>, detections: &[Detection]) -> Result<Vec<usize>, ModelError>;
}

/// Box and point prompts select by geometry alone.
impl PromptSelector for Prompt {
    fn select(&mut self, image: ImageView<'_>, detections: &[Detection]) -> Result<Vec<usize>, ModelError> {
        select(detections, self, image.width, image.height)
    }
}

/// Any closure with the selector's signature.
impl<F> PromptSelector for F
where
    F: FnMut(ImageView<'_>, &[Detection]) -> Result<Vec<usize>, ModelError> + Send,
{
    fn select(&mut self, image: ImageView<'_>, detections: &[Detection]) -> Result<Vec<usize>, ModelError> {
        self(image, detections)
    }
}

/// Errors of one stream's processing.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("prompt selection on the first frame failed: {0}")]
    Prompt(#[source] ModelError),
}

/// How a stream is processed.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    pub tracker: TrackerConfig,
    /// The stream's frame rate. The tracker keeps lost tracks `track_buffer` frames at 30 fps;
    /// this scales that to the stream's real rate. `None`: the config's own `frame_rate`.
    pub frame_rate: Option<f64>,
}

impl StreamConfig {
    /// The product tracker (`configs/bytetrack.toml`) at the stream's frame rate.
    pub fn product(frame_rate: Option<f64>) -> Result<Self, crate::track::TrackError> {
        Ok(Self { tracker: TrackerConfig::product()?, frame_rate })
    }
}

/// Where a frame sits in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameMeta {
    /// 0-based index in decode order.
    pub index: u64,
    pub pts: Option<Duration>,
}

/// One stream's result for one frame.
#[derive(Debug, Clone)]
pub struct FrameResult {
    pub meta: FrameMeta,
    /// Every detection of the frame (the tracks point into it with `det_index`).
    pub detections: Vec<Detection>,
    /// The tracks the stream follows, with their Kalman boxes (all tracks without a prompt).
    pub tracks: Vec<TrackedObject>,
}

impl FrameResult {
    /// The mask a track matched this frame.
    pub fn mask_of(&self, t: &TrackedObject) -> Option<&Mask> {
        self.detections.get(t.det_index).and_then(|d| d.mask.as_ref())
    }

    /// What to draw: each followed track's mask, box and ID, coloured by track ID.
    pub fn overlay_items(&self) -> impl Iterator<Item = OverlayItem<'_>> + '_ {
        self.tracks.iter().map(|t| OverlayItem {
            mask: self.mask_of(t),
            bbox: t.bbox,
            color_key: t.track_id,
            label: Some(t.track_id.to_string()),
            score: Some(t.score),
        })
    }

    /// What to export, into a reused buffer; mask RLEs only when `with_masks`.
    pub fn export_objects(&self, with_masks: bool, out: &mut Vec<ExportObject>) {
        out.clear();
        out.extend(self.tracks.iter().map(|t| {
            let rle = if with_masks { self.mask_of(t).map(Mask::to_rle) } else { None };
            ExportObject::new(t.track_id, &t.bbox, t.score, t.class_id, rle)
        }));
    }
}

/// One stream's tracker, prompt and followed IDs (see the module docs).
pub struct StreamProcessor {
    tracker: ByteTracker,
    selector: Option<Box<dyn PromptSelector>>,
    followed: Option<HashSet<u64>>,
    seeded: Option<Vec<u64>>,
    ids: HashSet<u64>,
    frames: u64,
}

impl std::fmt::Debug for StreamProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamProcessor")
            .field("frames", &self.frames)
            .field("tracks", &self.ids.len())
            .field("seeded", &self.seeded)
            .finish_non_exhaustive()
    }
}

impl StreamProcessor {
    /// A processor that follows every object.
    pub fn new(cfg: StreamConfig) -> Self {
        let mut tracker = cfg.tracker;
        if let Some(fps) = cfg.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            tracker.frame_rate = fps;
        }
        Self {
            tracker: ByteTracker::new(tracker),
            selector: None,
            followed: None,
            seeded: None,
            ids: HashSet::new(),
            frames: 0,
        }
    }

    /// Follow only the objects `selector` picks on the first frame (and the tracks born from them).
    pub fn with_prompt(mut self, selector: Box<dyn PromptSelector>) -> Self {
        self.selector = Some(selector);
        self
    }

    /// Track one frame. `image` is the frame the detections came from.
    pub fn process(
        &mut self,
        image: ImageView<'_>,
        meta: FrameMeta,
        detections: Vec<Detection>,
    ) -> Result<FrameResult, StreamError> {
        let mut tracks = Vec::new();
        self.tracker.update_with_image(&detections, Some(image), &mut tracks);
        if let Some(mut sel) = self.selector.take() {
            let chosen = sel.select(image, &detections).map_err(StreamError::Prompt)?;
            self.seed(&tracks, &chosen, detections.len());
        }
        if let Some(followed) = &self.followed {
            tracks.retain(|t| followed.contains(&t.track_id));
        }
        self.ids.extend(tracks.iter().map(|t| t.track_id));
        self.frames += 1;
        Ok(FrameResult { meta, detections, tracks })
    }

    fn seed(&mut self, tracks: &[TrackedObject], chosen: &[usize], n_dets: usize) {
        let followed: HashSet<u64> =
            tracks.iter().filter(|t| chosen.contains(&t.det_index)).map(|t| t.track_id).collect();
        if followed.is_empty() {
            tracing::warn!(
                "the prompt selected no object on the first frame ({n_dets} detections, {} selected): \
                 nothing will be tracked",
                chosen.len()
            );
        }
        let mut seeded: Vec<u64> = followed.iter().copied().collect();
        seeded.sort_unstable();
        self.seeded = Some(seeded);
        self.followed = Some(followed);
    }

    /// Track IDs the prompt seeded on the first frame (`None` without a prompt, or before it ran).
    pub fn seeded_tracks(&self) -> Option<&[u64]> {
        self.seeded.as_deref()
    }

    /// Distinct track IDs reported so far.
    pub fn track_count(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Frames processed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The tracker's configuration (after frame-rate scaling).
    pub fn tracker_config(&self) -> &TrackerConfig {
        self.tracker.config()
    }
}
