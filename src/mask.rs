//! Binary instance masks in compact form.
//!
//! A [`Mask`] covers an image of `img_w x img_h` pixels but stores only the pixels inside a
//! rectangle (its region of interest), and may defer even that: a model can hand out a lazy
//! [`MaskSource`] (for FastSAM: the box plus the proto-resolution logits crop) which is rendered
//! at most once, on first use. Full-frame pixels are produced only on request
//! ([`Mask::to_bitmap`], [`Mask::to_rle`]).
//!
//! RLE follows COCO's *uncompressed* convention: column-major order (index = `x*h + y`), runs
//! alternate starting with zeros (the first count may be 0), `size = [h, w]`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

/// An integer pixel rectangle: columns `x..x+w`, rows `y..y+h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl PixelRect {
    pub fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Self { x, y, w, h }
    }
    pub fn area(&self) -> u64 {
        self.w as u64 * self.h as u64
    }
    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }
    pub fn right(&self) -> u32 {
        self.x + self.w
    }
    pub fn bottom(&self) -> u32 {
        self.y + self.h
    }
    /// Intersection, or `None` when the rectangles do not overlap.
    pub fn intersect(&self, o: &PixelRect) -> Option<PixelRect> {
        let x0 = self.x.max(o.x);
        let y0 = self.y.max(o.y);
        let x1 = self.right().min(o.right());
        let y1 = self.bottom().min(o.bottom());
        (x1 > x0 && y1 > y0).then(|| PixelRect::new(x0, y0, x1 - x0, y1 - y0))
    }
    /// The pixel rectangle covered by a continuous box, clamped to `w x h`
    /// (pixel `i` is covered when `x1 <= i < x2`, as Ultralytics crops masks).
    pub fn from_box_clamped(x1: f32, y1: f32, x2: f32, y2: f32, w: u32, h: u32) -> PixelRect {
        let cx0 = x1.max(0.0).ceil().min(w as f32) as u32;
        let cy0 = y1.max(0.0).ceil().min(h as f32) as u32;
        let cx1 = x2.max(0.0).ceil().min(w as f32) as u32;
        let cy1 = y2.max(0.0).ceil().min(h as f32) as u32;
        PixelRect::new(cx0, cy0, cx1.saturating_sub(cx0), cy1.saturating_sub(cy0))
    }
}

/// A full-frame binary bitmap, row-major, one byte per pixel (0 or 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Bitmap {
    pub fn zeros(width: u32, height: u32) -> Self {
        Self { width, height, data: vec![0; width as usize * height as usize] }
    }
    #[inline]
    pub fn get(&self, x: u32, y: u32) -> bool {
        self.data[y as usize * self.width as usize + x as usize] != 0
    }
    pub fn area(&self) -> u64 {
        self.data.iter().filter(|&&v| v != 0).count() as u64
    }
    /// Intersection over union with another bitmap of the same size (0 when both are empty).
    pub fn iou(&self, other: &Bitmap) -> f64 {
        assert_eq!((self.width, self.height), (other.width, other.height), "bitmap sizes differ");
        let (mut inter, mut uni) = (0u64, 0u64);
        for (&a, &b) in self.data.iter().zip(&other.data) {
            let (a, b) = (a != 0, b != 0);
            inter += (a && b) as u64;
            uni += (a || b) as u64;
        }
        if uni == 0 { 0.0 } else { inter as f64 / uni as f64 }
    }
    pub fn to_rle(&self) -> Rle {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut enc = RleEncoder::new();
        for x in 0..w {
            for y in 0..h {
                enc.push(self.data[y * w + x] != 0, 1);
            }
        }
        enc.finish(self.height, self.width)
    }
}

/// A binary mask stored only inside `rect` of an `img_w x img_h` image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoiBitmap {
    pub img_w: u32,
    pub img_h: u32,
    pub rect: PixelRect,
    /// `rect.w * rect.h` bytes, row-major inside `rect`, 0 or 1.
    pub data: Vec<u8>,
}

