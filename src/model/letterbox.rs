//! Ultralytics `LetterBox` preprocessing: aspect-preserving resize (OpenCV `INTER_LINEAR`, the same
//! fixed-point kernel `cv2.resize` uses, reimplemented bit-exactly in [`super::resize`]), centre padding with grey 114, RGB channel order, `/255`,
//! HWC -> CHW float32. Buffers are reused between frames.
//!
//! The geometry ([`Letterbox`]) follows `ultralytics/data/augment.py` in 8.4.x: `r = min(Ht/h, Wt/w)`
//! (no scale-up limit), `new_unpad = (max(round(w*r),1), max(round(h*r),1))` with Python's
//! banker's rounding, padding `(target - new_unpad)` or, with `auto` (dynamic-shape models),
//! `(target - new_unpad) mod stride`, split `left = round(d/2 - 0.1)`, `right = round(d/2 + 0.1)`.

use super::ModelError;
use super::resize::LinearResizer;
use crate::types::{ImageView, PixelFormat};

/// Python 3 `round()` for the non-negative values used here: round half to even.
pub fn round_half_even(v: f64) -> i64 {
    let f = v.floor();
    let diff = v - f;
    let up = diff > 0.5 || (diff == 0.5 && (f as i64) % 2 != 0);
    let r = if up { f + 1.0 } else { f };
    r as i64
}

/// Letterbox geometry: how an `orig_w x orig_h` image maps into the `input_w x input_h` network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub orig_w: u32,
    pub orig_h: u32,
    pub input_w: u32,
    pub input_h: u32,
    /// Size of the resized image content inside the input.
    pub new_w: u32,
    pub new_h: u32,
    pub pad_left: u32,
    pub pad_top: u32,
    pub pad_right: u32,
    pub pad_bottom: u32,
    /// The scale factor `r` (same for both axes).
    pub ratio: f64,
}

impl Letterbox {
    /// Geometry for a target of `target_w x target_h`; `auto` = minimum-rectangle padding (multiple
    /// of `stride`), as Ultralytics does for dynamic-shape ONNX models.
    pub fn new(orig_w: u32, orig_h: u32, target_w: u32, target_h: u32, auto: bool, stride: u32) -> Self {
        let r = (target_h as f64 / orig_h as f64).min(target_w as f64 / orig_w as f64);
        let new_w = round_half_even(orig_w as f64 * r).max(1) as u32;
        let new_h = round_half_even(orig_h as f64 * r).max(1) as u32;
        let mut dw = target_w as i64 - new_w as i64;
        let mut dh = target_h as i64 - new_h as i64;
        if auto {
            let s = stride.max(1) as i64;
            dw = dw.rem_euclid(s);
            dh = dh.rem_euclid(s);
        }
        let (dw, dh) = (dw as f64 / 2.0, dh as f64 / 2.0);
        let pad_top = round_half_even(dh - 0.1).max(0) as u32;
        let pad_bottom = round_half_even(dh + 0.1).max(0) as u32;
        let pad_left = round_half_even(dw - 0.1).max(0) as u32;
        let pad_right = round_half_even(dw + 0.1).max(0) as u32;
        Letterbox {
            orig_w,
            orig_h,
            input_w: new_w + pad_left + pad_right,
            input_h: new_h + pad_top + pad_bottom,
            new_w,
            new_h,
            pad_left,
            pad_top,
            pad_right,
            pad_bottom,
            ratio: r,
        }
    }
}

/// Reusable letterbox preprocessor producing the network input tensor (`[1,3,H,W]` float32, RGB/255).
#[derive(Default)]
pub struct Preprocessor {
    resizer: LinearResizer,
    resized: Vec<u8>,
    /// The CHW float tensor data of the last call.
    pub tensor: Vec<f32>,
}

impl std::fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessor").field("tensor_len", &self.tensor.len()).finish()
    }
}

