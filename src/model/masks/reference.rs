//! The mask rendering as it was before the SIMD kernels (scalar taps, byte threshold, packing
//! afterwards), kept as the reference the fast path must equal byte for byte.

use super::{FrameGeometry, Grid, ProtoMask, Protos, Tap, tap_span};
use crate::mask::{PixelRect, RoiBitmap, RowBits};

trait RowSource {
    fn row<'s>(&'s self, j: u32, scratch: &'s mut Vec<f32>) -> &'s [f32];
    fn x0(&self) -> u32;
}

impl RowSource for Grid {
    fn row<'s>(&'s self, j: u32, _: &'s mut Vec<f32>) -> &'s [f32] {
        Grid::row(self, j)
    }
    fn x0(&self) -> u32 {
        self.x0
    }
}

struct Logits<'a>(&'a ProtoMask);

impl RowSource for Logits<'_> {
    fn row<'s>(&'s self, j: u32, scratch: &'s mut Vec<f32>) -> &'s [f32] {
        let (x0, x1, _, _) = self.0.win;
        scratch.resize((x1 - x0) as usize, 0.0);
        logits_row(&self.0.geom.protos, &self.0.coeffs, j, x0, scratch);
        scratch
    }
    fn x0(&self) -> u32 {
        self.0.win.0
    }
}

struct RowPair<'a> {
    a: &'a [f32],
    b: &'a [f32],
    l0: f32,
    l1: f32,
}

impl RowPair<'_> {
    fn values(&self, out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.a.iter().zip(self.b).map(|(&p, &q)| self.l0 * p + self.l1 * q));
    }
    fn threshold(&self, thr: f32, out: &mut [u8]) {
        let (l0, l1) = (self.l0, self.l1);
        for ((d, &p), &q) in out.iter_mut().zip(self.a).zip(self.b) {
            *d = (l0 * p + l1 * q > thr) as u8;
        }
    }
    fn any_above(&self, thr: f32) -> bool {
        self.a.iter().zip(self.b).any(|(&p, &q)| self.l0 * p + self.l1 * q > thr)
    }
}

fn resample_rows(src: &impl RowSource, xt: &[Tap], yt: &[Tap], mut row_fn: impl FnMut(usize, RowPair<'_>) -> bool) {
    if xt.is_empty() || yt.is_empty() {
        return;
    }
    let w = xt.len();
    let (ylo, yhi) = tap_span(yt);
    let nrows = (yhi - ylo) as usize;
    let sx0 = src.x0();
    let mut cache = vec![0f32; nrows * w];
    let mut done = vec![false; nrows];
    let mut scratch = Vec::new();
    let mut ensure = |j: u32, cache: &mut Vec<f32>| {
        let k = (j - ylo) as usize;
        if !done[k] {
            let srow = src.row(j, &mut scratch);
            let dst = &mut cache[k * w..(k + 1) * w];
            for (d, t) in dst.iter_mut().zip(xt) {
                *d = t.l0 * srow[(t.i0 - sx0) as usize] + t.l1 * srow[(t.i1 - sx0) as usize];
            }
            done[k] = true;
        }
        k
    };
    for (r, t) in yt.iter().enumerate() {
        let k0 = ensure(t.i0, &mut cache);
        let k1 = ensure(t.i1, &mut cache);
        let (a, b) = (&cache[k0 * w..(k0 + 1) * w], &cache[k1 * w..(k1 + 1) * w]);
        if !row_fn(r, RowPair { a, b, l0: t.l0, l1: t.l1 }) {
            return;
        }
    }
}

fn logits_row(protos: &Protos, coeffs: &[f32], j: u32, x0: u32, out: &mut [f32]) {
    let w = out.len();
    let plane = protos.mh * protos.mw;
    let nm = protos.nm.min(coeffs.len());
    let data = &protos.data[..];
    let row_of = |k: usize| -> &[f32] {
        let start = k * plane + j as usize * protos.mw + x0 as usize;
        &data[start..start + w]
    };
    out.fill(0.0);
    let mut k = 0;
    while k + 8 <= nm {
        let c: [f32; 8] = std::array::from_fn(|i| coeffs[k + i]);
        let p: [&[f32]; 8] = std::array::from_fn(|i| row_of(k + i));
        for (x, d) in out.iter_mut().enumerate() {
            let mut acc = *d;
            acc += c[0] * p[0][x];
            acc += c[1] * p[1][x];
            acc += c[2] * p[2][x];
            acc += c[3] * p[3][x];
            acc += c[4] * p[4][x];
            acc += c[5] * p[5][x];
            acc += c[6] * p[6][x];
            acc += c[7] * p[7][x];
            *d = acc;
        }
        k += 8;
    }
    for (k, &c) in coeffs.iter().enumerate().take(nm).skip(k) {
        for (d, &s) in out.iter_mut().zip(row_of(k)) {
            *d += c * s;
        }
    }
}

fn logits_grid(m: &ProtoMask) -> Grid {
    let (x0, x1, y0, y1) = m.win;
    let w = (x1 - x0) as usize;
    let mut data = vec![0f32; w * (y1 - y0) as usize];
    for (j, row) in (y0..y1).zip(data.chunks_exact_mut(w.max(1))) {
        logits_row(&m.geom.protos, &m.coeffs, j, x0, row);
    }
    Grid { x0, y0, w: x1 - x0, h: y1 - y0, data }
}

fn native(m: &ProtoMask, early: bool) -> (RoiBitmap, bool) {
    let g: &FrameGeometry = &m.geom;
    let (img_w, img_h) = if g.retina { (g.lb.orig_w, g.lb.orig_h) } else { (g.lb.input_w, g.lb.input_h) };
    let r = m.rect;
    let mut roi =
        RoiBitmap { img_w, img_h, rect: r, data: if early { Vec::new() } else { vec![0; r.area() as usize] } };
    if r.is_empty() {
        return (roi, false);
    }
    let (xt, yt) = if g.retina {
        (&g.orig_x[r.x as usize..r.right() as usize], &g.orig_y[r.y as usize..r.bottom() as usize])
    } else {
        (&g.in_x[r.x as usize..r.right() as usize], &g.in_y[r.y as usize..r.bottom() as usize])
    };
    let mut any = false;
    let w = r.w as usize;
    let mut row_fn = |row: usize, pair: RowPair<'_>| {
        if early {
            any = pair.any_above(0.0);
            return !any;
        }
        pair.threshold(0.0, &mut roi.data[row * w..(row + 1) * w]);
        true
    };
    if g.retina && g.f > 1 {
        let (gx0, gx1) = tap_span(xt);
        let (gy0, gy1) = tap_span(yt);
        let mut data = Vec::with_capacity(((gx1 - gx0) * (gy1 - gy0)) as usize);
        let logits = logits_grid(m);
        let mut vals = Vec::new();
        resample_rows(&logits, &g.g_x[gx0 as usize..gx1 as usize], &g.g_y[gy0 as usize..gy1 as usize], |_, pair| {
            pair.values(&mut vals);
            data.extend_from_slice(&vals);
            true
        });
        let grid = Grid { x0: gx0, y0: gy0, w: gx1 - gx0, h: gy1 - gy0, data };
        resample_rows(&grid, xt, yt, &mut row_fn);
    } else {
        resample_rows(&Logits(m), xt, yt, &mut row_fn);
    }
    if !early {
        any = roi.data.contains(&1);
    }
    (roi, any)
}