impl RoiBitmap {
    pub fn empty(img_w: u32, img_h: u32) -> Self {
        Self { img_w, img_h, rect: PixelRect::default(), data: Vec::new() }
    }
    /// Value at image coordinates (false outside the ROI).
    #[inline]
    pub fn get(&self, x: u32, y: u32) -> bool {
        let r = &self.rect;
        if x < r.x || y < r.y || x >= r.right() || y >= r.bottom() {
            return false;
        }
        self.data[((y - r.y) * r.w + (x - r.x)) as usize] != 0
    }
    pub fn area(&self) -> u64 {
        self.data.iter().filter(|&&v| v != 0).count() as u64
    }
    /// Tight bounding rectangle of the set pixels (`None` when empty).
    pub fn tight_rect(&self) -> Option<PixelRect> {
        let r = self.rect;
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
        for yy in 0..r.h {
            let row = &self.data[(yy * r.w) as usize..((yy + 1) * r.w) as usize];
            if let Some(first) = row.iter().position(|&v| v != 0) {
                let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
                x0 = x0.min(first as u32);
                x1 = x1.max(last as u32 + 1);
                y0 = y0.min(yy);
                y1 = yy + 1;
            }
        }
        (x0 != u32::MAX).then(|| PixelRect::new(r.x + x0, r.y + y0, x1 - x0, y1 - y0))
    }
    /// Intersection over union, computed only where the two ROIs overlap.
    pub fn iou(&self, other: &RoiBitmap) -> f64 {
        let inter = self.intersection_area(other, 0, 0);
        let uni = self.area() + other.area() - inter;
        if uni == 0 { 0.0 } else { inter as f64 / uni as f64 }
    }
    /// Number of set pixels shared with `other` shifted by `(dx, dy)` pixels.
    pub fn intersection_area(&self, other: &RoiBitmap, dx: i32, dy: i32) -> u64 {
        let (a, b) = (&self.rect, &other.rect);
        let bx0 = b.x as i64 + dx as i64;
        let by0 = b.y as i64 + dy as i64;
        let x0 = (a.x as i64).max(bx0);
        let y0 = (a.y as i64).max(by0);
        let x1 = (a.right() as i64).min(bx0 + b.w as i64);
        let y1 = (a.bottom() as i64).min(by0 + b.h as i64);
        if x1 <= x0 || y1 <= y0 {
            return 0;
        }
        let mut n = 0u64;
        for y in y0..y1 {
            let ra = ((y - a.y as i64) * a.w as i64) as usize;
            let rb = ((y - by0) * b.w as i64) as usize;
            let sa = &self.data[ra + (x0 - a.x as i64) as usize..ra + (x1 - a.x as i64) as usize];
            let sb = &other.data[rb + (x0 - bx0) as usize..rb + (x1 - bx0) as usize];
            // Branch-free, so that it vectorises (u32 per row: a row is far below 2^32 pixels).
            n += sa.iter().zip(sb).map(|(&p, &q)| ((p != 0) & (q != 0)) as u32).sum::<u32>() as u64;
        }
        n
    }
    /// The full-frame bitmap at the image's own size.
    pub fn to_full(&self) -> Bitmap {
        let mut bm = Bitmap::zeros(self.img_w, self.img_h);
        let r = self.rect;
        for yy in 0..r.h {
            let src = &self.data[(yy * r.w) as usize..((yy + 1) * r.w) as usize];
            let off = ((r.y + yy) * self.img_w + r.x) as usize;
            bm.data[off..off + r.w as usize].copy_from_slice(src);
        }
        bm
    }
    /// COCO uncompressed RLE at the image's own size: the rows packed as bits ([`RowBits`]), then
    /// [`RowBits::to_rle`].
    pub fn to_rle(&self) -> Rle {
        RowBits::from_roi(self).to_rle(self.img_w, self.img_h)
    }
}

/// Bit `i` set when byte `i` (little-endian) of `x` is non-zero.
#[inline]
fn nonzero_bits8(x: u64) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    let t = ((x & LO7).wrapping_add(LO7) | x) & HI;
    // Gather the 8 high bits (one per byte) into bits 56..64, then down to 0..8.
    (t >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Bit `i` set when `b[i]` is non-zero, for up to 64 bytes.
#[inline]
fn nonzero_bits64(b: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Ok(b) = <&[u8; 64]>::try_from(b) {
        use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_setzero_si128};
        let mut out = 0u64;
        for (i, q) in b.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is part of the x86_64 baseline; `q` holds 16 readable bytes and the
            // load is unaligned.
            let zero_lanes = unsafe {
                let v = _mm_loadu_si128(q.as_ptr().cast::<__m128i>());
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128())) as u32
            };
            out |= ((!zero_lanes & 0xffff) as u64) << (16 * i);
        }
        return out;
    }
    let mut out = 0u64;
    for (i, c) in b.chunks(8).enumerate() {
        out |= nonzero_bits8(load8(c)) << (8 * i);
    }
    out
}

