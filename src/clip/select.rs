//! The text-prompt logic, with the semantics of Ultralytics' FastSAM text prompt (re-implemented
//! from its description, nothing copied):
//!
//! 1. each candidate's box (cast to integers, clamped to the image) is cropped from the frame, with
//!    the pixels outside that candidate's mask blanked ([`TextPromptConfig::blank`], white as in
//!    the original FastSAM CLIP prompt), so neighbours that reach into the box do not leak in;
//! 2. masks of at most [`TextPromptConfig::min_mask_area`] pixels (100, as Ultralytics) are skipped;
//! 3. the crops go through the image encoder in batches;
//! 4. cosine similarity of each crop's embedding with each prompt's (cached) text embedding;
//! 5. per prompt, the best mask ([`TextPromptConfig::threshold`] `None`; ties go to the lowest
//!    index) or every mask whose similarity is at least the threshold. Several prompts select the
//!    union of their picks; with box/point prompts too, the union of all (as Ultralytics combines
//!    them).
//!
//! The similarities come from a [`CropScorer`]: [`super::ClipModel`] in use, stubs in tests.

use super::ClipError;
use super::preprocess::RgbImage;
use crate::mask::RoiBitmap;
use crate::model::ModelError;
use crate::model::prompt::{Prompt, select as geometric_select};
use crate::stream::{PromptSelector, TrackScorer};
use crate::types::{BBox, Detection, ImageView, PixelFormat};

/// Text prompt settings (defaults: Ultralytics' text prompt).
#[derive(Debug, Clone, PartialEq)]
pub struct TextPromptConfig {
    /// `None`: the single best mask per prompt; `Some(t)`: every mask whose cosine similarity with
    /// the prompt is at least `t` (CLIP similarities of a matching crop are typically 0.2 to 0.35).
    pub threshold: Option<f32>,
    /// Masks with at most this many pixels are not scored.
    pub min_mask_area: u64,
    /// RGB colour of the pixels outside the mask inside its box crop.
    pub blank: [u8; 3],
}

impl Default for TextPromptConfig {
    fn default() -> Self {
        TextPromptConfig { threshold: None, min_mask_area: 100, blank: [255, 255, 255] }
    }
}

impl TextPromptConfig {
    pub fn validate(&self) -> Result<(), ClipError> {
        if let Some(t) = self.threshold
            && !(t.is_finite() && (-1.0..=1.0).contains(&t))
        {
            return Err(ClipError::InvalidOption(format!(
                "text threshold {t} must be a cosine similarity in [-1, 1] (typical matches: 0.2 to 0.35)"
            )));
        }
        Ok(())
    }
}

/// Cosine similarities of image crops with text prompts.
pub trait CropScorer: Send {
    /// `out[p][c]`: similarity of crop `c` with prompt `p`.
    fn similarities(&mut self, crops: &[RgbImage], prompts: &[String]) -> Result<Vec<Vec<f32>>, ClipError>;
    /// Refuse prompts that cannot be scored (empty) before any frame is processed.
    fn check_prompts(&mut self, _prompts: &[String]) -> Result<(), ClipError> {
        Ok(())
    }
}

/// The crop of `bbox` (cast to integers as Ultralytics does, clamped to the image) in RGB, with the
/// pixels outside `mask` set to `blank`. `None` when the box is empty inside the image.
pub fn masked_crop(image: &ImageView<'_>, mask: &RoiBitmap, bbox: &BBox, blank: [u8; 3]) -> Option<RgbImage> {
    let c = [bbox.x1, bbox.y1, bbox.x2, bbox.y2];
    if c.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let x1 = (bbox.x1 as i64).clamp(0, image.width as i64) as u32;
    let y1 = (bbox.y1 as i64).clamp(0, image.height as i64) as u32;
    let x2 = (bbox.x2 as i64).clamp(0, image.width as i64) as u32;
    let y2 = (bbox.y2 as i64).clamp(0, image.height as i64) as u32;
    if x2 <= x1 || y2 <= y1 {
        return None;
    }
    let (w, h) = (x2 - x1, y2 - y1);
    let mut data = Vec::with_capacity(w as usize * h as usize * 3);
    for y in y1..y2 {
        let row = &image.row(y)[x1 as usize * 3..x2 as usize * 3];
        for (i, p) in row.chunks_exact(3).enumerate() {
            if mask.get(x1 + i as u32, y) {
                match image.format {
                    PixelFormat::Rgb8 => data.extend_from_slice(p),
                    PixelFormat::Bgr8 => data.extend_from_slice(&[p[2], p[1], p[0]]),
                }
            } else {
                data.extend_from_slice(&blank);
            }
        }
    }
    Some(RgbImage { width: w, height: h, data })
}

