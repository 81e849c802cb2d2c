//! Box and point prompts on an "everything" result, with the semantics of Ultralytics 8.4.x
//! `FastSAMPredictor.prompt` (no re-inference: prompts only select among existing detections).
//!
//! * Box: the box is cast to int32 and clamped to the image; for each box the detection whose
//!   original-size mask maximises `inter / (box_area + mask_area - inter)` is selected (first on
//!   ties); several boxes select the union of their picks.
//! * Points: cast to integers; a detection is selected iff one of the positive points lies in its
//!   mask and none of the negative points does (with only negative points: every mask that
//!   contains none of them).
//! * Boxes and points: the union of both selections.
//!
//! Unlike Ultralytics (which silently clamps), points outside the image, boxes that do not overlap
//! the image, degenerate boxes and non-finite coordinates are errors.

use super::ModelError;
use crate::mask::{PixelRect, RoiBitmap};
use crate::types::{BBox, Detection};

/// A FastSAM prompt. Points are `(x, y, positive)` in original pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Everything,
    Boxes(Vec<BBox>),
    Points(Vec<(f32, f32, bool)>),
    BoxesAndPoints(Vec<BBox>, Vec<(f32, f32, bool)>),
}

/// A prompt string that does not parse (the message names the bad part and the expected syntax).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PromptParseError(pub String);

fn parse_num(s: &str, what: &str) -> Result<f32, PromptParseError> {
    let v: f32 = s.trim().parse().map_err(|_| PromptParseError(format!("`{s}` in {what} is not a number")))?;
    if !v.is_finite() {
        return Err(PromptParseError(format!("`{s}` in {what} is not finite")));
    }
    Ok(v)
}

/// One box prompt, `x1,y1,x2,y2` in pixels (the CLI's `--box`).
pub fn parse_box(s: &str) -> Result<BBox, PromptParseError> {
    let v = s.split(',').map(|t| parse_num(t, "--box")).collect::<Result<Vec<_>, _>>()?;
    match v.as_slice() {
        [x1, y1, x2, y2] if x2 > x1 && y2 > y1 => Ok(BBox::new(*x1, *y1, *x2, *y2)),
        [_, _, _, _] => Err(PromptParseError(format!("box `{s}` must have x1 < x2 and y1 < y2"))),
        _ => Err(PromptParseError(format!("box `{s}` must be x1,y1,x2,y2"))),
    }
}

/// One point prompt, `x,y[,label]` with label 1 (include, default) or 0 (exclude) (the CLI's
/// `--point`).
pub fn parse_point(s: &str) -> Result<(f32, f32, bool), PromptParseError> {
    let t: Vec<&str> = s.split(',').collect();
    match t.as_slice() {
        [x, y] => Ok((parse_num(x, "--point")?, parse_num(y, "--point")?, true)),
        [x, y, l] => {
            let pos = match l.trim() {
                "1" => true,
                "0" => false,
                _ => return Err(PromptParseError(format!("point label `{l}` must be 1 (include) or 0 (exclude)"))),
            };
            Ok((parse_num(x, "--point")?, parse_num(y, "--point")?, pos))
        }
        _ => Err(PromptParseError(format!("point `{s}` must be x,y or x,y,label"))),
    }
}

/// Several boxes in one string, separated by `;` (e.g. `10,10,50,80;60,5,90,40`); blank parts
/// are ignored.
pub fn parse_boxes(s: &str) -> Result<Vec<BBox>, PromptParseError> {
    s.split(';').map(str::trim).filter(|t| !t.is_empty()).map(parse_box).collect()
}

/// Several points in one string, separated by `;` (e.g. `30,40;70,20,0`); blank parts are ignored.
pub fn parse_points(s: &str) -> Result<Vec<(f32, f32, bool)>, PromptParseError> {
    s.split(';').map(str::trim).filter(|t| !t.is_empty()).map(parse_point).collect()
}

impl Prompt {
    /// The prompt made of `boxes` and `points`; `None` when both are empty (follow everything).
    pub fn from_parts(boxes: &[BBox], points: &[(f32, f32, bool)]) -> Option<Prompt> {
        match (boxes.is_empty(), points.is_empty()) {
            (true, true) => None,
            (false, true) => Some(Prompt::Boxes(boxes.to_vec())),
            (true, false) => Some(Prompt::Points(points.to_vec())),
            (false, false) => Some(Prompt::BoxesAndPoints(boxes.to_vec(), points.to_vec())),
        }
    }
}

fn count_in_rect(roi: &RoiBitmap, r: &PixelRect) -> u64 {
    let Some(i) = roi.rect.intersect(r) else {
        return 0;
    };
    let mut n = 0u64;
    for y in i.y..i.bottom() {
        let off = ((y - roi.rect.y) * roi.rect.w) as usize;
        let row = &roi.data[off + (i.x - roi.rect.x) as usize..off + (i.right() - roi.rect.x) as usize];
        n += row.iter().filter(|&&v| v != 0).count() as u64;
    }
    n
}