/// Up to 8 bytes as a little-endian `u64` (missing bytes zero).
#[inline]
fn load8(b: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(b) {
        Ok(a) => u64::from_le_bytes(a),
        Err(_) => {
            let mut a = [0u8; 8];
            a[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(a)
        }
    }
}

impl RowBits {
    /// COCO uncompressed RLE of this mask in an `img_w x img_h` image (which must contain
    /// [`RowBits::rect`]), in O(img_w + ROI area / 64 + runs) word operations.
    ///
    /// The ROI's rows are cut into blocks of 64 x 64 pixels, each transposed as a 64 x 64 bit
    /// matrix (all-zero and all-one blocks skipped), so that every column of a block is one word
    /// per 64 rows; the runs of a column follow from where its bits change (a trailing-zeros scan).
    pub fn to_rle(&self, img_w: u32, img_h: u32) -> Rle {
        let mut counts = Vec::new();
        let mut enc = RunEncoder::new(&mut counts);
        let r = self.rect;
        if r.is_empty() || self.nw == 0 {
            enc.zero_columns(img_w, img_h);
            enc.end();
            return Rle { size: [img_h, img_w], counts };
        }
        enc.zero_columns(r.x, img_h);
        let (rh, nw) = (r.h as usize, self.nw as usize);
        let blocks = rh.div_ceil(64);
        let below = img_h - r.bottom();
        // Column words of one word column: block j's 64 words at 64 * j, word i = column i.
        let mut cols = vec![0u64; blocks * 64];
        for k in 0..nw {
            for (j, block) in cols.chunks_exact_mut(64).enumerate() {
                let rows = (rh - 64 * j).min(64);
                let (mut any, mut all) = (0u64, u64::MAX);
                for (i, d) in block.iter_mut().enumerate() {
                    let v = if i < rows { self.words[(64 * j + i) * nw + k] } else { 0 };
                    *d = v;
                    any |= v;
                    all &= v;
                }
                if any == 0 || all == u64::MAX {
                    // already its own transpose (all zero, or all one over 64 rows)
                    continue;
                }
                if let Ok(b) = <&mut [u64; 64]>::try_from(block) {
                    transpose64(b);
                }
            }
            let c0 = (self.w0 + k as u32) * 64;
            let (lo, hi) = (r.x.max(c0) - c0, r.right().min(c0 + 64) - c0);
            for i in lo as usize..hi as usize {
                enc.zeros(r.y);
                for j in 0..blocks {
                    enc.bits(cols[64 * j + i], (rh - 64 * j).min(64) as u32);
                }
                enc.zeros(below);
            }
        }
        enc.zero_columns(img_w - r.right(), img_h);
        enc.end();
        Rle { size: [img_h, img_w], counts }
    }
}

/// Transpose a 64 x 64 bit matrix in place: bit `c` of word `r` <-> bit `r` of word `c`
/// (swaps of ever smaller blocks, as in Hacker's Delight 7-3).
#[inline]
fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32usize;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        let mut k = 0usize;
        while k < 64 {
            // the high `j` bits of each 2j-bit group of row k <-> the low ones of row k + j
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k] ^= t << j;
            a[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// A mask's set pixels as rows of bits aligned to the image's 64-pixel columns (word `k` of a
/// row holds columns `64k..64k+64`, bit `i` column `64k+i`), with the pixel count.
///
/// Two masks of the same image line up word for word, so their intersection is an AND and a
/// popcount over the rows and words both cover: exactly the pixel count that comparing the byte
/// ROIs gives, at 1/64 of the operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowBits {
    /// The ROI the bits come from (no bit is set outside it).
    rect: PixelRect,
    /// First word column and words per row.
    w0: u32,
    nw: u32,
    /// `rect.h` rows of `nw` words.
    words: Vec<u64>,
    area: u64,
}

impl RowBits {
    /// Pack a ROI mask (any non-zero byte is set).
    pub fn from_roi(roi: &RoiBitmap) -> RowBits {
        let r = roi.rect;
        if r.is_empty() {
            return RowBits::default();
        }
        let w = r.w as usize;
        let mut b = RowBits::builder(r);
        // Each row packed relative to the ROI's left edge, then shifted onto the image's words.
        let mut rel = vec![0u64; w.div_ceil(64)];
        for src in roi.data.chunks_exact(w) {
            for (d, c) in rel.iter_mut().zip(src.chunks(64)) {
                *d = nonzero_bits64(c);
            }
            b.push_row(&rel);
        }
        b.finish()
    }

    /// A builder that takes the rows of a mask inside `rect` one by one, as bits relative to the
    /// ROI's left edge (so that a renderer can pack its rows while they are hot).
    pub fn builder(rect: PixelRect) -> RowBitsBuilder {
        if rect.is_empty() {
            return RowBitsBuilder { bits: RowBits::default(), base: 0, row: 0 };
        }
        let w0 = rect.x / 64;
        let nw = (rect.right() - 1) / 64 + 1 - w0;
        let words = vec![0u64; nw as usize * rect.h as usize];
        RowBitsBuilder { bits: RowBits { rect, w0, nw, words, area: 0 }, base: rect.x - w0 * 64, row: 0 }
    }

    /// Number of set pixels.
    pub fn area(&self) -> u64 {
        self.area
    }

    /// The rectangle the set pixels lie in (the source ROI's).
    pub fn rect(&self) -> PixelRect {
        self.rect
    }

    /// Word `k` (image columns `64k..64k+64`) of image row `y`: 0 outside the stored rows and
    /// words.
    #[inline]
    pub fn word(&self, y: i64, k: i64) -> u64 {
        let (r, w0, nw) = (self.rect, self.w0 as i64, self.nw as i64);
        if y < r.y as i64 || y >= r.bottom() as i64 || k < w0 || k >= w0 + nw {
            return 0;
        }
        self.words[((y - r.y as i64) * nw + (k - w0)) as usize]
    }

    /// The image word columns `w0..w0 + nw` the rows are stored over.
    pub fn word_span(&self) -> (u32, u32) {
        (self.w0, self.w0 + self.nw)
    }

    /// Number of set pixels shared with `other` (a mask of the same image).
    pub fn intersection(&self, other: &RowBits) -> u64 {
        let (a, b) = (self, other);
        if a.area == 0 || b.area == 0 {
            return 0;
        }
        let y0 = a.rect.y.max(b.rect.y);
        let y1 = a.rect.bottom().min(b.rect.bottom());
        let k0 = a.w0.max(b.w0);
        let k1 = (a.w0 + a.nw).min(b.w0 + b.nw);
        if y1 <= y0 || k1 <= k0 {
            return 0;
        }
        let n = (k1 - k0) as usize;
        let (anw, bnw) = (a.nw as usize, b.nw as usize);
        let mut ia = (y0 - a.rect.y) as usize * anw + (k0 - a.w0) as usize;
        let mut ib = (y0 - b.rect.y) as usize * bnw + (k0 - b.w0) as usize;
        let mut total = 0u64;
        for _ in y0..y1 {
            let (ra, rb) = (&a.words[ia..ia + n], &b.words[ib..ib + n]);
            total += ra.iter().zip(rb).map(|(p, q)| (p & q).count_ones() as u64).sum::<u64>();
            ia += anw;
            ib += bnw;
        }
        total
    }
}

/// Builds a [`RowBits`] row by row (see [`RowBits::builder`]).
#[derive(Debug)]
pub struct RowBitsBuilder {
    bits: RowBits,
    /// Bit offset of the ROI's left edge in its first word.
    base: u32,
    /// Rows pushed so far.
    row: usize,
}

impl RowBitsBuilder {
    /// Append the next row: bit `i` of `rel` (word `i / 64`, bit `i % 64`) is column `rect.x + i`.
    /// `rel` holds `rect.w.div_ceil(64)` words, with no bit set at or beyond `rect.w`. Rows beyond
    /// `rect.h` are ignored.
    pub fn push_row(&mut self, rel: &[u64]) {
        let nw = self.bits.nw as usize;
        if nw == 0 || self.row >= self.bits.rect.h as usize {
            return;
        }
        let row = &mut self.bits.words[self.row * nw..(self.row + 1) * nw];
        let base = self.base;
        let mut area = 0u64;
        if base == 0 {
            for (d, &v) in row.iter_mut().zip(rel) {
                *d = v;
                area += v.count_ones() as u64;
            }
        } else {
            let mut carry = 0u64;
            for (i, d) in row.iter_mut().enumerate() {
                let v = rel.get(i).copied().unwrap_or(0);
                area += v.count_ones() as u64;
                *d = (v << base) | carry;
                carry = v >> (64 - base);
            }
        }
        self.bits.area += area;
        self.row += 1;
    }

    /// The packed mask (rows not pushed stay empty).
    pub fn finish(self) -> RowBits {
        self.bits
    }
}

/// COCO-style uncompressed RLE (column-major, runs start with zeros).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rle {
    /// `[height, width]`.
    pub size: [u32; 2],
    pub counts: Vec<u32>,
}