/// Indices (ascending) picked from `sims` (`None`: not scored): the best one (ties: the lowest
/// index) when `threshold` is `None`, else every one at or above it.
pub fn pick(sims: &[Option<f32>], threshold: Option<f32>) -> Vec<usize> {
    let scored = sims.iter().enumerate().filter_map(|(i, s)| s.filter(|v| !v.is_nan()).map(|v| (i, v)));
    match threshold {
        Some(t) => scored.filter(|&(_, v)| v >= t).map(|(i, _)| i).collect(),
        None => {
            let mut best: Option<(usize, f32)> = None;
            for (i, v) in scored {
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((i, v));
                }
            }
            best.map(|(i, _)| vec![i]).unwrap_or_default()
        }
    }
}

/// The largest of the scored values.
fn best_of(v: impl Iterator<Item = Option<f32>>) -> Option<f32> {
    v.flatten().fold(None, |m: Option<f32>, x| Some(m.map_or(x, |m| m.max(x))))
}

/// One scorer shared by several streams (one CLIP model in memory; streams take turns).
impl<S: CropScorer> CropScorer for std::sync::Arc<std::sync::Mutex<S>> {
    fn similarities(&mut self, crops: &[RgbImage], prompts: &[String]) -> Result<Vec<Vec<f32>>, ClipError> {
        let mut g = self.lock().map_err(|_| ClipError::Inference("the shared CLIP model is poisoned".into()))?;
        g.similarities(crops, prompts)
    }
    fn check_prompts(&mut self, prompts: &[String]) -> Result<(), ClipError> {
        let mut g = self.lock().map_err(|_| ClipError::Inference("the shared CLIP model is poisoned".into()))?;
        g.check_prompts(prompts)
    }
}

/// Selects detections by text (and, if given, box/point prompts): the stream core's
/// [`PromptSelector`] for images and first frames, and its [`TrackScorer`] for video.
pub struct TextSelector<S: CropScorer = super::ClipModel> {
    scorer: S,
    prompts: Vec<String>,
    cfg: TextPromptConfig,
    geometric: Option<Prompt>,
    crops_scored: u64,
    last_scores: Vec<Option<f32>>,
}