/// Check a box prompt and convert it to the clamped integer rectangle Ultralytics uses.
fn box_rect(b: &BBox, w: u32, h: u32) -> Result<PixelRect, ModelError> {
    let c = [b.x1, b.y1, b.x2, b.y2];
    if c.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::Prompt(format!("box {c:?} has a non-finite coordinate")));
    }
    let t = c.map(|v| v as i64);
    let x1 = t[0].clamp(0, w as i64);
    let y1 = t[1].clamp(0, h as i64);
    let x2 = t[2].clamp(0, w as i64);
    let y2 = t[3].clamp(0, h as i64);
    if x2 <= x1 || y2 <= y1 {
        return Err(ModelError::Prompt(format!(
            "box x1,y1,x2,y2 = {},{},{},{} is empty or outside the {w}x{h} image (need x1 < x2 and y1 < y2, overlapping the image)",
            b.x1, b.y1, b.x2, b.y2
        )));
    }
    Ok(PixelRect::new(x1 as u32, y1 as u32, (x2 - x1) as u32, (y2 - y1) as u32))
}

fn check_point(x: f32, y: f32, w: u32, h: u32) -> Result<(u32, u32), ModelError> {
    if !(x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0 && x < w as f32 && y < h as f32) {
        return Err(ModelError::Prompt(format!(
            "point {x},{y} is outside the {w}x{h} image (need 0 <= x < {w}, 0 <= y < {h})"
        )));
    }
    Ok(((x as u32).min(w - 1), (y as u32).min(h - 1)))
}

/// Indices (ascending) of the detections a prompt selects. `img_w x img_h` is the original image
/// size the detections' masks belong to.
pub fn select(dets: &[Detection], prompt: &Prompt, img_w: u32, img_h: u32) -> Result<Vec<usize>, ModelError> {
    if img_w == 0 || img_h == 0 {
        return Err(ModelError::Prompt(format!("empty image size {img_w}x{img_h}")));
    }
    let (boxes, points): (&[BBox], &[(f32, f32, bool)]) = match prompt {
        Prompt::Everything => return Ok((0..dets.len()).collect()),
        Prompt::Boxes(b) => (b, &[]),
        Prompt::Points(p) => (&[], p),
        Prompt::BoxesAndPoints(b, p) => (b, p),
    };
    if boxes.is_empty() && points.is_empty() {
        return Err(ModelError::Prompt("the prompt has no boxes and no points".into()));
    }
    // validate everything before looking at masks
    let rects = boxes.iter().map(|b| box_rect(b, img_w, img_h)).collect::<Result<Vec<_>, _>>()?;
    let pts = points
        .iter()
        .map(|&(x, y, pos)| check_point(x, y, img_w, img_h).map(|(x, y)| (x, y, pos)))
        .collect::<Result<Vec<_>, _>>()?;
    for d in dets {
        if let Some(m) = &d.mask
            && m.image_size() != (img_w, img_h)
        {
            return Err(ModelError::Prompt(format!(
                "detections belong to a {}x{} image, not {img_w}x{img_h}",
                m.image_size().0,
                m.image_size().1
            )));
        }
    }
    let mut sel = vec![false; dets.len()];
    if dets.is_empty() {
        return Ok(Vec::new());
    }
    let empty = RoiBitmap::empty(img_w, img_h);
    let rois: Vec<&RoiBitmap> = dets.iter().map(|d| d.mask.as_ref().map_or(&empty, |m| m.roi())).collect();

    if !rects.is_empty() {
        let areas: Vec<u64> = rois.iter().map(|r| r.area()).collect();
        for r in &rects {
            let box_area = r.area();
            let (mut best, mut best_i) = (f32::NEG_INFINITY, 0usize);
            for (i, roi) in rois.iter().enumerate() {
                let inter = count_in_rect(roi, r);
                let union = box_area + areas[i] - inter;
                let ratio = inter as f32 / union as f32;
                if ratio > best {
                    best = ratio;
                    best_i = i;
                }
            }
            sel[best_i] = true;
        }
    }
    if !pts.is_empty() {
        let any_pos = pts.iter().any(|p| p.2);
        for (i, roi) in rois.iter().enumerate() {
            let hit_pos = pts.iter().any(|&(x, y, pos)| pos && roi.get(x, y));
            let hit_neg = pts.iter().any(|&(x, y, pos)| !pos && roi.get(x, y));
            if (!any_pos || hit_pos) && !hit_neg {
                sel[i] = true;
            }
        }
    }
    Ok(sel.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i).collect())
}