/// Errors decoding an RLE mask.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid RLE: counts sum to {sum}, but size {h}x{w} needs {expected}")]
pub struct RleError {
    pub sum: u64,
    pub h: u32,
    pub w: u32,
    pub expected: u64,
}

impl Rle {
    pub fn height(&self) -> u32 {
        self.size[0]
    }
    pub fn width(&self) -> u32 {
        self.size[1]
    }
    pub fn area(&self) -> u64 {
        self.counts.iter().skip(1).step_by(2).map(|&c| c as u64).sum()
    }
    fn check(&self) -> Result<(), RleError> {
        let sum: u64 = self.counts.iter().map(|&c| c as u64).sum();
        let expected = self.size[0] as u64 * self.size[1] as u64;
        if sum != expected {
            return Err(RleError { sum, h: self.size[0], w: self.size[1], expected });
        }
        Ok(())
    }
    pub fn to_bitmap(&self) -> Result<Bitmap, RleError> {
        self.check()?;
        let (h, w) = (self.size[0] as usize, self.size[1] as usize);
        let mut bm = Bitmap::zeros(w as u32, h as u32);
        let mut idx = 0usize;
        for (i, &c) in self.counts.iter().enumerate() {
            if i % 2 == 1 {
                for k in idx..idx + c as usize {
                    let (x, y) = (k / h, k % h);
                    bm.data[y * w + x] = 1;
                }
            }
            idx += c as usize;
        }
        Ok(bm)
    }
    /// Decode into a [`RoiBitmap`] cropped to the set pixels.
    pub fn to_roi(&self) -> Result<RoiBitmap, RleError> {
        let full = self.to_bitmap()?;
        Ok(RoiBitmap::from_full(&full))
    }
    /// IoU of two RLEs of the same size, computed on the runs.
    pub fn iou(&self, other: &Rle) -> Result<f64, RleError> {
        self.check()?;
        other.check()?;
        let ia = runs(&self.counts);
        let ib = runs(&other.counts);
        let inter = intersect_runs(&ia, &ib);
        let uni = self.area() + other.area() - inter;
        Ok(if uni == 0 { 0.0 } else { inter as f64 / uni as f64 })
    }
}

fn runs(counts: &[u32]) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(counts.len() / 2);
    let mut pos = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if i % 2 == 1 && c > 0 {
            out.push((pos, pos + c as u64));
        }
        pos += c as u64;
    }
    out
}

fn intersect_runs(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if hi > lo {
            n += hi - lo;
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    n
}

impl RoiBitmap {
    /// Crop a full-frame bitmap to the tight rectangle of its set pixels.
    pub fn from_full(bm: &Bitmap) -> RoiBitmap {
        let whole = RoiBitmap {
            img_w: bm.width,
            img_h: bm.height,
            rect: PixelRect::new(0, 0, bm.width, bm.height),
            data: bm.data.clone(),
        };
        match whole.tight_rect() {
            None => RoiBitmap::empty(bm.width, bm.height),
            Some(r) => {
                let mut data = Vec::with_capacity(r.area() as usize);
                for y in r.y..r.bottom() {
                    let off = (y * bm.width) as usize;
                    data.extend_from_slice(&bm.data[off + r.x as usize..off + r.right() as usize]);
                }
                RoiBitmap { img_w: bm.width, img_h: bm.height, rect: r, data }
            }
        }
    }
}

struct RleEncoder {
    counts: Vec<u32>,
    cur: bool,
    run: u32,
}

impl RleEncoder {
    fn new() -> Self {
        Self { counts: Vec::new(), cur: false, run: 0 }
    }
    #[inline]
    fn push(&mut self, v: bool, n: u32) {
        if n == 0 {
            return;
        }
        if v != self.cur {
            self.counts.push(self.run);
            self.cur = v;
            self.run = 0;
        }
        self.run += n;
    }
    fn finish(mut self, h: u32, w: u32) -> Rle {
        self.counts.push(self.run);
        Rle { size: [h, w], counts: self.counts }
    }
}

/// Builds COCO counts from pixels in column-major order, zero runs or up to 64 pixels at a time
/// (the same counts as [`RleEncoder`]).
struct RunEncoder<'a> {
    counts: &'a mut Vec<u32>,
    cur: bool,
    run: u32,
}

impl<'a> RunEncoder<'a> {
    /// Start at the image's first pixel (`counts` cleared).
    fn new(counts: &'a mut Vec<u32>) -> Self {
        counts.clear();
        Self { counts, cur: false, run: 0 }
    }
    /// The next `n` pixels are zeros.
    #[inline]
    fn zeros(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        if self.cur {
            self.counts.push(self.run);
            self.cur = false;
            self.run = 0;
        }
        self.run += n;
    }
    /// `n` columns of `h` zeros.
    fn zero_columns(&mut self, n: u32, h: u32) {
        for _ in 0..n {
            self.zeros(h);
        }
    }
    /// The next `n` pixels (1..=64), pixel `i` = bit `i` of `c` (no bit set at `n` or above).
    #[inline]
    fn bits(&mut self, c: u64, n: u32) {
        // bit p set where pixel p differs from the one before (pixel -1: the current value)
        let mut t = c ^ ((c << 1) | self.cur as u64);
        if n < 64 {
            t &= (1u64 << n) - 1;
        }
        let mut last = 0u32;
        while t != 0 {
            let p = t.trailing_zeros();
            self.counts.push(self.run + (p - last));
            self.run = 0;
            last = p;
            t &= t - 1;
        }
        self.run += n - last;
        self.cur = (c >> (n - 1)) & 1 != 0;
    }
    /// Close the last run.
    fn end(self) {
        self.counts.push(self.run);
    }
}