impl Preprocessor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resize `img` to the letterbox content size; calls `f` with the resized pixels (same channel
    /// order as the input), their row stride in bytes, and the geometry.
    fn with_resized<R>(
        &mut self,
        img: &ImageView<'_>,
        lb: &Letterbox,
        f: impl FnOnce(&[u8], usize) -> R,
    ) -> Result<R, ModelError> {
        check_input(img, lb)?;
        if (lb.new_w, lb.new_h) == (img.width, img.height) {
            return Ok(f(img.data, img.stride));
        }
        let mut resized = std::mem::take(&mut self.resized);
        let r = self.resizer.resize(img, lb.new_w, lb.new_h, &mut resized).map(|()| f(&resized, lb.new_w as usize * 3));
        self.resized = resized;
        r
    }

    /// Letterbox `img` into [`Preprocessor::tensor`] (`3 x input_h x input_w`, RGB, `/255`).
    pub fn run(&mut self, img: &ImageView<'_>, lb: &Letterbox) -> Result<(), ModelError> {
        check_input(img, lb)?;
        let mut tensor = std::mem::take(&mut self.tensor);
        tensor.resize(3 * lb.input_w as usize * lb.input_h as usize, 0.0);
        let res = self.run_into(img, lb, &mut tensor);
        self.tensor = tensor;
        res
    }

    /// Letterbox `img` into `tensor` (exactly `3 x input_h x input_w` values, RGB, `/255`), e.g. one
    /// image's slot of a batch tensor.
    pub fn run_into(&mut self, img: &ImageView<'_>, lb: &Letterbox, tensor: &mut [f32]) -> Result<(), ModelError> {
        check_input(img, lb)?;
        let (w, h) = (lb.input_w as usize, lb.input_h as usize);
        let plane = w * h;
        if tensor.len() != 3 * plane {
            return Err(ModelError::Preprocess(format!(
                "tensor slot has {} values, the {w}x{h} input needs {}",
                tensor.len(),
                3 * plane
            )));
        }
        let lut = lut();
        let pad = lut[114];
        // channel index in the source pixel for output planes R, G, B
        let order: [usize; 3] = match img.format {
            PixelFormat::Rgb8 => [0, 1, 2],
            PixelFormat::Bgr8 => [2, 1, 0],
        };
        self.with_resized(img, lb, |src, step| {
            let (r_pl, rest) = tensor.split_at_mut(plane);
            let (g_pl, b_pl) = rest.split_at_mut(plane);
            for y in 0..h {
                let row = y * w;
                let inside_y = y >= lb.pad_top as usize && y < (lb.pad_top + lb.new_h) as usize;
                if !inside_y {
                    r_pl[row..row + w].fill(pad);
                    g_pl[row..row + w].fill(pad);
                    b_pl[row..row + w].fill(pad);
                    continue;
                }
                let (l, nw) = (lb.pad_left as usize, lb.new_w as usize);
                for pl in [&mut *r_pl, &mut *g_pl, &mut *b_pl] {
                    pl[row..row + l].fill(pad);
                    pl[row + l + nw..row + w].fill(pad);
                }
                let sy = y - lb.pad_top as usize;
                let srow = &src[sy * step..sy * step + nw * 3];
                let (rd, gd, bd) = (
                    &mut r_pl[row + l..row + l + nw],
                    &mut g_pl[row + l..row + l + nw],
                    &mut b_pl[row + l..row + l + nw],
                );
                for (x, px) in srow.chunks_exact(3).enumerate() {
                    rd[x] = lut[px[order[0]] as usize];
                    gd[x] = lut[px[order[1]] as usize];
                    bd[x] = lut[px[order[2]] as usize];
                }
            }
        })
    }

    /// The letterboxed image as packed 8-bit RGB (`input_w x input_h`), e.g. to compare with
    /// Ultralytics' network input.
    pub fn letterboxed_rgb8(&mut self, img: &ImageView<'_>, lb: &Letterbox) -> Result<Vec<u8>, ModelError> {
        check_input(img, lb)?;
        let (w, h) = (lb.input_w as usize, lb.input_h as usize);
        let mut out = vec![114u8; w * h * 3];
        let order: [usize; 3] = match img.format {
            PixelFormat::Rgb8 => [0, 1, 2],
            PixelFormat::Bgr8 => [2, 1, 0],
        };
        self.with_resized(img, lb, |src, step| {
            for sy in 0..lb.new_h as usize {
                let y = sy + lb.pad_top as usize;
                let srow = &src[sy * step..sy * step + lb.new_w as usize * 3];
                let drow = &mut out[(y * w + lb.pad_left as usize) * 3..];
                for (x, px) in srow.chunks_exact(3).enumerate() {
                    drow[x * 3] = px[order[0]];
                    drow[x * 3 + 1] = px[order[1]];
                    drow[x * 3 + 2] = px[order[2]];
                }
            }
        })?;
        Ok(out)
    }
}