impl<S: CropScorer> std::fmt::Debug for TextSelector<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextSelector").field("prompts", &self.prompts).field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl<S: CropScorer> TextSelector<S> {
    /// A selector for `prompts` (at least one, none empty: checked here, before any frame).
    pub fn new(mut scorer: S, prompts: Vec<String>, cfg: TextPromptConfig) -> Result<Self, ClipError> {
        cfg.validate()?;
        if prompts.is_empty() {
            return Err(ClipError::EmptyPrompt(" (no prompt given)".into()));
        }
        scorer.check_prompts(&prompts)?;
        Ok(TextSelector { scorer, prompts, cfg, geometric: None, crops_scored: 0, last_scores: Vec::new() })
    }

    /// Also select what these box/point prompts select (the union).
    pub fn with_geometric(mut self, prompt: Option<Prompt>) -> Self {
        self.geometric = prompt;
        self
    }

    pub fn scorer(&self) -> &S {
        &self.scorer
    }
    pub fn config(&self) -> &TextPromptConfig {
        &self.cfg
    }
    /// Per detection of the last [`TextSelector::select_text`] call, its best similarity over the
    /// prompts (`None`: not scored).
    pub fn last_scores(&self) -> &[Option<f32>] {
        &self.last_scores
    }
    /// Crops sent to the scorer so far.
    pub fn crops_scored(&self) -> u64 {
        self.crops_scored
    }

    /// Similarities `[prompt][k]` of `detections[which[k]]` (`None`: tiny mask, no mask or empty
    /// box: not scored).
    pub fn scores(
        &mut self,
        image: &ImageView<'_>,
        detections: &[Detection],
        which: &[usize],
    ) -> Result<Vec<Vec<Option<f32>>>, ClipError> {
        let mut crops = Vec::new();
        let mut slot = Vec::with_capacity(which.len());
        for &i in which {
            let d = detections
                .get(i)
                .ok_or_else(|| ClipError::InvalidOption(format!("detection {i} of {}", detections.len())))?;
            let crop = d
                .mask
                .as_ref()
                .filter(|m| m.area() > self.cfg.min_mask_area)
                .and_then(|m| masked_crop(image, m.roi(), &d.bbox, self.cfg.blank));
            slot.push(crop.map(|c| {
                crops.push(c);
                crops.len() - 1
            }));
        }
        self.crops_scored += crops.len() as u64;
        let sims = self.scorer.similarities(&crops, &self.prompts)?;
        Ok(sims.iter().map(|row| slot.iter().map(|s| s.and_then(|c| row.get(c).copied())).collect()).collect())
    }

    /// Indices (ascending) the text prompts select among `detections` (no box/point part).
    pub fn select_text(&mut self, image: &ImageView<'_>, detections: &[Detection]) -> Result<Vec<usize>, ClipError> {
        let all: Vec<usize> = (0..detections.len()).collect();
        let scores = self.scores(image, detections, &all)?;
        self.last_scores = (0..detections.len()).map(|i| best_of(scores.iter().map(|r| r[i]))).collect();
        let mut sel = vec![false; detections.len()];
        for row in &scores {
            for i in pick(row, self.cfg.threshold) {
                sel[i] = true;
            }
        }
        Ok(sel.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i).collect())
    }
}

impl<S: CropScorer> PromptSelector for TextSelector<S> {
    fn select(&mut self, image: ImageView<'_>, detections: &[Detection]) -> Result<Vec<usize>, ModelError> {
        let mut sel = self.select_text(&image, detections)?;
        if let Some(g) = &self.geometric {
            sel.extend(geometric_select(detections, g, image.width, image.height)?);
            sel.sort_unstable();
            sel.dedup();
        }
        Ok(sel)
    }
}

impl<S: CropScorer> TrackScorer for TextSelector<S> {
    fn score(
        &mut self,
        image: ImageView<'_>,
        detections: &[Detection],
        which: &[usize],
    ) -> Result<Vec<Option<f32>>, ModelError> {
        let rows = self.scores(&image, detections, which)?;
        Ok((0..which.len()).map(|k| best_of(rows.iter().map(|r| r[k]))).collect())
    }

    fn threshold(&self) -> Option<f32> {
        self.cfg.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Bitmap, Mask};

    const RED: [u8; 3] = [255, 0, 0];
    const BLUE: [u8; 3] = [0, 0, 255];

    /// Similarity = the fraction of pure-red pixels in the crop (a prompt "red"); counts crops.
    struct RedScorer {
        crops: Vec<(u32, u32)>,
    }
    impl CropScorer for RedScorer {
        fn similarities(&mut self, crops: &[RgbImage], prompts: &[String]) -> Result<Vec<Vec<f32>>, ClipError> {
            self.crops.extend(crops.iter().map(|c| (c.width, c.height)));
            let s: Vec<f32> = crops
                .iter()
                .map(|c| {
                    let red = c.data.chunks_exact(3).filter(|p| *p == RED).count();
                    red as f32 / (c.width * c.height) as f32
                })
                .collect();
            Ok(vec![s; prompts.len()])
        }
    }