/// A deferred mask: renders its pixels (at the original image size) on demand.
pub trait MaskSource: Send + Sync + fmt::Debug {
    /// `(width, height)` of the image the mask belongs to.
    fn image_size(&self) -> (u32, u32);
    /// Render the mask at the original image size, inside a rectangle that bounds it.
    fn render_roi(&self) -> RoiBitmap;
    /// [`MaskSource::render_roi`] together with the same pixels packed as [`RowBits`], for a
    /// source that packs them while rendering (`None`: [`Mask`] packs them when asked).
    fn render_with_bits(&self) -> (RoiBitmap, Option<RowBits>) {
        (self.render_roi(), None)
    }
    /// Bounds on the rendered pixels that cost less than rendering them (`None`: no such bounds).
    fn coarse(&self) -> Option<&dyn CoarseMask> {
        None
    }
}

/// Bounds on a deferred mask's pixel counts, cheaper than rendering it: for deciding pair tests
/// (such as duplicate suppression's IoU and containment) without the pixels where the bounds
/// already settle them. Every bound must hold for the pixels [`MaskSource::render_roi`] gives.
pub trait CoarseMask: Send + Sync + fmt::Debug {
    /// `(lo, hi)` with `lo <=` the rendered mask's set pixel count `<= hi`.
    fn area_bounds(&self) -> (u64, u64);
    /// `(lo, hi)` bounds of the set pixels the two rendered masks share, or `None` when `other`
    /// is not comparable (another kind of source, or another frame).
    fn intersection_bounds(&self, other: &dyn CoarseMask) -> Option<(u64, u64)>;
    /// For [`CoarseMask::intersection_bounds`] to recognise its own kind.
    fn as_any(&self) -> &dyn std::any::Any;
}

struct MaskInner {
    img_w: u32,
    img_h: u32,
    source: Option<Box<dyn MaskSource>>,
    roi: OnceLock<RoiBitmap>,
    bits: OnceLock<RowBits>,
}

/// A cheaply clonable, lazily rendered binary mask at the original image size.
#[derive(Clone)]
pub struct Mask(Arc<MaskInner>);

impl fmt::Debug for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mask")
            .field("size", &(self.0.img_w, self.0.img_h))
            .field("rendered", &self.0.roi.get().is_some())
            .finish()
    }
}

impl Mask {
    /// A mask whose pixels are already known.
    pub fn from_roi(roi: RoiBitmap) -> Self {
        let (img_w, img_h) = (roi.img_w, roi.img_h);
        let cell = OnceLock::new();
        let _ = cell.set(roi);
        Mask(Arc::new(MaskInner { img_w, img_h, source: None, roi: cell, bits: OnceLock::new() }))
    }
    /// A mask rendered on first use.
    pub fn lazy(source: Box<dyn MaskSource>) -> Self {
        let (img_w, img_h) = source.image_size();
        Mask(Arc::new(MaskInner { img_w, img_h, source: Some(source), roi: OnceLock::new(), bits: OnceLock::new() }))
    }
    pub fn from_rle(rle: &Rle) -> Result<Self, RleError> {
        Ok(Self::from_roi(rle.to_roi()?))
    }
    /// `(width, height)` of the image.
    pub fn image_size(&self) -> (u32, u32) {
        (self.0.img_w, self.0.img_h)
    }
    /// Whether the pixels have been rendered (always true for a mask made from pixels).
    pub fn is_rendered(&self) -> bool {
        self.0.roi.get().is_some()
    }
    /// `(lo, hi)` with `lo <= area() <= hi`: from the source's [`CoarseMask`] while the mask is
    /// not rendered (no rendering), else exact (`lo == hi`).
    pub fn area_bounds(&self) -> (u64, u64) {
        if !self.is_rendered()
            && let Some(c) = self.0.source.as_ref().and_then(|s| s.coarse())
        {
            return c.area_bounds();
        }
        let a = self.area();
        (a, a)
    }
    /// `(lo, hi)` bounds of the number of set pixels shared with `other`, from the two sources'
    /// [`CoarseMask`]s, without rendering either; `None` when they have none that compare (then
    /// count them exactly with [`RowBits::intersection`]) or when both are rendered already
    /// (the exact count is cheap then).
    pub fn intersection_bounds(&self, other: &Mask) -> Option<(u64, u64)> {
        if self.is_rendered() && other.is_rendered() {
            return None;
        }
        let a = self.0.source.as_ref()?.coarse()?;
        let b = other.0.source.as_ref()?.coarse()?;
        a.intersection_bounds(b)
    }
    /// The pixels, rendered once and cached.
    pub fn roi(&self) -> &RoiBitmap {
        self.0.roi.get_or_init(|| match &self.0.source {
            Some(s) => {
                let (roi, bits) = s.render_with_bits();
                if let Some(bits) = bits {
                    // The cell is still empty: `bits` renders through `roi` first.
                    let _ = self.0.bits.set(bits);
                }
                roi
            }
            None => RoiBitmap::empty(self.0.img_w, self.0.img_h),
        })
    }
    /// The pixels packed as bits ([`RowBits`]), built once from [`Mask::roi`] (or while
    /// rendering it, when the source packs them) and cached.
    pub fn bits(&self) -> &RowBits {
        // Render first, outside the `bits` cell's initialisation: rendering may fill the cell.
        let roi = self.roi();
        self.0.bits.get_or_init(|| RowBits::from_roi(roi))
    }
    /// Number of set pixels (from the cached [`RowBits`]).
    pub fn area(&self) -> u64 {
        self.bits().area()
    }
    pub fn to_rle(&self) -> Rle {
        self.roi().to_rle()
    }
    /// Intersection over union (0 when both are empty), on the cached [`RowBits`]: the same
    /// pixel counts, hence the same value, as [`RoiBitmap::iou`].
    pub fn iou(&self, other: &Mask) -> f64 {
        let (a, b) = (self.bits(), other.bits());
        let inter = a.intersection(b);
        let uni = a.area() + b.area() - inter;
        if uni == 0 { 0.0 } else { inter as f64 / uni as f64 }
    }
    /// A full-frame bitmap at `width x height` (nearest-neighbour sampling at pixel centres).
    pub fn to_bitmap(&self, width: u32, height: u32) -> Bitmap {
        let roi = self.roi();
        if (width, height) == (self.0.img_w, self.0.img_h) {
            return roi.to_full();
        }
        let mut bm = Bitmap::zeros(width, height);
        let sx = self.0.img_w as f64 / width.max(1) as f64;
        let sy = self.0.img_h as f64 / height.max(1) as f64;
        for y in 0..height {
            let oy = (((y as f64 + 0.5) * sy) as u32).min(self.0.img_h.saturating_sub(1));
            for x in 0..width {
                let ox = (((x as f64 + 0.5) * sx) as u32).min(self.0.img_w.saturating_sub(1));
                if roi.get(ox, oy) {
                    bm.data[(y * width + x) as usize] = 1;
                }
            }
        }
        bm
    }
}

