//! The OpenCV drawing of [`OverlayItem`]s (feature `overlay`).

use opencv::core::{Mat, Point, Rect, Scalar, Vector};
use opencv::imgproc;

use super::{OverlayItem, OverlayStyle, color_for};
use crate::mask::Mask;
use crate::types::PixelFormat;

/// Errors while drawing.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("image buffer too small: {len} bytes for {width}x{height} with stride {stride}")]
    BufferTooSmall { len: usize, width: u32, height: u32, stride: usize },
    #[error("mask is for a {mask_w}x{mask_h} image but the frame is {width}x{height}")]
    MaskSize { mask_w: u32, mask_h: u32, width: u32, height: u32 },
    #[error("OpenCV drawing failed: {0}")]
    OpenCv(#[from] opencv::Error),
}

/// Draws overlays, reusing its scratch buffers from frame to frame.
#[derive(Debug, Default)]
pub struct Overlay {
    style: OverlayStyle,
    scratch: Vec<u8>,
}

impl Overlay {
    pub fn new(style: OverlayStyle) -> Self {
        Self { style, scratch: Vec::new() }
    }

    pub fn style(&self) -> &OverlayStyle {
        &self.style
    }

    /// Draw `items` onto an 8-bit 3-channel image in place.
    pub fn draw(
        &mut self,
        img: &mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
        items: &[OverlayItem<'_>],
    ) -> Result<(), OverlayError> {
        let need = if height == 0 { 0 } else { stride * (height as usize - 1) + width as usize * 3 };
        if img.len() < need || stride < width as usize * 3 {
            return Err(OverlayError::BufferTooSmall { len: img.len(), width, height, stride });
        }
        if width == 0 || height == 0 {
            return Ok(());
        }
        let alpha = self.style.alpha.clamp(0.0, 1.0);
        // Pass 1: blend masks (pure Rust, ROI only).
        for it in items {
            let Some(mask) = it.mask else { continue };
            let (mw, mh) = mask.image_size();
            if (mw, mh) != (width, height) {
                return Err(OverlayError::MaskSize { mask_w: mw, mask_h: mh, width, height });
            }
            let c = channel_order(color_for(it.color_key), format);
            blend_roi(img, stride, mask, c, alpha);
        }
        // Pass 2: contours, boxes and labels with OpenCV on a view of the same buffer.
        // SAFETY: the Mat borrows `img` (checked above to hold `height` rows of `stride` bytes) and
        // is dropped before this function returns; nothing else touches `img` meanwhile.
        let mut mat = unsafe {
            Mat::new_rows_cols_with_data_unsafe(
                height as i32,
                width as i32,
                opencv::core::CV_8UC3,
                img.as_mut_ptr().cast(),
                stride,
            )?
        };
        for it in items {
            let rgb = color_for(it.color_key);
            let c = channel_order(rgb, format);
            let color = Scalar::new(c[0] as f64, c[1] as f64, c[2] as f64, 0.0);
            if self.style.contours
                && let Some(mask) = it.mask
            {
                self.draw_contours(&mut mat, mask, color)?;
            }
            let b = it.bbox;
            let rect = Rect::new(
                b.x1.round() as i32,
                b.y1.round() as i32,
                (b.x2 - b.x1).round().max(1.0) as i32,
                (b.y2 - b.y1).round().max(1.0) as i32,
            );
            if self.style.show_boxes {
                imgproc::rectangle(&mut mat, rect, color, 2, imgproc::LINE_8, 0)?;
            }
            let mut text = if self.style.show_labels { it.label.clone().unwrap_or_default() } else { String::new() };
            if self.style.show_scores
                && let Some(s) = it.score
            {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&format!("{s:.2}"));
            }
            if !text.is_empty() {
                draw_label(&mut mat, &text, rect.x, rect.y, color, rgb, width as i32, height as i32)?;
            }
        }
        Ok(())
    }

