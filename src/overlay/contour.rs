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
//! This is what OpenCV 4.6 draws, established by measurement, not by porting its drawing code:
//! the tests (`overlay::draw::tests`) compare every unit step and segments of every direction up
//! to 700 pixels long, random closed chains, and whole random masks, against `draw_contours`
//! byte for byte, including outlines clipped by the image border.
//!
//! The contours come from [`Tracer`], an outer border following that finds the same contours
//! as OpenCV's `find_contours(RETR_EXTERNAL, CHAIN_APPROX_NONE)` (tested point for point), so
//! OpenCV is not called at all for these thicknesses.

use opencv::core::Point;

use crate::mask::PixelRect;

/// The thicknesses drawn here (other thicknesses go to OpenCV).
pub(super) fn supported(thickness: i32) -> bool {
    thickness == 1 || thickness == 2
}

/// Margin around the contour points' bounds: every drawn pixel lies within one pixel (Chebyshev
/// distance) of a chain pixel.
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
    #[cfg(test)]
    pub(super) fn push(&mut self, contour: &[Point]) {
        self.points.extend_from_slice(contour);
        self.ends.push(self.points.len());
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &[Point]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(a, b)| &self.points[a..b])
    }
}

/// Paints outlines straight into the frame (clipped to the image near its border).
#[derive(Debug, Default)]
pub(super) struct ContourPainter {}

impl ContourPainter {
    /// Draw the closed `contours` (points in image coordinates, all inside `bounds`, every step
    /// along a chain direction, as [`Tracer`] gives them) in `color` with `thickness` (see
    /// [`supported`]) onto the packed 3-byte pixels of `img` (`width` x `height`, rows `stride`
    /// bytes apart), clipped to the image.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
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
    ) {
        debug_assert!(supported(thickness));
        if bounds.is_empty() {
            return;
        }
        let (x0, y0) = (bounds.x as i32 - PAD, bounds.y as i32 - PAD);
        let cw = bounds.w as i32 + 2 * PAD;
        let ch = bounds.h as i32 + 2 * PAD;
        debug_assert!(valid(contours, bounds), "contours outside their bounds or off the chain directions");
        let (w, h) = (width as i32, height as i32);
        let row = stride as isize;
        if x0 >= 0 && y0 >= 0 && x0 + cw <= w && y0 + ch <= h {
            // Everything drawn lies inside the image: no clipping (the same colour over and over
            // where stamps overlap).
            walk(contours, thickness, row, |i, _, _| img[i as usize..i as usize + 3].copy_from_slice(&color));
            return;
        }
        // Near the image border: skip the pixels outside the image.
        walk(contours, thickness, row, |i, x, y| {
            if (x as u32) < width && (y as u32) < height {
                img[i as usize..i as usize + 3].copy_from_slice(&color);
            }
        });
    }
}

/// Whether every point of `contours` lies in `bounds` and every step (the closing one too) runs
/// along a chain direction.
fn valid(contours: &Contours, bounds: PixelRect) -> bool {
    let inside = |p: &Point| {
        p.x >= bounds.x as i32 && p.y >= bounds.y as i32 && p.x < bounds.right() as i32 && p.y < bounds.bottom() as i32
    };
    contours.iter().all(|c| {
        let Some(&last) = c.last() else { return true };
        let mut prev = last;
        c.iter().all(|&p| {
            let (dx, dy) = (p.x - prev.x, p.y - prev.y);
            prev = p;
            inside(&p) && (dx == 0 || dy == 0 || dx.abs() == dy.abs())
        })
    })
}