impl Serialize for Mask {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_rle().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bitmap {
        // 5 wide, 4 high; an L shape.
        let mut bm = Bitmap::zeros(5, 4);
        for (x, y) in [(1, 1), (1, 2), (2, 2), (3, 2)] {
            bm.data[y * 5 + x] = 1;
        }
        bm
    }

    #[test]
    fn rle_round_trip_and_column_major() {
        let bm = sample();
        let rle = bm.to_rle();
        // column 0: 4 zeros; column 1: y=0 zero, y=1,2 ones, y=3 zero; ...
        assert_eq!(rle.counts, vec![5, 2, 3, 1, 3, 1, 5]);
        assert_eq!(rle.counts.iter().sum::<u32>(), 20);
        assert_eq!(rle.to_bitmap().unwrap(), bm);
        let roi = RoiBitmap::from_full(&bm);
        assert_eq!(roi.rect, PixelRect::new(1, 1, 3, 2));
        assert_eq!(roi.to_rle(), rle);
        assert_eq!(roi.to_full(), bm);
    }

    #[test]
    fn rle_starting_with_ones_has_zero_first_count() {
        let mut bm = Bitmap::zeros(2, 2);
        bm.data[0] = 1;
        assert_eq!(bm.to_rle().counts, vec![0, 1, 3]);
    }