    fn draw_contours(&mut self, mat: &mut Mat, mask: &Mask, color: Scalar) -> Result<(), OverlayError> {
        let roi = mask.roi();
        let r = roi.rect;
        if r.is_empty() {
            return Ok(());
        }
        // Pad by one pixel so that contours touching the ROI border close properly.
        let (pw, ph) = (r.w as usize + 2, r.h as usize + 2);
        self.scratch.clear();
        self.scratch.resize(pw * ph, 0);
        for y in 0..r.h as usize {
            let src = &roi.data[y * r.w as usize..(y + 1) * r.w as usize];
            self.scratch[(y + 1) * pw + 1..(y + 1) * pw + 1 + r.w as usize].copy_from_slice(src);
        }
        // SAFETY: `scratch` holds exactly ph*pw bytes and outlives `m`, which is dropped below.
        let m = unsafe {
            Mat::new_rows_cols_with_data_unsafe(
                ph as i32,
                pw as i32,
                opencv::core::CV_8UC1,
                self.scratch.as_mut_ptr().cast(),
                pw,
            )?
        };
        let mut contours: Vector<Vector<Point>> = Vector::new();
        imgproc::find_contours(
            &m,
            &mut contours,
            imgproc::RETR_EXTERNAL,
            imgproc::CHAIN_APPROX_SIMPLE,
            Point::new(r.x as i32 - 1, r.y as i32 - 1),
        )?;
        drop(m);
        if !contours.is_empty() {
            imgproc::draw_contours(
                mat,
                &contours,
                -1,
                color,
                self.style.contour_thickness.max(1),
                imgproc::LINE_8,
                &opencv::core::no_array(),
                i32::MAX,
                Point::new(0, 0),
            )?;
        }
        Ok(())
    }
}

fn channel_order(rgb: [u8; 3], format: PixelFormat) -> [u8; 3] {
    match format {
        PixelFormat::Rgb8 => rgb,
        PixelFormat::Bgr8 => [rgb[2], rgb[1], rgb[0]],
    }
}

