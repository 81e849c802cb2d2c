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

use std::collections::{HashMap, HashSet};
use std::time::Duration;

pub use io::{FrameSink, FrameSource, ResultSink};

use crate::export::ExportObject;
use crate::mask::{Mask, Rle};
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

/// Scores detections against a text prompt, for video: a stream with a [`TrackScorer`] follows
/// the tracks whose score passes (see [`StreamProcessor::with_text_scorer`]).
pub trait TrackScorer: Send {
    /// Scores of `detections[i]` for each `i` in `which` (`None`: not scorable, e.g. a tiny mask).
    fn score(
        &mut self,
        image: ImageView<'_>,
        detections: &[Detection],
        which: &[usize],
    ) -> Result<Vec<Option<f32>>, ModelError>;
    /// Follow every track scoring at least this; `None`: the single best-scoring track.
    fn threshold(&self) -> Option<f32>;
}

/// When a stream with a [`TrackScorer`] scores its tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TextScoring {
    /// Re-score each followed or candidate track every this many frames (`None`: only when it
    /// appears). Re-scores are spread: at most ⌈n / k⌉ of the n visible scored tracks are
    /// re-scored on one frame (the stalest first), so the scorer's cost per frame stays flat
    /// instead of peaking where many tracks came due together.
    pub every: Option<u64>,
}

/// The text-scoring state of a stream.
struct TextTracks {
    scorer: Box<dyn TrackScorer>,
    cfg: TextScoring,
    /// Track ID -> (latest score, frame it was scored on).
    scores: HashMap<u64, (f32, u64)>,
    scored_detections: u64,
}

/// Errors of one stream's processing.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("prompt selection on the first frame failed: {0}")]
    Prompt(#[source] ModelError),
    #[error("text scoring of new tracks on frame {frame} failed: {source}")]
    TextScore {
        frame: u64,
        #[source]
        source: ModelError,
    },
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
    ///
    /// The RLEs are [`Mask::to_rle`]'s, encoded from the masks' cached bits ([`Mask::bits`],
    /// packed while rendering) rather than from their bytes.
    pub fn export_objects(&self, with_masks: bool, out: &mut Vec<ExportObject>) {
        out.clear();
        out.extend(self.tracks.iter().map(|t| {
            let rle = if with_masks { self.mask_of(t).map(mask_rle) } else { None };
            ExportObject::new(t.track_id, &t.bbox, t.score, t.class_id, rle)
        }));
    }
}

/// [`Mask::to_rle`] from the mask's packed bits.
fn mask_rle(m: &Mask) -> Rle {
    let roi = m.roi();
    m.bits().to_rle(roi.img_w, roi.img_h)
}