    #[test]
    fn iou_agrees_across_representations() {
        let a = sample();
        let mut b = Bitmap::zeros(5, 4);
        for (x, y) in [(1, 1), (2, 1), (2, 2)] {
            b.data[y * 5 + x] = 1;
        }
        // inter = {(1,1),(2,2)} = 2, union = 4 + 3 - 2 = 5
        assert!((a.iou(&b) - 0.4).abs() < 1e-12);
        let (ra, rb) = (RoiBitmap::from_full(&a), RoiBitmap::from_full(&b));
        assert!((ra.iou(&rb) - 0.4).abs() < 1e-12);
        assert!((a.to_rle().iou(&b.to_rle()).unwrap() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn shifted_intersection() {
        let a = RoiBitmap::from_full(&sample());
        // shifting a copy by (+1, 0): overlap of the horizontal bar {(1,2),(2,2),(3,2)} with
        // {(2,2),(3,2),(4,2)} is 2 pixels, plus (1,1)->(2,1) which is not set in a: total 2
        assert_eq!(a.intersection_area(&a, 1, 0), 2);
        assert_eq!(a.intersection_area(&a, 0, 0), 4);
        assert_eq!(a.intersection_area(&a, 10, 0), 0);
    }

    #[test]
    fn bad_rle_is_an_error() {
        let rle = Rle { size: [2, 2], counts: vec![1, 1] };
        assert!(rle.to_bitmap().is_err());
    }

    /// The column-by-column RLE encoder this module used before [`RoiBitmap::to_rle`] found the
    /// runs row-major: the reference the fast one must equal.
    fn to_rle_reference(roi: &RoiBitmap) -> Rle {
        let r = roi.rect;
        let h = roi.img_h;
        let mut enc = RleEncoder::new();
        for x in 0..roi.img_w {
            if r.is_empty() || x < r.x || x >= r.right() {
                enc.push(false, h);
                continue;
            }
            enc.push(false, r.y);
            let col = x - r.x;
            for yy in 0..r.h {
                enc.push(roi.data[(yy * r.w + col) as usize] != 0, 1);
            }
            enc.push(false, h - r.bottom());
        }
        enc.finish(roi.img_h, roi.img_w)
    }

    /// The row-major change-list encoder [`RoiBitmap::to_rle`] used before the bit-matrix
    /// transposition of [`RowBits::to_rle`]: the second reference the fast one must equal.
    fn to_rle_changes_reference(roi: &RoiBitmap) -> Rle {
        let r = roi.rect;
        let h = roi.img_h;
        let mut enc = RleEncoder::new();
        if r.is_empty() {
            for _ in 0..roi.img_w {
                enc.push(false, h);
            }
            return enc.finish(roi.img_h, roi.img_w);
        }
        let w = r.w as usize;
        // (column, row) of every value change, rows in increasing order; row r.h closes the
        // columns still set in the last row.
        let mut changes: Vec<(u32, u32)> = Vec::new();
        let mut prev: &[u8] = &[];
        for yy in 0..=r.h as usize {
            let cur: &[u8] = if yy < r.h as usize { &roi.data[yy * w..(yy + 1) * w] } else { &[] };
            push_changes(prev, cur, w, yy as u32, &mut changes);
            prev = cur;
        }
        // Counting sort by column (stable: rows stay increasing within a column).
        let mut start = vec![0u32; w + 1];
        for &(x, _) in &changes {
            start[x as usize + 1] += 1;
        }
        for i in 0..w {
            start[i + 1] += start[i];
        }
        let mut rows = vec![0u32; changes.len()];
        let mut fill = start.clone();
        for &(x, y) in &changes {
            rows[fill[x as usize] as usize] = y;
            fill[x as usize] += 1;
        }
        for x in 0..roi.img_w {
            if x < r.x || x >= r.right() {
                enc.push(false, h);
                continue;
            }
            let col = (x - r.x) as usize;
            enc.push(false, r.y);
            let (mut v, mut pos) = (false, 0u32);
            for &y in &rows[start[col] as usize..start[col + 1] as usize] {
                enc.push(v, y - pos);
                v = !v;
                pos = y;
            }
            enc.push(false, r.h - pos);
            enc.push(false, h - r.bottom());
        }
        enc.finish(roi.img_h, roi.img_w)
    }

    /// Append `(column, y)` for every column whose non-zero-ness differs between `prev` and `cur`
    /// (rows of `w` bytes; an empty slice is a row of zeros).
    fn push_changes(prev: &[u8], cur: &[u8], w: usize, y: u32, out: &mut Vec<(u32, u32)>) {
        let mut x = 0;
        while x < w {
            let n = (w - x).min(8);
            let a = if prev.is_empty() { 0 } else { nonzero_bits8(load8(&prev[x..x + n])) };
            let b = if cur.is_empty() { 0 } else { nonzero_bits8(load8(&cur[x..x + n])) };
            let mut d = a ^ b;
            while d != 0 {
                let i = d.trailing_zeros();
                out.push((x as u32 + i, y));
                d &= d - 1;
            }
            x += n;
        }
    }

    use crate::test_rng::Rng;

    /// A random ROI mask of a `w x h` image: noise of the given density, or a blob (disc with a
    /// ragged edge and holes), with non-zero bytes that are not always 1. The ROI may touch any
    /// image border and may be empty.
    fn random_roi(rng: &mut Rng, w: u32, h: u32) -> RoiBitmap {
        let x = rng.below(w);
        let y = rng.below(h);
        let rw = rng.below(w - x + 1);
        let rh = rng.below(h - y + 1);
        let rect = PixelRect::new(x, y, rw, rh);
        let kind = rng.below(3);
        let density = rng.below(101);
        let (cx, cy, rad) = (rw as f32 / 2.0, rh as f32 / 2.0, rw.min(rh) as f32 / 2.0 + 1.0);
        let mut data = vec![0u8; rect.area() as usize];
        for yy in 0..rh {
            for xx in 0..rw {
                let on = match kind {
                    0 => rng.below(100) < density,
                    1 => {
                        let (dx, dy) = (xx as f32 + 0.5 - cx, yy as f32 + 0.5 - cy);
                        dx * dx + dy * dy <= rad * rad && rng.below(20) != 0
                    }
                    _ => density > 50,
                };
                if on {
                    data[(yy * rw + xx) as usize] = [1, 1, 1, 255, 7][rng.below(5) as usize];
                }
            }
        }
        RoiBitmap { img_w: w, img_h: h, rect, data }
    }

    #[test]
    fn fast_rle_equals_reference_on_random_masks() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for case in 0..400 {
            let (w, h) = (1 + rng.below(150), 1 + rng.below(90));
            let roi = random_roi(&mut rng, w, h);
            let want = to_rle_reference(&roi);
            assert_eq!(roi.to_rle(), want, "case {case}: {w}x{h} rect {:?}", roi.rect);
            // and the full-frame encoder, an independent third route
            let full = roi.to_full();
            let full01 = Bitmap { data: full.data.iter().map(|&v| (v != 0) as u8).collect(), ..full };
            assert_eq!(full01.to_rle(), want, "case {case}");
        }
    }

    /// A ROI mask of a `w x h` image for the RLE equivalence tests: [`random_roi`], or an edge
    /// case: empty (with or without a ROI), full (the whole image, or a ROI of whole 64 x 64
    /// blocks), one pixel wide or high, a single pixel, or a ROI touching two image borders.
    fn rle_case(rng: &mut Rng, w: u32, h: u32) -> RoiBitmap {
        let filled =
            |rect: PixelRect, v: u8| RoiBitmap { img_w: w, img_h: h, rect, data: vec![v; rect.area() as usize] };
        let random_in = |rng: &mut Rng, rect: PixelRect| {
            let data = (0..rect.area()).map(|_| [0u8, 1, 1, 255][rng.below(4) as usize]).collect();
            RoiBitmap { img_w: w, img_h: h, rect, data }
        };
        match rng.below(12) {
            0 => RoiBitmap::empty(w, h),
            1 => filled(PixelRect::new(rng.below(w), rng.below(h), 0, 0), 1),
            2 => filled(PixelRect::new(0, 0, w, h), 1),
            3 => {
                let (bw, bh) = ((w / 64).max(1) * 64, (h / 64).max(1) * 64);
                let (x, y) = (rng.below(w.saturating_sub(bw) + 1), rng.below(h.saturating_sub(bh) + 1));
                filled(PixelRect::new(x, y, bw.min(w - x), bh.min(h - y)), 1)
            }
            4 => {
                let x = rng.below(w);
                random_in(rng, PixelRect::new(x, 0, 1, h))
            }
            5 => {
                let y = rng.below(h);
                random_in(rng, PixelRect::new(0, y, w, 1))
            }
            6 => filled(PixelRect::new(rng.below(w), rng.below(h), 1, 1), 1),
            7 => {
                // touching the right and bottom borders (or the left and top ones)
                let (x, y) = (rng.below(w), rng.below(h));
                let rect = if rng.below(2) == 0 {
                    PixelRect::new(x, y, w - x, h - y)
                } else {
                    PixelRect::new(0, 0, x + 1, y + 1)
                };
                let mut roi = random_in(rng, rect);
                if rng.below(2) == 0 {
                    roi.data.fill(1);
                }
                roi
            }
            _ => random_roi(rng, w, h),
        }
    }

    #[test]
    fn transposed_rle_equals_change_list_reference_on_random_masks() {
        let mut rng = Rng(0x7a45_05ed_b175_0001);
        for case in 0..1500 {
            // sizes across 64-pixel blocks both ways, and tiny ones
            let (w, h) = if case % 5 == 0 {
                (1 + rng.below(4), 1 + rng.below(4))
            } else {
                (1 + rng.below(300), 1 + rng.below(200))
            };
            let roi = rle_case(&mut rng, w, h);
            let want = to_rle_changes_reference(&roi);
            assert_eq!(want, to_rle_reference(&roi), "case {case}: the references disagree");
            let what = format!("case {case}: {w}x{h} rect {:?}", roi.rect);
            assert_eq!(roi.to_rle(), want, "{what}: RoiBitmap::to_rle");
            // the cached bits of a mask
            let m = Mask::from_roi(roi.clone());
            assert_eq!(m.bits().to_rle(w, h), want, "{what}: RowBits::to_rle");
            assert_eq!(want.counts.iter().map(|&c| c as u64).sum::<u64>(), w as u64 * h as u64);
        }
    }

    #[test]
    fn transpose64_swaps_rows_and_columns() {
        let mut rng = Rng(0x0b17_7a45_0000_0042);
        for _ in 0..50 {
            let a: [u64; 64] = std::array::from_fn(|_| match rng.below(4) {
                0 => 0,
                1 => u64::MAX,
                _ => rng.next(),
            });
            let mut t = a;
            transpose64(&mut t);
            for (r, &row) in a.iter().enumerate() {
                for (c, &col) in t.iter().enumerate() {
                    assert_eq!((col >> r) & 1, (row >> c) & 1, "row {r} column {c}");
                }
            }
        }
    }

    #[test]
    fn nonzero_bits64_packs_one_bit_per_byte() {
        let mut rng = Rng(77);
        for len in [64usize, 64, 64, 63, 17, 8, 1] {
            let b: Vec<u8> = (0..len).map(|_| [0u8, 0, 1, 128, 255][rng.below(5) as usize]).collect();
            let want = b.iter().enumerate().fold(0u64, |acc, (i, &v)| acc | (((v != 0) as u64) << i));
            assert_eq!(nonzero_bits64(&b), want, "{b:?}");
        }
    }

    #[test]
    fn nonzero_bits8_packs_one_bit_per_byte() {
        for v in [0u8, 1, 2, 7, 127, 128, 129, 255] {
            for i in 0..8 {
                let mut b = [0u8; 8];
                b[i] = v;
                let want = if v != 0 { 1u64 << i } else { 0 };
                assert_eq!(nonzero_bits8(u64::from_le_bytes(b)), want, "byte {i} = {v}");
            }
        }
        assert_eq!(nonzero_bits8(u64::MAX), 0xff);
        assert_eq!(nonzero_bits8(0x0100_ff00_0001_8000), 0b1010_0110);
    }

    #[test]
    fn row_bits_intersection_equals_pixel_count_on_random_pairs() {
        let mut rng = Rng(0x0ddc_0ffe_e123_4567);
        for case in 0..600 {
            let (w, h) = (1 + rng.below(300), 1 + rng.below(120));
            let (a, b) = (random_roi(&mut rng, w, h), random_roi(&mut rng, w, h));
            let (fa, fb) = (a.to_full(), b.to_full());
            // reference: full-frame pixel loop
            let inter = fa.data.iter().zip(&fb.data).filter(|(p, q)| **p != 0 && **q != 0).count() as u64;
            let (ba, bb) = (RowBits::from_roi(&a), RowBits::from_roi(&b));
            assert_eq!(ba.area(), fa.area(), "case {case}: area");
            assert_eq!(ba.intersection(&bb), inter, "case {case}: {:?} x {:?}", a.rect, b.rect);
            assert_eq!(bb.intersection(&ba), inter, "case {case}: symmetric");
            assert_eq!(a.intersection_area(&b, 0, 0), inter, "case {case}: ROI bytes");
            // the IoU, exactly (same integers, same division)
            let (ma, mb) = (Mask::from_roi(a.clone()), Mask::from_roi(b.clone()));
            assert_eq!(ma.iou(&mb).to_bits(), a.iou(&b).to_bits(), "case {case}: IoU");
            assert_eq!(ma.iou(&mb).to_bits(), fa.iou(&fb).to_bits(), "case {case}: full-frame IoU");
            assert_eq!(ma.area(), fa.area());
        }
    }

    #[test]
    fn resize_bitmap_nearest() {
        let m = Mask::from_roi(RoiBitmap::from_full(&sample()));
        let big = m.to_bitmap(10, 8);
        assert_eq!(big.area(), 16);
        assert!(big.get(2, 2) && big.get(3, 3) && !big.get(0, 0));
    }
}