    /// A `w x h` RGB frame painted by `rects` (x, y, w, h, colour) on grey, and one detection per
    /// rect whose mask is exactly that rect and whose box is `boxes[i]` (or the rect).
    fn scene(
        w: u32,
        h: u32,
        rects: &[(u32, u32, u32, u32, [u8; 3])],
        boxes: &[Option<BBox>],
    ) -> (Vec<u8>, Vec<Detection>) {
        let mut img = [128u8, 128, 128].repeat((w * h) as usize);
        let mut dets = Vec::new();
        for (k, &(x0, y0, rw, rh, col)) in rects.iter().enumerate() {
            let mut bm = Bitmap::zeros(w, h);
            for y in y0..y0 + rh {
                for x in x0..x0 + rw {
                    let i = (y * w + x) as usize;
                    img[i * 3..i * 3 + 3].copy_from_slice(&col);
                    bm.data[i] = 1;
                }
            }
            let bbox = boxes.get(k).copied().flatten().unwrap_or(BBox::new(
                x0 as f32,
                y0 as f32,
                (x0 + rw) as f32,
                (y0 + rh) as f32,
            ));
            dets.push(Detection {
                bbox,
                score: 0.9,
                class_id: 0,
                mask: Some(Mask::from_roi(RoiBitmap::from_full(&bm))),
            });
        }
        (img, dets)
    }

    fn selector(threshold: Option<f32>) -> TextSelector<RedScorer> {
        TextSelector::new(
            RedScorer { crops: Vec::new() },
            vec!["red".into()],
            TextPromptConfig { threshold, ..Default::default() },
        )
        .unwrap()
    }

    #[test]
    fn pick_best_ties_and_threshold() {
        assert_eq!(pick(&[Some(0.1), Some(0.3), None, Some(0.2)], None), vec![1]);
        // ties: the lowest index, whatever the order of evaluation
        assert_eq!(pick(&[Some(0.1), Some(0.3), Some(0.3)], None), vec![1]);
        assert_eq!(pick(&[None, Some(f32::NAN), Some(-0.5)], None), vec![2]);
        assert_eq!(pick(&[None, None], None), Vec::<usize>::new());
        assert_eq!(pick(&[Some(0.25), Some(0.2), Some(0.3), None], Some(0.25)), vec![0, 2]);
    }

    #[test]
    fn best_mask_wins_and_threshold_selects_all_above() {
        // 0: blue, 1: red, 2: half red / half blue (two rects merged into one detection below)
        let (img, mut dets) = scene(
            100,
            60,
            &[(5, 5, 20, 20, BLUE), (40, 5, 20, 20, RED), (70, 5, 10, 20, RED), (80, 5, 10, 20, BLUE)],
            &[],
        );
        // merge detections 2 and 3 into one mask over both halves
        let both = {
            let a = dets[2].mask.as_ref().unwrap().to_bitmap(100, 60);
            let b = dets[3].mask.as_ref().unwrap().to_bitmap(100, 60);
            let mut m = Bitmap::zeros(100, 60);
            for i in 0..m.data.len() {
                m.data[i] = a.data[i] | b.data[i];
            }
            m
        };
        dets.truncate(2);
        dets.push(Detection {
            bbox: BBox::new(70.0, 5.0, 90.0, 25.0),
            score: 0.9,
            class_id: 0,
            mask: Some(Mask::from_roi(RoiBitmap::from_full(&both))),
        });
        let view = ImageView::packed(100, 60, PixelFormat::Rgb8, &img).unwrap();
        let mut s = selector(None);
        assert_eq!(PromptSelector::select(&mut s, view, &dets).unwrap(), vec![1]);
        let mut s = selector(Some(0.4));
        assert_eq!(PromptSelector::select(&mut s, view, &dets).unwrap(), vec![1, 2]);
        // the union with a box prompt around the blue square
        let mut s = selector(None).with_geometric(Some(Prompt::Boxes(vec![BBox::new(5.0, 5.0, 25.0, 25.0)])));
        assert_eq!(PromptSelector::select(&mut s, view, &dets).unwrap(), vec![0, 1]);
        // the same scene in BGR order selects the same
        let bgr: Vec<u8> = img.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
        let view = ImageView::packed(100, 60, PixelFormat::Bgr8, &bgr).unwrap();
        assert_eq!(PromptSelector::select(&mut selector(None), view, &dets).unwrap(), vec![1]);
    }