/// The image buffer is consistent and the geometry was made for it (checked before any buffer is
/// sized from the geometry).
pub(crate) fn check_input(img: &ImageView<'_>, lb: &Letterbox) -> Result<(), ModelError> {
    check_view(img)?;
    if (lb.orig_w, lb.orig_h) != (img.width, img.height) {
        return Err(ModelError::Preprocess(format!(
            "letterbox was computed for {}x{} but the image is {}x{}",
            lb.orig_w, lb.orig_h, img.width, img.height
        )));
    }
    Ok(())
}

pub(crate) fn check_view(img: &ImageView<'_>) -> Result<(), ModelError> {
    if img.width == 0 || img.height == 0 {
        return Err(ModelError::Preprocess(format!("empty image ({}x{})", img.width, img.height)));
    }
    let row = img.width as usize * 3;
    let need = img.stride * (img.height as usize - 1) + row;
    if img.stride < row || img.data.len() < need {
        return Err(ModelError::Preprocess(format!(
            "image buffer too small: {}x{} with stride {} needs {} bytes, got {}",
            img.width,
            img.height,
            img.stride,
            need,
            img.data.len()
        )));
    }
    Ok(())
}

fn lut() -> &'static [f32; 256] {
    static LUT: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| std::array::from_fn(|i| i as f32 / 255.0f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_images_are_errors_not_panics() {
        let mut pre = Preprocessor::new();
        let empty = ImageView { width: 0, height: 0, stride: 0, format: PixelFormat::Rgb8, data: &[] };
        let lb = Letterbox::new(0, 0, 640, 640, false, 32);
        assert!(matches!(pre.run(&empty, &lb), Err(ModelError::Preprocess(_))));
        let data = vec![0u8; 10 * 10 * 3];
        let short = ImageView { width: 10, height: 11, stride: 30, format: PixelFormat::Rgb8, data: &data };
        let lb = Letterbox::new(10, 11, 64, 64, false, 32);
        assert!(matches!(pre.run(&short, &lb), Err(ModelError::Preprocess(_))));
        let ok = ImageView::packed(10, 10, PixelFormat::Rgb8, &data).unwrap();
        assert!(matches!(pre.run(&ok, &lb), Err(ModelError::Preprocess(_))), "geometry for another size");
        let lb = Letterbox::new(10, 10, 64, 64, false, 32);
        pre.run(&ok, &lb).unwrap();
        assert_eq!(pre.tensor.len(), 3 * 64 * 64);
    }

    #[test]
    fn banker_rounding() {
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(2.4), 2);
        assert_eq!(round_half_even(2.6), 3);
    }

    #[test]
    fn geometry_matches_recorded_cases() {
        // bus 810x1080 -> 640 square (values from the golden case.json)
        let lb = Letterbox::new(810, 1080, 640, 640, false, 32);
        assert_eq!(
            (lb.new_w, lb.new_h, lb.pad_left, lb.pad_right, lb.pad_top, lb.pad_bottom),
            (480, 640, 80, 80, 0, 0)
        );
        // zidane 1280x720 -> 640 square
        let lb = Letterbox::new(1280, 720, 640, 640, false, 32);
        assert_eq!((lb.new_w, lb.new_h, lb.pad_top, lb.pad_bottom), (640, 360, 140, 140));
        // dynamic: minimum rectangle, 360 -> 384 (pad 24 -> 12/12)
        let lb = Letterbox::new(1280, 720, 640, 640, true, 32);
        assert_eq!((lb.input_w, lb.input_h, lb.pad_top, lb.pad_bottom), (640, 384, 12, 12));
        // odd padding: extra pixel goes to the bottom/right
        let lb = Letterbox::new(100, 49, 64, 64, false, 32);
        assert_eq!(lb.new_h, 31);
        assert_eq!((lb.pad_top, lb.pad_bottom), (16, 17));
    }
}