/// The detections a prompt selects (cheap clones sharing the masks), in their original order.
pub fn apply(dets: &[Detection], prompt: &Prompt, img_w: u32, img_h: u32) -> Result<Vec<Detection>, ModelError> {
    Ok(select(dets, prompt, img_w, img_h)?.into_iter().map(|i| dets[i].clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Bitmap, Mask};

    fn det(w: u32, h: u32, pixels: &[(u32, u32)]) -> Detection {
        let mut bm = Bitmap::zeros(w, h);
        for &(x, y) in pixels {
            bm.data[(y * w + x) as usize] = 1;
        }
        Detection {
            bbox: BBox::default(),
            score: 1.0,
            class_id: 0,
            mask: Some(Mask::from_roi(RoiBitmap::from_full(&bm))),
        }
    }

    fn square(x0: u32, y0: u32, s: u32) -> Vec<(u32, u32)> {
        (y0..y0 + s).flat_map(|y| (x0..x0 + s).map(move |x| (x, y))).collect()
    }

    #[test]
    fn box_picks_best_overlap_and_points_follow_labels() {
        let dets = vec![det(20, 20, &square(0, 0, 10)), det(20, 20, &square(5, 5, 10)), det(20, 20, &square(0, 0, 20))];
        let sel = |p: Prompt| select(&dets, &p, 20, 20).unwrap();
        assert_eq!(sel(Prompt::Boxes(vec![BBox::new(5.0, 5.0, 15.0, 15.0)])), vec![1]);
        // truncation: 0.9 -> 0, 10.9 -> 10 gives exactly square 0
        assert_eq!(sel(Prompt::Boxes(vec![BBox::new(0.9, 0.9, 10.9, 10.9)])), vec![0]);
        assert_eq!(sel(Prompt::Points(vec![(2.0, 2.0, true)])), vec![0, 2]);
        assert_eq!(sel(Prompt::Points(vec![(2.0, 2.0, true), (12.0, 12.0, false)])), vec![0]);
        assert_eq!(sel(Prompt::Points(vec![(18.0, 18.0, false)])), vec![0, 1]);
        assert_eq!(
            sel(Prompt::BoxesAndPoints(vec![BBox::new(5.0, 5.0, 15.0, 15.0)], vec![(18.0, 18.0, true)])),
            vec![1, 2]
        );
        assert_eq!(sel(Prompt::Everything), vec![0, 1, 2]);
    }

    #[test]
    fn parse_prompts() {
        assert_eq!(parse_box("1,2,3.5,4").unwrap(), BBox::new(1.0, 2.0, 3.5, 4.0));
        assert!(parse_box("1,2,3").is_err());
        assert!(parse_box("5,2,3,4").is_err());
        assert!(parse_box("a,2,3,4").is_err());
        assert!(parse_box("5,5,1,1").is_err());
        assert_eq!(parse_point("3,4").unwrap(), (3.0, 4.0, true));
        assert_eq!(parse_point("3,4,0").unwrap(), (3.0, 4.0, false));
        assert!(parse_point("3,4,2").is_err());
        assert!(parse_point("3").is_err());
        assert!(parse_point("a,4").is_err());
        assert_eq!(
            parse_boxes(" 1,2,3,4; 5,6,7,8 ;").unwrap(),
            vec![BBox::new(1.0, 2.0, 3.0, 4.0), BBox::new(5.0, 6.0, 7.0, 8.0)]
        );
        assert!(parse_boxes("").unwrap().is_empty());
        assert_eq!(parse_points("3,4;5,6,0").unwrap(), vec![(3.0, 4.0, true), (5.0, 6.0, false)]);
        assert!(parse_points("3,4;x").is_err());
        assert_eq!(Prompt::from_parts(&[], &[]), None);
        assert_eq!(Prompt::from_parts(&[], &[(1.0, 2.0, true)]), Some(Prompt::Points(vec![(1.0, 2.0, true)])));
    }

    #[test]
    fn bad_prompts_are_errors() {
        let dets = vec![det(20, 20, &square(0, 0, 10))];
        for p in [
            Prompt::Points(vec![(20.0, 5.0, true)]),
            Prompt::Points(vec![(-1.0, 5.0, true)]),
            Prompt::Points(vec![(f32::NAN, 5.0, true)]),
            Prompt::Boxes(vec![BBox::new(5.0, 5.0, 5.0, 10.0)]),
            Prompt::Boxes(vec![BBox::new(30.0, 30.0, 40.0, 40.0)]),
            Prompt::Boxes(vec![BBox::new(10.0, 10.0, 2.0, 2.0)]),
            Prompt::Boxes(vec![]),
        ] {
            let e = select(&dets, &p, 20, 20).unwrap_err();
            assert!(matches!(e, ModelError::Prompt(_)), "{p:?}: {e}");
        }
        // partly outside is clamped, as in Ultralytics
        assert_eq!(select(&dets, &Prompt::Boxes(vec![BBox::new(-5.0, -5.0, 8.0, 8.0)]), 20, 20).unwrap(), vec![0]);
    }
}
