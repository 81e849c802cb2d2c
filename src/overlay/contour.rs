//! Mask outlines drawn without OpenCV's polyline rasteriser, pixel for pixel as
//! `imgproc::draw_contours(.., thickness, LINE_8)` draws them, for thicknesses 1 and 2.
//!
//! A contour from `find_contours(.., CHAIN_APPROX_SIMPLE)` is a closed chain of integer points
//! whose consecutive points differ along one of the 8 chain directions (horizontal, vertical or
//! diagonal). OpenCV draws each segment in one solid colour, so what is drawn is the union of
//! the segments' pixel sets, and that union does not depend on the order of the segments or on
//! the colour. The pixel set of a segment depends only on its direction and length (integer
//! end points, so the fixed-point arithmetic is translation invariant), and for these two
//! thicknesses it is the union of the pixel sets of its unit steps:
//!
//! * thickness 1 (`Line`, 8-connected Bresenham): the chain pixels themselves;
//! * thickness 2 (`ThickLine`: a filled rectangle of half-width 1 around the segment, plus a
//!   filled circle of radius 1 at each vertex): the 4-neighbourhood "plus" of every chain pixel,
//!   and for a diagonal step from `p` to `q` also the two corners of `p`'s and of `q`'s 3x3
//!   square that lie across the step (the rectangle's sides run at 45 degrees there).
//!
//! This is what OpenCV 4.6 draws, established by measurement, not by porting its code: the tests
//! (`overlay::draw::tests`) compare every unit step and segments of every direction up to
//! hundreds of pixels long, and whole random masks, against `draw_contours` byte for byte,
//! including outlines clipped by the image border. A segment that is not along a chain
//! direction (never produced by `find_contours`) makes [`ContourPainter::paint`] draw nothing
//! and report it, so the caller falls back to OpenCV.

use opencv::core::Point;

use crate::mask::PixelRect;

/// The thicknesses drawn here (other thicknesses go to OpenCV).
pub(super) fn supported(thickness: i32) -> bool {
    thickness == 1 || thickness == 2
}

/// Margin of the scratch canvas around the contour points' bounds: every drawn pixel lies
/// within one pixel (Chebyshev distance) of a chain pixel.
const PAD: i32 = 1;

/// Closed contours, stored one after another.
#[derive(Debug, Default)]
pub(super) struct Contours {
    points: Vec<Point>,
    ends: Vec<usize>,
}

impl Contours {
    pub(super) fn clear(&mut self) {
        self.points.clear();
        self.ends.clear();
    }

    /// Append a contour.
    pub(super) fn push(&mut self, contour: &[Point]) {
        self.points.extend_from_slice(contour);
        self.ends.push(self.points.len());
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &[Point]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(a, b)| &self.points[a..b])
    }
}

/// Paints outlines through a scratch canvas that it keeps between calls.
#[derive(Debug, Default)]
pub(super) struct ContourPainter {
    canvas: Vec<u8>,
}

impl ContourPainter {
    /// Draw the closed `contours` (points in image coordinates, all inside `bounds`) in `color`
    /// with `thickness` (see [`supported`]) onto the packed 3-byte pixels of `img`
    /// (`width` x `height`, rows `stride` bytes apart), clipped to the image.
    ///
    /// Returns `false`, having drawn nothing, when a contour has a point outside `bounds` or a
    /// segment that is not horizontal, vertical or diagonal.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn paint(
        &mut self,
        img: &mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        bounds: PixelRect,
        contours: &Contours,
        thickness: i32,
        color: [u8; 3],
    ) -> bool {
        debug_assert!(supported(thickness));
        if bounds.is_empty() {
            return true;
        }
        let (x0, y0) = (bounds.x as i32 - PAD, bounds.y as i32 - PAD);
        let cw = bounds.w as i32 + 2 * PAD;
        let ch = bounds.h as i32 + 2 * PAD;
        let inside = |p: &Point| {
            p.x >= bounds.x as i32
                && p.y >= bounds.y as i32
                && p.x < bounds.right() as i32
                && p.y < bounds.bottom() as i32
        };
        // Check everything before touching the canvas, so that a refusal draws nothing.
        for c in contours.iter() {
            if !c.iter().all(inside) {
                return false;
            }
            let mut prev = match c.last() {
                Some(&p) => p,
                None => continue,
            };
            for &p in c {
                let (dx, dy) = (p.x - prev.x, p.y - prev.y);
                if dx != 0 && dy != 0 && dx.abs() != dy.abs() {
                    return false;
                }
                prev = p;
            }
        }
        self.canvas.clear();
        self.canvas.resize((cw * ch) as usize, 0);
        let canvas = &mut self.canvas;
        let cw_u = cw as usize;
        // Index of image point (x, y) in the canvas.
        let at = |x: i32, y: i32| ((y - y0) * cw + (x - x0)) as usize;
        for c in contours.iter() {
            let Some(&last) = c.last() else { continue };
            if c.len() == 1 {
                // A one-point contour: a zero-length segment, drawn as the vertex alone.
                stamp(canvas, cw_u, at(last.x, last.y), thickness);
                continue;
            }
            let mut prev = last;
            for &p in c {
                let (dx, dy) = (p.x - prev.x, p.y - prev.y);
                let (sx, sy) = (dx.signum(), dy.signum());
                let n = dx.abs().max(dy.abs());
                let diagonal = sx != 0 && sy != 0;
                // Corners across a diagonal step: (1,-1) and (-1,1) for steps along x = y,
                // (1,1) and (-1,-1) for steps along x = -y.
                let corner = if sx == sy { cw - 1 } else { cw + 1 };
                let mut i = at(prev.x, prev.y) as isize;
                let step = (sy * cw + sx) as isize;
                stamp(canvas, cw_u, i as usize, thickness);
                for _ in 0..n {
                    if thickness == 2 && diagonal {
                        let k = i as usize;
                        canvas[k - corner as usize] = 1;
                        canvas[k + corner as usize] = 1;
                    }
                    i += step;
                    stamp(canvas, cw_u, i as usize, thickness);
                    if thickness == 2 && diagonal {
                        let k = i as usize;
                        canvas[k - corner as usize] = 1;
                        canvas[k + corner as usize] = 1;
                    }
                }
                prev = p;
            }
        }
        // Copy the canvas onto the image, clipped to it.
        let cx0 = (-x0).max(0);
        let cy0 = (-y0).max(0);
        let cx1 = cw.min(width as i32 - x0);
        let cy1 = ch.min(height as i32 - y0);
        for cy in cy0..cy1 {
            let row = &canvas[(cy * cw) as usize..((cy + 1) * cw) as usize];
            let off = (y0 + cy) as usize * stride;
            let mut cx = cx0;
            while cx < cx1 {
                // Skip 8 empty canvas bytes at a time.
                if cx + 8 <= cx1 {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&row[cx as usize..cx as usize + 8]);
                    if u64::from_ne_bytes(b) == 0 {
                        cx += 8;
                        continue;
                    }
                }
                if row[cx as usize] != 0 {
                    let p = off + (x0 + cx) as usize * 3;
                    img[p..p + 3].copy_from_slice(&color);
                }
                cx += 1;
            }
        }
        true
    }
}

/// Mark the pixels drawn around the chain pixel at canvas index `i`: itself, and for
/// thickness 2 its 4-neighbours.
#[inline]
fn stamp(canvas: &mut [u8], cw: usize, i: usize, thickness: i32) {
    canvas[i] = 1;
    if thickness == 2 {
        canvas[i - 1] = 1;
        canvas[i + 1] = 1;
        canvas[i - cw] = 1;
        canvas[i + cw] = 1;
    }
}