/// Call `put(i, x, y)` for every pixel `(x, y)` drawn for `contours` with `thickness` (pixels
/// drawn twice may come twice), where `i = y * row + 3 * x` (the byte offset of the pixel in a
/// frame with rows `row` bytes apart; negative or past the frame for pixels outside it).
///
/// The same pixel set as stamping both ends of every unit step, with fewer puts: the first point
/// of a contour gets the whole stamp, and every unit step from `p` to `q` (whose stamp at `p` is
/// drawn by then, going round the chain in order) puts only what `q`'s stamp adds: `q` itself
/// for thickness 1; for thickness 2 the three pixels of `q`'s plus that are not in `p`'s (a
/// straight step: `q + d` and `q` plus and minus the perpendicular; a diagonal step: `q`, and `q`
/// moved on along x and along y), and across a diagonal step the corners at both ends.
#[inline(never)]
fn walk(contours: &Contours, thickness: i32, row: isize, mut put: impl FnMut(isize, i32, i32)) {
    const COL: isize = 3;
    let at = |x: i32, y: i32| y as isize * row + x as isize * COL;
    // The vertex itself and, for thickness 2, its 4-neighbours.
    #[inline(always)]
    fn stamp(i: isize, x: i32, y: i32, thickness: i32, row: isize, put: &mut impl FnMut(isize, i32, i32)) {
        put(i, x, y);
        if thickness == 2 {
            put(i - COL, x - 1, y);
            put(i + COL, x + 1, y);
            put(i - row, x, y - 1);
            put(i + row, x, y + 1);
        }
    }
    let off = |dx: i32, dy: i32| dy as isize * row + dx as isize * COL;
    for c in contours.iter() {
        let Some(&last) = c.last() else { continue };
        // The whole stamp at the first point (a one-point contour is a zero-length segment,
        // drawn as the vertex alone).
        stamp(at(last.x, last.y), last.x, last.y, thickness, row, &mut put);
        if c.len() == 1 {
            continue;
        }
        let mut prev = last;
        for &p in c {
            let (dx, dy) = (p.x - prev.x, p.y - prev.y);
            let (sx, sy) = (dx.signum(), dy.signum());
            let n = dx.abs().max(dy.abs());
            let (mut x, mut y) = (prev.x, prev.y);
            let mut i = at(x, y);
            let step = off(sx, sy);
            if thickness == 1 {
                for _ in 0..n {
                    i += step;
                    x += sx;
                    y += sy;
                    put(i, x, y);
                }
            } else if sx == 0 || sy == 0 {
                // Straight: the pixel ahead and the two beside `q`.
                let (px, py) = (sy.abs(), sx.abs());
                let (ahead, side) = (step, off(px, py));
                for _ in 0..n {
                    i += step;
                    x += sx;
                    y += sy;
                    put(i + ahead, x + sx, y + sy);
                    put(i + side, x + px, y + py);
                    put(i - side, x - px, y - py);
                }
            } else {
                // Diagonal: (1,-1) and (-1,1) corners for steps along x = y, (1,1) and (-1,-1)
                // for steps along x = -y, at both ends of every step.
                let (kx, ky) = (-(sx * sy), 1);
                let corner = off(kx, ky);
                let (along_x, along_y) = (off(sx, 0), off(0, sy));
                for _ in 0..n {
                    put(i - corner, x - kx, y - ky);
                    put(i + corner, x + kx, y + ky);
                    i += step;
                    x += sx;
                    y += sy;
                    put(i, x, y);
                    put(i + along_x, x + sx, y);
                    put(i + along_y, x, y + sy);
                    put(i - corner, x - kx, y - ky);
                    put(i + corner, x + kx, y + ky);
                }
            }
            prev = p;
        }
    }
}

/// Outer border following (Suzuki and Abe's algorithm, restricted to the outer borders of the
/// 8-connected components that lie in no hole of another component), tracing the same
/// contours, from the same start pixels in the same order and direction, as OpenCV's
/// `find_contours(.., RETR_EXTERNAL, CHAIN_APPROX_NONE)`. Keeps its label image between calls.
#[derive(Debug, Default)]
pub(super) struct Tracer {
    /// The mask with a zero frame: 0 background, 1 foreground not yet on a traced border,
    /// [`MARK`] and [`MARK_RIGHT`] traced border pixels (right neighbour foreground or
    /// background).
    img: Vec<u8>,
}

/// A traced border pixel whose right neighbour was not found to be background.
const MARK: u8 = 2;
/// A traced border pixel whose right neighbour was found to be background (negative as an
/// `i8`, as OpenCV marks it, so that the row scan can tell that it leaves the component there).
const MARK_RIGHT: u8 = 0x82;