/// `px = px * (1 - a) + c * a` for every mask pixel, in fixed point.
fn blend_roi(img: &mut [u8], stride: usize, mask: &Mask, c: [u8; 3], alpha: f32) {
    let roi = mask.roi();
    let r = roi.rect;
    let a = (alpha * 256.0).round() as u32;
    let ia = 256 - a;
    let add = [c[0] as u32 * a + 128, c[1] as u32 * a + 128, c[2] as u32 * a + 128];
    for yy in 0..r.h as usize {
        let mrow = &roi.data[yy * r.w as usize..(yy + 1) * r.w as usize];
        let off = (r.y as usize + yy) * stride + r.x as usize * 3;
        let prow = &mut img[off..off + r.w as usize * 3];
        for (m, px) in mrow.iter().zip(prow.chunks_exact_mut(3)) {
            if *m != 0 {
                px[0] = ((px[0] as u32 * ia + add[0]) >> 8) as u8;
                px[1] = ((px[1] as u32 * ia + add[1]) >> 8) as u8;
                px[2] = ((px[2] as u32 * ia + add[2]) >> 8) as u8;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_label(
    mat: &mut Mat,
    text: &str,
    x: i32,
    y: i32,
    bg: Scalar,
    rgb: [u8; 3],
    width: i32,
    height: i32,
) -> Result<(), OverlayError> {
    let font = imgproc::FONT_HERSHEY_SIMPLEX;
    let scale = 0.5;
    let mut base = 0;
    let size = imgproc::get_text_size(text, font, scale, 1, &mut base)?;
    let (tw, th) = (size.width + 4, size.height + base + 4);
    let lx = x.clamp(0, (width - tw).max(0));
    let ly = if y - th >= 0 { y - th } else { (y).clamp(0, (height - th).max(0)) };
    imgproc::rectangle(mat, Rect::new(lx, ly, tw, th), bg, imgproc::FILLED, imgproc::LINE_8, 0)?;
    // Black text on light colours, white on dark ones.
    let luma = 0.299 * rgb[0] as f64 + 0.587 * rgb[1] as f64 + 0.114 * rgb[2] as f64;
    let fg = if luma > 140.0 { Scalar::new(0.0, 0.0, 0.0, 0.0) } else { Scalar::new(255.0, 255.0, 255.0, 0.0) };
    imgproc::put_text(
        mat,
        text,
        Point::new(lx + 2, ly + size.height + 2),
        font,
        scale,
        fg,
        1,
        imgproc::LINE_AA,
        false,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Bitmap, RoiBitmap};
    use crate::types::BBox;

    fn disc(w: u32, h: u32, cx: f32, cy: f32, r: f32) -> Mask {
        let mut bm = Bitmap::zeros(w, h);
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if dx * dx + dy * dy <= r * r {
                    bm.data[(y * w + x) as usize] = 1;
                }
            }
        }
        Mask::from_roi(RoiBitmap::from_full(&bm))
    }

    #[test]
    fn colours_are_deterministic_and_distinct() {
        assert_eq!(color_for(7), color_for(7));
        let cs: std::collections::HashSet<_> = (0..32).map(color_for).collect();
        assert_eq!(cs.len(), 32);
    }

    #[test]
    fn blend_changes_exactly_the_mask_pixels() {
        let (w, h) = (64u32, 48u32);
        let mask = disc(w, h, 30.0, 20.0, 10.0);
        let mut img = vec![100u8; (w * h * 3) as usize];
        let style = OverlayStyle { contours: false, show_labels: false, ..Default::default() };
        let mut ov = Overlay::new(style);
        let item = OverlayItem {
            mask: Some(&mask),
            bbox: BBox::new(20.0, 10.0, 40.0, 30.0),
            color_key: 3,
            label: None,
            score: None,
        };
        ov.draw(&mut img, w, h, (w * 3) as usize, PixelFormat::Rgb8, &[item]).unwrap();
        let c = color_for(3);
        let full = mask.to_bitmap(w, h);
        for y in 0..h {
            for x in 0..w {
                let px = &img[((y * w + x) * 3) as usize..((y * w + x) * 3 + 3) as usize];
                if full.get(x, y) {
                    for k in 0..3 {
                        let want = (100.0 * 0.5 + c[k] as f32 * 0.5).round();
                        assert!((px[k] as f32 - want).abs() <= 1.0, "({x},{y}) ch{k}: {} vs {want}", px[k]);
                    }
                } else {
                    assert_eq!(px, [100, 100, 100], "pixel ({x},{y}) outside the mask changed");
                }
            }
        }
    }

    #[test]
    fn contour_lies_on_the_mask_boundary_and_bgr_swaps() {
        let (w, h) = (64u32, 48u32);
        let mask = disc(w, h, 32.0, 24.0, 12.0);
        let mut img = vec![0u8; (w * h * 3) as usize];
        let style = OverlayStyle { alpha: 0.0, contour_thickness: 1, show_labels: false, ..Default::default() };
        let mut ov = Overlay::new(style);
        let item = OverlayItem {
            mask: Some(&mask),
            bbox: BBox::new(20.0, 12.0, 44.0, 36.0),
            color_key: 1,
            label: None,
            score: None,
        };
        ov.draw(&mut img, w, h, (w * 3) as usize, PixelFormat::Bgr8, &[item]).unwrap();
        let c = color_for(1);
        let full = mask.to_bitmap(w, h);
        let mut drawn = 0;
        for y in 0..h {
            for x in 0..w {
                let px = &img[((y * w + x) * 3) as usize..((y * w + x) * 3 + 3) as usize];
                if px != [0, 0, 0] {
                    drawn += 1;
                    assert_eq!(px, [c[2], c[1], c[0]], "contour colour must be BGR");
                    // Thickness 1 contour pixels are mask pixels with a 4-neighbour outside the mask.
                    assert!(full.get(x, y), "contour pixel ({x},{y}) outside the mask");
                    let inside = |dx: i32, dy: i32| full.get((x as i32 + dx) as u32, (y as i32 + dy) as u32);
                    assert!(
                        !(inside(-1, 0) && inside(1, 0) && inside(0, -1) && inside(0, 1)),
                        "interior pixel ({x},{y})"
                    );
                }
            }
        }
        assert!(drawn > 40, "a radius-12 disc has a perimeter of ~75 px, got {drawn}");
    }

    #[test]
    fn wrong_mask_size_is_an_error_not_a_panic() {
        let mask = disc(10, 10, 5.0, 5.0, 3.0);
        let mut img = vec![0u8; 20 * 20 * 3];
        let item = OverlayItem { mask: Some(&mask), bbox: BBox::default(), color_key: 0, label: None, score: None };
        let err = Overlay::default().draw(&mut img, 20, 20, 60, PixelFormat::Rgb8, &[item]).unwrap_err();
        assert!(err.to_string().contains("10x10"), "{err}");
        let err = Overlay::default().draw(&mut img[..10], 20, 20, 60, PixelFormat::Rgb8, &[]).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
    }

    #[test]
    fn labels_are_drawn_inside_the_image() {
        let (w, h) = (80u32, 40u32);
        let mut img = vec![0u8; (w * h * 3) as usize];
        let item = OverlayItem {
            mask: None,
            bbox: BBox::new(70.0, 0.0, 80.0, 10.0),
            color_key: 2,
            label: Some("#12".into()),
            score: Some(0.9),
        };
        let style = OverlayStyle { show_scores: true, show_boxes: true, ..Default::default() };
        Overlay::new(style).draw(&mut img, w, h, (w * 3) as usize, PixelFormat::Rgb8, &[item]).unwrap();
        assert!(img.iter().any(|&v| v != 0));
    }
}