/// The old `ProtoMask::is_empty`.
pub(super) fn is_empty(m: &ProtoMask) -> bool {
    !native(m, true).1
}

/// The old `ProtoMask::native_mask`.
pub(super) fn native_mask(m: &ProtoMask) -> RoiBitmap {
    native(m, false).0
}

/// The old `ProtoMask::orig_mask`, and its bits packed afterwards as `Mask::bits` did.
pub(super) fn orig_mask(m: &ProtoMask) -> (RoiBitmap, RowBits) {
    let roi = orig_roi(m);
    let bits = RowBits::from_roi(&roi);
    (roi, bits)
}

fn orig_roi(m: &ProtoMask) -> RoiBitmap {
    let g: &FrameGeometry = &m.geom;
    let native = native_mask(m);
    if g.retina {
        return native;
    }
    let (ow, oh) = (g.lb.orig_w, g.lb.orig_h);
    let Some(tight) = native.tight_rect() else {
        return RoiBitmap::empty(ow, oh);
    };
    let range = |taps: &[Tap], lo: u32, hi: u32| -> (u32, u32) {
        let a = taps.partition_point(|t| t.i1 < lo) as u32;
        let b = taps.partition_point(|t| t.i0 < hi) as u32;
        (a, b.max(a))
    };
    let (x0, x1) = range(&g.orig_x, tight.x, tight.right());
    let (y0, y1) = range(&g.orig_y, tight.y, tight.bottom());
    let rect = PixelRect::new(x0, y0, x1 - x0, y1 - y0);
    let mut out = RoiBitmap { img_w: ow, img_h: oh, rect, data: vec![0; rect.area() as usize] };
    if rect.is_empty() {
        return RoiBitmap::empty(ow, oh);
    }
    let xt = &g.orig_x[x0 as usize..x1 as usize];
    let yt = &g.orig_y[y0 as usize..y1 as usize];
    let (sx0, sx1) = tap_span(xt);
    let (sy0, sy1) = tap_span(yt);
    let mut src =
        Grid { x0: sx0, y0: sy0, w: sx1 - sx0, h: sy1 - sy0, data: vec![0.0; ((sx1 - sx0) * (sy1 - sy0)) as usize] };
    let nr = native.rect;
    let (cx0, cx1) = (sx0.max(nr.x), sx1.min(nr.right()));
    for y in sy0.max(nr.y)..sy1.min(nr.bottom()) {
        if cx1 <= cx0 {
            break;
        }
        let srow = &native.data[((y - nr.y) * nr.w + (cx0 - nr.x)) as usize..][..(cx1 - cx0) as usize];
        let drow = &mut src.data[((y - sy0) * src.w + (cx0 - sx0)) as usize..][..(cx1 - cx0) as usize];
        for (d, &v) in drow.iter_mut().zip(srow) {
            *d = v as f32;
        }
    }
    let w = rect.w as usize;
    resample_rows(&src, xt, yt, |row, pair| {
        pair.threshold(0.5, &mut out.data[row * w..(row + 1) * w]);
        true
    });
    out
}