    #[test]
    fn identical_candidates_tie_to_the_first() {
        let (img, dets) = scene(80, 40, &[(5, 5, 20, 20, RED), (40, 5, 20, 20, RED)], &[]);
        let view = ImageView::packed(80, 40, PixelFormat::Rgb8, &img).unwrap();
        for _ in 0..3 {
            assert_eq!(PromptSelector::select(&mut selector(None), view, &dets).unwrap(), vec![0]);
        }
    }

    #[test]
    fn tiny_masks_are_skipped_not_scored() {
        // a 10x10 = 100-pixel pure red mask (would score 1.0) and a 20x20 mostly-red one
        let (mut img, dets) = scene(80, 40, &[(2, 2, 10, 10, RED), (40, 5, 20, 20, RED)], &[]);
        // make detection 1 only 3/4 red
        for y in 5..10 {
            for x in 40..60 {
                let i = (y * 80 + x) * 3;
                img[i..i + 3].copy_from_slice(&BLUE);
            }
        }
        let view = ImageView::packed(80, 40, PixelFormat::Rgb8, &img).unwrap();
        let mut s = selector(None);
        assert_eq!(PromptSelector::select(&mut s, view, &dets).unwrap(), vec![1]);
        assert_eq!(s.scorer().crops, vec![(20, 20)], "only the large mask reaches the encoder");
        // with the limit below its area the tiny one is scored (and wins)
        let mut s = TextSelector::new(
            RedScorer { crops: Vec::new() },
            vec!["red".into()],
            TextPromptConfig { min_mask_area: 99, ..Default::default() },
        )
        .unwrap();
        assert_eq!(PromptSelector::select(&mut s, view, &dets).unwrap(), vec![0]);
    }

    #[test]
    fn neighbours_inside_the_box_are_blanked() {
        // a blue object whose (loose) box also covers a red neighbour
        let (img, dets) = scene(
            80,
            40,
            &[(5, 5, 20, 20, BLUE), (25, 5, 20, 20, RED)],
            &[Some(BBox::new(5.0, 5.0, 45.0, 25.0)), None],
        );
        let view = ImageView::packed(80, 40, PixelFormat::Rgb8, &img).unwrap();
        let crop = masked_crop(&view, dets[0].mask.as_ref().unwrap().roi(), &dets[0].bbox, [255, 255, 255]).unwrap();
        assert_eq!((crop.width, crop.height), (40, 20));
        // left half: the object's own blue pixels; right half (the neighbour): blanked white
        assert!(crop.data.chunks_exact(3).enumerate().all(|(i, p)| {
            let x = i % 40;
            if x < 20 { p == BLUE } else { p == [255, 255, 255] }
        }));
        let mut s = selector(None);
        let scores = s.scores(&view, &dets, &[0, 1]).unwrap();
        assert_eq!(scores, vec![vec![Some(0.0), Some(1.0)]]);
    }

    #[test]
    fn empty_prompt_list_and_bad_threshold_are_refused() {
        assert!(matches!(
            TextSelector::new(RedScorer { crops: vec![] }, vec![], TextPromptConfig::default()),
            Err(ClipError::EmptyPrompt(_))
        ));
        for t in [f32::NAN, 1.5, -2.0] {
            let cfg = TextPromptConfig { threshold: Some(t), ..Default::default() };
            assert!(matches!(
                TextSelector::new(RedScorer { crops: vec![] }, vec!["x".into()], cfg),
                Err(ClipError::InvalidOption(_))
            ));
        }
    }
}