impl Tracer {
    /// Append to `out` the outer contours of the non-zero pixels of `data` (`w` x `h`, row
    /// major), every border pixel of each, in image coordinates (pixel `(x, y)` of `data` is
    /// `(ox + x, oy + y)`).
    #[inline(never)]
    pub(super) fn trace_external(&mut self, data: &[u8], w: usize, h: usize, ox: i32, oy: i32, out: &mut Contours) {
        if w == 0 || h == 0 {
            return;
        }
        let (iw, ih) = (w + 2, h + 2);
        self.img.clear();
        self.img.resize(iw * ih, 0);
        for (src, dst) in data.chunks_exact(w).zip(self.img[iw + 1..].chunks_mut(iw)) {
            for (d, &s) in dst[..w].iter_mut().zip(src) {
                *d = u8::from(s != 0);
            }
        }
        let img = &mut self.img;
        // Neighbour offsets by chain code: E, NE, N, NW, W, SW, S, SE, twice over.
        let iw_i = iw as isize;
        let d8 = [1, 1 - iw_i, -iw_i, -1 - iw_i, -1, iw_i - 1, iw_i, iw_i + 1];
        let deltas: [isize; 16] = std::array::from_fn(|i| d8[i % 8]);
        let point = |i: usize| (ox + (i % iw) as i32 - 1, oy + (i / iw) as i32 - 1);
        for y in 1..ih - 1 {
            let row = y * iw;
            // The last traced border pixel met on this row (the frame column to begin with).
            let mut lnbd = row;
            let mut prev: u8 = 0;
            let mut x = 1;
            while x < iw {
                x = skip_equal(&img[row..row + iw], x, prev);
                if x >= iw {
                    break;
                }
                let p = img[row + x];
                // Only an outer border start (background then an untraced foreground pixel)
                // whose last border pixel to the left leaves its component (or is the frame)
                // starts a contour; hole borders and components inside holes are skipped.
                let start = prev == 0 && p == 1;
                if !start && p == 0 && (prev as i8) >= 1 && prev & 0xfe != 0 {
                    // entering a hole from a traced border pixel
                    lnbd = row + x - 1;
                }
                if start && (img[lnbd] as i8) <= 0 {
                    lnbd = row + x;
                    trace(img, &deltas, row + x, out, point);
                    x += 1;
                    prev = img[row + x - 1];
                    continue;
                }
                prev = p;
                if prev & 0xfe != 0 {
                    lnbd = row + x;
                }
                x += 1;
            }
        }
    }
}

/// The first index from `x` on where `row` differs from `v` (`row.len()` if none), comparing 8
/// bytes at a time.
#[inline]
fn skip_equal(row: &[u8], mut x: usize, v: u8) -> usize {
    let splat = u64::from_le_bytes([v; 8]);
    while x + 8 <= row.len() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&row[x..x + 8]);
        let diff = u64::from_le_bytes(b) ^ splat;
        if diff != 0 {
            return x + (diff.trailing_zeros() / 8) as usize;
        }
        x += 8;
    }
    while x < row.len() && row[x] == v {
        x += 1;
    }
    x
}

/// Follow the outer border that starts at `i0`, marking its pixels, and append it to `out`.
#[inline(never)]
fn trace(img: &mut [u8], deltas: &[isize; 16], i0: usize, out: &mut Contours, point: impl Fn(usize) -> (i32, i32)) {
    let at = |i: usize, s: usize| (i as isize + deltas[s]) as usize;
    let start = out.points.len();
    // Look for a neighbour clockwise from the west (which is background).
    let mut s = 4usize;
    let s_first_end = 4usize;
    let mut i1;
    loop {
        s = (s + 7) & 7;
        i1 = at(i0, s);
        if img[i1] != 0 || s == s_first_end {
            break;
        }
    }
    if s == s_first_end && img[i1] == 0 {
        // a single pixel
        img[i0] = MARK_RIGHT;
        let (x, y) = point(i0);
        out.points.push(Point::new(x, y));
    } else {
        let mut i3 = i0;
        loop {
            let s_end = s;
            let mut i4;
            loop {
                s += 1;
                i4 = at(i3, s);
                if img[i4] != 0 {
                    break;
                }
            }
            s &= 7;
            // The search went past the east neighbour (background): the border leaves the
            // component to the right of i3.
            if ((s as isize - 1) as usize) < s_end {
                img[i3] = MARK_RIGHT;
            } else if img[i3] == 1 {
                img[i3] = MARK;
            }
            let (x, y) = point(i3);
            out.points.push(Point::new(x, y));
            if i4 == i0 && i3 == i1 {
                break;
            }
            i3 = i4;
            s = (s + 4) & 7;
        }
    }
    debug_assert!(out.points.len() > start);
    out.ends.push(out.points.len());
}