/// One stream's tracker, prompt and followed IDs (see the module docs).
pub struct StreamProcessor {
    tracker: ByteTracker,
    selector: Option<Box<dyn PromptSelector>>,
    followed: Option<HashSet<u64>>,
    seeded: Option<Vec<u64>>,
    ids: HashSet<u64>,
    frames: u64,
    text: Option<TextTracks>,
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
            text: None,
        }
    }

    /// Follow only the objects `selector` picks on the first frame (and the tracks born from them).
    pub fn with_prompt(mut self, selector: Box<dyn PromptSelector>) -> Self {
        self.selector = Some(selector);
        self
    }

    /// Follow the tracks a text prompt picks: each new track is scored on the frame it appears
    /// (tracks whose mask is too small to score are tried again on later frames), and re-scored
    /// every `cfg.every` frames if set, so the scorer never runs on every object of every frame.
    /// Followed: every track whose latest score reaches the scorer's threshold, or without one the
    /// single best-scoring track so far (ties: the older track). With a box/point prompt as well
    /// ([`StreamProcessor::with_prompt`]), the union of both.
    pub fn with_text_scorer(mut self, scorer: Box<dyn TrackScorer>, cfg: TextScoring) -> Self {
        self.set_text_scorer(scorer, cfg);
        self
    }

    /// [`StreamProcessor::with_text_scorer`] on a built processor (before its first frame).
    pub fn set_text_scorer(&mut self, scorer: Box<dyn TrackScorer>, cfg: TextScoring) {
        self.text = Some(TextTracks { scorer, cfg, scores: HashMap::new(), scored_detections: 0 });
    }

    /// Latest text score per track ID (empty without a text scorer).
    pub fn text_scores(&self) -> Vec<(u64, f32)> {
        let mut v: Vec<(u64, f32)> =
            self.text.as_ref().map(|t| t.scores.iter().map(|(&id, &(s, _))| (id, s)).collect()).unwrap_or_default();
        v.sort_by_key(|p| p.0);
        v
    }

    /// Detections sent to the text scorer so far.
    pub fn text_scored_detections(&self) -> u64 {
        self.text.as_ref().map_or(0, |t| t.scored_detections)
    }

    /// Score the tracks that need it this frame; returns the IDs the text prompt follows.
    fn text_follow(
        &mut self,
        image: ImageView<'_>,
        detections: &[Detection],
        tracks: &[TrackedObject],
    ) -> Result<Option<HashSet<u64>>, StreamError> {
        let frame = self.frames;
        let Some(text) = self.text.as_mut() else {
            return Ok(None);
        };
        let visible = || tracks.iter().filter(|t| t.det_index < detections.len());
        // new tracks are scored on the frame they appear, all of them
        let mut due: Vec<&TrackedObject> = visible().filter(|t| !text.scores.contains_key(&t.track_id)).collect();
        // re-scores are spread over frames: of the visible scored tracks whose score is at least
        // `k` frames old, the stalest (then the lowest ID) are re-scored, at most ⌈n / k⌉ of the n
        // visible scored tracks per frame, so tracks that appeared together do not all come due
        // on the same frame again (round-robin once settled; a re-score can be up to k frames late)
        if let Some(k) = text.cfg.every.filter(|&k| k > 0) {
            let mut stale: Vec<(u64, u64)> = Vec::new();
            let mut scored_visible = 0u64;
            for t in visible() {
                if let Some(&(_, at)) = text.scores.get(&t.track_id) {
                    scored_visible += 1;
                    if frame.saturating_sub(at) >= k {
                        stale.push((at, t.track_id));
                    }
                }
            }
            stale.sort_unstable();
            stale.truncate(scored_visible.div_ceil(k) as usize);
            let pick: HashSet<u64> = stale.into_iter().map(|(_, id)| id).collect();
            due.extend(visible().filter(|t| pick.contains(&t.track_id)));
        }
        if !due.is_empty() {
            let which: Vec<usize> = due.iter().map(|t| t.det_index).collect();
            let scores = text
                .scorer
                .score(image, detections, &which)
                .map_err(|source| StreamError::TextScore { frame, source })?;
            text.scored_detections += which.len() as u64;
            for (t, s) in due.iter().zip(scores) {
                if let Some(s) = s.filter(|v| v.is_finite()) {
                    text.scores.insert(t.track_id, (s, frame));
                }
            }
        }
        let followed: HashSet<u64> = match text.scorer.threshold() {
            Some(th) => text.scores.iter().filter(|(_, (s, _))| *s >= th).map(|(&id, _)| id).collect(),
            None => {
                let mut best: Option<(u64, f32)> = None;
                for (&id, &(s, _)) in &text.scores {
                    if best.is_none_or(|(bid, bs)| s > bs || (s == bs && id < bid)) {
                        best = Some((id, s));
                    }
                }
                best.map(|(id, _)| id).into_iter().collect()
            }
        };
        Ok(Some(followed))
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
        let by_text = self.text_follow(image, &detections, &tracks)?;
        match (&self.followed, &by_text) {
            (None, None) => {}
            (Some(f), None) | (None, Some(f)) => tracks.retain(|t| f.contains(&t.track_id)),
            (Some(a), Some(b)) => tracks.retain(|t| a.contains(&t.track_id) || b.contains(&t.track_id)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{BBox, PixelFormat};

    /// Scores a detection by its box's left edge / 100; logs which detections it was asked about.
    struct EdgeScorer {
        threshold: Option<f32>,
        calls: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    }
    impl TrackScorer for EdgeScorer {
        fn score(
            &mut self,
            _: ImageView<'_>,
            dets: &[Detection],
            which: &[usize],
        ) -> Result<Vec<Option<f32>>, ModelError> {
            self.calls.lock().unwrap().push(which.len());
            Ok(which.iter().map(|&i| Some(dets[i].bbox.x1 / 100.0)).collect())
        }
        fn threshold(&self) -> Option<f32> {
            self.threshold
        }
    }

    fn det(x: f32) -> Detection {
        Detection { bbox: BBox::new(x, 10.0, x + 20.0, 40.0), score: 0.9, class_id: 0, mask: None }
    }

    fn run(threshold: Option<f32>, every: Option<u64>, frames: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<usize>) {
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let scorer = EdgeScorer { threshold, calls: calls.clone() };
        let mut sp = StreamProcessor::new(StreamConfig::product(Some(30.0)).unwrap())
            .with_text_scorer(Box::new(scorer), TextScoring { every });
        let px = vec![0u8; 100 * 60 * 3];
        let img = ImageView::packed(100, 60, PixelFormat::Rgb8, &px).unwrap();
        let mut followed = Vec::new();
        for (i, xs) in frames.iter().enumerate() {
            let r = sp
                .process(img, FrameMeta { index: i as u64, pts: None }, xs.iter().map(|&x| det(x)).collect())
                .unwrap();
            let mut lefts: Vec<f32> = r.tracks.iter().map(|t| r.detections[t.det_index].bbox.x1).collect();
            lefts.sort_by(f32::total_cmp);
            followed.push(lefts);
        }
        let c = calls.lock().unwrap().clone();
        (followed, c)
    }

    #[test]
    fn exported_rles_equal_full_frame_encoding() {
        use crate::mask::{PixelRect, RoiBitmap};
        let mut rng = crate::test_rng::Rng(0xe4b0_47f5_0000_0007);
        let mut out = Vec::new();
        for frame in 0..40u64 {
            let (w, h) = (1 + rng.below(200), 1 + rng.below(150));
            let n = rng.below(6) as usize;
            let detections: Vec<Detection> = (0..n)
                .map(|_| {
                    let (x, y) = (rng.below(w), rng.below(h));
                    let rect = PixelRect::new(x, y, rng.below(w - x + 1), rng.below(h - y + 1));
                    let data = (0..rect.area()).map(|_| (rng.below(3) != 0) as u8).collect();
                    let mask =
                        (rng.below(5) != 0).then(|| Mask::from_roi(RoiBitmap { img_w: w, img_h: h, rect, data }));
                    Detection {
                        bbox: BBox::new(x as f32, y as f32, x as f32 + 3.0, y as f32 + 4.0),
                        score: 0.5,
                        class_id: 0,
                        mask,
                    }
                })
                .collect();
            // one track per detection, and one whose detection is gone (no mask)
            let tracks: Vec<TrackedObject> = (0..=n)
                .map(|i| TrackedObject {
                    track_id: i as u64 + 1,
                    bbox: BBox::new(0.0, 0.0, 1.0, 1.0),
                    score: 0.5,
                    class_id: 0,
                    det_index: i,
                })
                .collect();
            let r = FrameResult { meta: FrameMeta { index: frame, pts: None }, detections, tracks };
            r.export_objects(true, &mut out);
            assert_eq!(out.len(), n + 1);
            for (o, t) in out.iter().zip(&r.tracks) {
                let want = r.mask_of(t).map(|m| m.roi().to_full().to_rle());
                assert_eq!(o.rle, want, "frame {frame}, track {}", t.track_id);
            }
            r.export_objects(false, &mut out);
            assert!(out.iter().all(|o| o.rle.is_none()));
            r.export_objects(true, &mut out);
        }
    }

    #[test]
    fn text_scores_new_tracks_once_and_follows_the_best() {
        // two objects from frame 0; a third (higher-scoring) one appears on frame 4
        let mut frames = vec![vec![10.0, 50.0]; 4];
        frames.extend(vec![vec![10.0, 50.0, 75.0]; 6]);
        let (followed, calls) = run(None, None, &frames);
        assert_eq!(followed[0], vec![50.0]);
        assert_eq!(followed[3], vec![50.0]);
        assert_eq!(followed[9], vec![75.0], "the better new track takes over");
        // scored: the two first tracks together, then only the newcomer, once
        assert_eq!(calls, vec![2, 1]);
    }

    #[test]
    fn text_threshold_follows_all_above_and_every_k_rescores() {
        let frames = vec![vec![10.0, 40.0, 60.0]; 7];
        let (followed, calls) = run(Some(0.35), None, &frames);
        assert!(followed.iter().all(|f| *f == vec![40.0, 60.0]), "{followed:?}");
        assert_eq!(calls, vec![3]);
        let (_, calls) = run(Some(0.35), Some(3), &frames);
        // frame 0 scores the three new tracks; from frame 3 on, when all three are due together,
        // the re-scores are spread to ⌈3 / 3⌉ = 1 per frame, round-robin: frames 3..=6
        assert_eq!(calls, vec![3, 1, 1, 1, 1]);
        let (_, calls) = run(Some(0.35), Some(3), &vec![vec![10.0, 40.0, 60.0]; 30]);
        // settled: every frame from 3 on re-scores exactly one track, so each track is re-scored
        // every 3 frames: 1 + 27 calls of one, and no frame pays for more
        assert_eq!(calls.len(), 28);
        assert!(calls[1..].iter().all(|&c| c == 1), "{calls:?}");
    }
}
