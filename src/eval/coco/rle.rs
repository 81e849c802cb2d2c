//! COCO mask encodings: the compressed RLE string (pycocotools' 6-bit, LEB128-like text form),
//! polygon rasterisation with the same pixel rule as pycocotools' `frPyObjects`, union of masks,
//! area, bounding box, and IoU computed on run lengths (no bitmap is ever decoded).
//!
//! All masks are column-major run lengths starting with a run of zeros ([`Rle`]), as in COCO.

use crate::mask::Rle;

/// Encode run lengths as a COCO compressed RLE string.
///
/// Each count (from the fourth on, its difference to the count two places before) is written in
/// 5-bit groups, least significant first; bit 6 (0x20) says another group follows, and the last
/// group's bit 5 (0x10) carries the sign. Each group is offset by 48 into printable ASCII.
pub fn encode_counts(counts: &[u32]) -> String {
    let mut out = String::with_capacity(counts.len() * 2);
    for (i, &c) in counts.iter().enumerate() {
        let mut v = i64::from(c);
        if i > 2 {
            v -= i64::from(counts[i - 2]);
        }
        loop {
            let mut group = (v & 0x1f) as u8;
            v >>= 5;
            let more = if group & 0x10 != 0 { v != -1 } else { v != 0 };
            if more {
                group |= 0x20;
            }
            out.push(char::from(group + 48));
            if !more {
                break;
            }
        }
    }
    out
}

/// Decode a COCO compressed RLE string into run lengths. The error says what is wrong and where.
pub fn decode_counts(s: &str) -> Result<Vec<u32>, String> {
    let bytes = s.as_bytes();
    let mut counts: Vec<u32> = Vec::with_capacity(bytes.len() / 2 + 1);
    let mut p = 0;
    while p < bytes.len() {
        let mut v: i64 = 0;
        let mut k = 0u32;
        loop {
            let Some(&b) = bytes.get(p) else {
                return Err(format!("the string ends inside a count (after {} counts)", counts.len()));
            };
            if !(48..=111).contains(&b) {
                return Err(format!("character {:?} at offset {p} is not in the RLE alphabet ('0'..'o')", b as char));
            }
            let g = i64::from(b - 48);
            v |= (g & 0x1f) << (5 * k);
            p += 1;
            k += 1;
            if g & 0x20 == 0 {
                if g & 0x10 != 0 {
                    v |= -1i64 << (5 * k);
                }
                break;
            }
            if k >= 12 {
                return Err(format!("count {} is too long to be a 32-bit run length", counts.len()));
            }
        }
        if counts.len() > 2 {
            v += i64::from(counts[counts.len() - 2]);
        }
        let c = u32::try_from(v).map_err(|_| format!("count {} decodes to {v}, not a run length", counts.len()))?;
        counts.push(c);
    }
    Ok(counts)
}

/// Check that run lengths cover exactly `h * w` pixels.
pub fn check_counts(counts: &[u32], h: u32, w: u32) -> Result<(), String> {
    let sum: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let expected = u64::from(h) * u64::from(w);
    if sum != expected {
        return Err(format!("the run lengths sum to {sum}, but a {h}x{w} mask has {expected} pixels"));
    }
    Ok(())
}

/// Rasterise one polygon `[x0, y0, x1, y1, ...]` (pixel coordinates, pixel centres at +0.5) with
/// pycocotools' rule: the outline is traced on a 5x finer grid, and a pixel column's interior
/// starts at the first pixel centre at or below each crossing of that column's centre line.
pub fn polygon_to_rle(xy: &[f64], h: u32, w: u32) -> Rle {
    const SCALE: f64 = 5.0;
    let k = xy.len() / 2;
    // Vertices on the fine grid (rounded half up, truncated like a C cast), closed.
    let fine = |v: f64| (SCALE * v + 0.5) as i32;
    let mut px: Vec<i32> = (0..k).map(|j| fine(xy[2 * j])).collect();
    let mut py: Vec<i32> = (0..k).map(|j| fine(xy[2 * j + 1])).collect();
    if k > 0 {
        px.push(px[0]);
        py.push(py[0]);
    }
    // Dense outline: one point per fine step along the longer axis of each edge.
    let mut u: Vec<i32> = Vec::new();
    let mut v: Vec<i32> = Vec::new();
    for j in 0..k {
        let (x0, y0, x1, y1) = (px[j], py[j], px[j + 1], py[j + 1]);
        let dx = (x1 - x0).abs();
        let dy = (y1 - y0).abs();
        let x_major = dx >= dy;
        // Step along the major axis from the lower end; emit points in the edge's own direction.
        let reversed = (x_major && x0 > x1) || (!x_major && y0 > y1);
        let (sx, sy, ex, ey) = if reversed { (x1, y1, x0, y0) } else { (x0, y0, x1, y1) };
        let to_int = |f: f64| if f.is_nan() { i32::MIN } else { f as i32 };
        if x_major {
            let slope = f64::from(ey - sy) / f64::from(dx);
            for d in 0..=dx {
                let t = if reversed { dx - d } else { d };
                u.push(t + sx);
                v.push(to_int(f64::from(sy) + slope * f64::from(t) + 0.5));
            }
        } else {
            let slope = f64::from(ex - sx) / f64::from(dy);
            for d in 0..=dy {
                let t = if reversed { dy - d } else { d };
                v.push(t + sy);
                u.push(to_int(f64::from(sx) + slope * f64::from(t) + 0.5));
            }
        }
    }
    // Crossings of pixel-column centre lines, back on the pixel grid.
    let mut toggles: Vec<u32> = Vec::new();
    for j in 1..u.len() {
        if u[j] == u[j - 1] {
            continue;
        }
        let col = f64::from(if u[j] < u[j - 1] { u[j] } else { u[j] - 1 });
        let xd = (col + 0.5) / SCALE - 0.5;
        if xd.floor() != xd || xd < 0.0 || xd > f64::from(w) - 1.0 {
            continue;
        }
        let row = f64::from(v[j].min(v[j - 1]));
        let yd = ((row + 0.5) / SCALE - 0.5).clamp(0.0, f64::from(h)).ceil();
        toggles.push((xd as i64 * i64::from(h) + yd as i64) as u32);
    }
    toggles.push(h.wrapping_mul(w));
    toggles.sort_unstable();
    // Differences between toggle positions are the runs; two toggles at one position cancel.
    let mut prev = 0u32;
    let diffs: Vec<u32> = toggles
        .iter()
        .map(|&t| {
            let d = t.wrapping_sub(prev);
            prev = t;
            d
        })
        .collect();
    let mut counts: Vec<u32> = Vec::with_capacity(diffs.len());
    let mut j = 0;
    if let Some(&first) = diffs.first() {
        counts.push(first);
        j = 1;
    }
    while j < diffs.len() {
        if diffs[j] > 0 {
            counts.push(diffs[j]);
            j += 1;
        } else {
            j += 1;
            if j < diffs.len() {
                if let Some(last) = counts.last_mut() {
                    *last += diffs[j];
                }
                j += 1;
            }
        }
    }
    Rle { size: [h, w], counts }
}

/// Foreground runs `[start, end)` of column-major run lengths.
pub fn fg_runs(counts: &[u32]) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(counts.len() / 2);
    let mut pos = 0u32;
    for (i, &c) in counts.iter().enumerate() {
        if i % 2 == 1 && c > 0 {
            out.push((pos, pos + c));
        }
        pos = pos.wrapping_add(c);
    }
    out
}

/// Run lengths (starting with zeros) of sorted, disjoint foreground runs in an `h` x `w` mask.
pub fn runs_to_counts(runs: &[(u32, u32)], h: u32, w: u32) -> Vec<u32> {
    let mut counts = Vec::with_capacity(runs.len() * 2 + 1);
    let mut pos = 0u32;
    for &(s, e) in runs {
        counts.push(s - pos);
        counts.push(e - s);
        pos = e;
    }
    counts.push(h * w - pos);
    counts
}

/// Union of masks of the same size (the parts of a multi-polygon annotation).
pub fn union(rles: &[Rle], h: u32, w: u32) -> Rle {
    if let [one] = rles {
        return one.clone();
    }
    let mut all: Vec<(u32, u32)> = rles.iter().flat_map(|r| fg_runs(&r.counts)).collect();
    all.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(all.len());
    for (s, e) in all {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    Rle { size: [h, w], counts: runs_to_counts(&merged, h, w) }
}

/// A mask prepared for repeated IoU: its foreground runs, area and pixel bounding box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMask {
    pub runs: Vec<(u32, u32)>,
    pub area: u64,
    /// Inclusive pixel box `(x0, y0, x1, y1)`; `None` for an empty mask.
    pub bounds: Option<(u32, u32, u32, u32)>,
}

impl RunMask {
    /// Prepare run lengths of a mask `h` pixels high.
    pub fn new(counts: &[u32], h: u32) -> RunMask {
        let runs = fg_runs(counts);
        let area = runs.iter().map(|&(s, e)| u64::from(e - s)).sum();
        let mut bounds: Option<(u32, u32, u32, u32)> = None;
        if let Some(nh) = std::num::NonZeroU32::new(h) {
            for &(s, e) in &runs {
                let (xa, xb) = (s / nh, (e - 1) / nh);
                let (ya, yb) = if xa == xb { (s % nh, (e - 1) % nh) } else { (0, h - 1) };
                bounds = Some(match bounds {
                    None => (xa, ya, xb, yb),
                    Some((x0, y0, x1, y1)) => (x0.min(xa), y0.min(ya), x1.max(xb), y1.max(yb)),
                });
            }
        }
        RunMask { runs, area, bounds }
    }

    /// COCO `[x, y, w, h]` box of the mask (pycocotools `toBbox`); zeros when empty.
    pub fn bbox(&self) -> [f64; 4] {
        match self.bounds {
            None => [0.0; 4],
            Some((x0, y0, x1, y1)) => [f64::from(x0), f64::from(y0), f64::from(x1 - x0 + 1), f64::from(y1 - y0 + 1)],
        }
    }

    /// Pixels in both masks.
    pub fn intersection(&self, other: &RunMask) -> u64 {
        let (Some(a), Some(b)) = (self.bounds, other.bounds) else { return 0 };
        if a.0 > b.2 || b.0 > a.2 || a.1 > b.3 || b.1 > a.3 {
            return 0;
        }
        let (ra, rb) = (&self.runs, &other.runs);
        // Skip the runs that end before the other mask starts.
        let mut i = ra.partition_point(|r| r.1 <= rb[0].0);
        let mut j = rb.partition_point(|r| r.1 <= ra[0].0);
        let mut n = 0u64;
        while i < ra.len() && j < rb.len() {
            let lo = ra[i].0.max(rb[j].0);
            let hi = ra[i].1.min(rb[j].1);
            if hi > lo {
                n += u64::from(hi - lo);
            }
            if ra[i].1 < rb[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        n
    }
}

/// Mask IoU as COCOeval computes it: intersection over union, or over the detection's area when
/// the ground truth is a crowd region; 0 when the masks do not meet.
pub fn mask_iou(dt: &RunMask, gt: &RunMask, crowd: bool) -> f64 {
    let i = dt.intersection(gt);
    if i == 0 {
        return 0.0;
    }
    let u = if crowd { dt.area } else { dt.area + gt.area - i };
    i as f64 / u as f64
}

/// Box IoU of COCO `[x, y, w, h]` boxes as COCOeval computes it (over the detection's area for a
/// crowd ground truth), in the same floating-point order.
pub fn box_iou(dt: &[f64; 4], gt: &[f64; 4], crowd: bool) -> f64 {
    let w = (dt[2] + dt[0]).min(gt[2] + gt[0]) - dt[0].max(gt[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dt[3] + dt[1]).min(gt[3] + gt[1]) - dt[1].max(gt[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = dt[2] * dt[3];
    let u = if crowd { da } else { da + gt[2] * gt[3] - i };
    i / u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_round_trip() {
        let cases: [&[u32]; 5] = [&[], &[0], &[5, 3, 2], &[100_000, 1, 7, 65_000, 3, 0, 12], &[0, 4_000_000_000]];
        for c in cases {
            let s = encode_counts(c);
            assert_eq!(decode_counts(&s).unwrap(), c, "{s}");
        }
        assert!(decode_counts("0~").is_err());
        assert!(decode_counts("P").is_err(), "a continuation bit at the end is truncated");
    }

    #[test]
    fn axis_aligned_square_polygon() {
        // The square with corners (2,1) and (5,4) covers pixel columns 2..5 and rows 1..4 (a 3x3
        // block of pixel centres inside it, like pycocotools).
        let r = polygon_to_rle(&[2.0, 1.0, 5.0, 1.0, 5.0, 4.0, 2.0, 4.0], 8, 8);
        let m = RunMask::new(&r.counts, 8);
        check_counts(&r.counts, 8, 8).unwrap();
        assert_eq!(m.area, 9);
        assert_eq!(m.bbox(), [2.0, 1.0, 3.0, 3.0]);
    }

    #[test]
    fn polygons_rasterise_like_pycocotools() {
        // Expected masks: pycocotools 2.0.11 `merge(frPyObjects(polygons, h, w))`, as compressed
        // strings (fractional vertices, a vertex outside the image, two parts).
        type Case<'a> = (&'a [&'a [f64]], u32, u32, &'a str, u64);
        let cases: [Case; 4] = [
            (&[&[2.0, 1.0, 5.0, 1.0, 5.0, 4.0, 2.0, 4.0]], 8, 8, "a035000g0", 9),
            (&[&[1.3, 0.2, 9.7, 3.1, 4.4, 8.8]], 10, 12, "e0283M3NN1O1N3Nl0", 30),
            (
                &[&[0.5, 0.5, 3.2, 0.5, 3.2, 2.7], &[5.1, 5.0, 7.9, 6.2, 6.0, 9.4, 4.4, 7.7]],
                10,
                9,
                "e01i00^O30O0N6",
                10,
            ),
            (&[&[-2.0, -1.5, 20.0, 3.0, 11.0, 14.5]], 12, 16, "01;2N1O1O1O2N1O100O1O000001N1O1OO", 124),
        ];
        for (polys, h, w, expected, area) in cases {
            let parts: Vec<Rle> = polys.iter().map(|p| polygon_to_rle(p, h, w)).collect();
            let ours = union(&parts, h, w);
            check_counts(&ours.counts, h, w).unwrap();
            let theirs = decode_counts(expected).unwrap();
            assert_eq!(RunMask::new(&ours.counts, h), RunMask::new(&theirs, h), "{polys:?}");
            assert_eq!(RunMask::new(&ours.counts, h).area, area);
        }
    }

    #[test]
    fn union_and_iou() {
        let a = polygon_to_rle(&[0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 4.0], 10, 10);
        let b = polygon_to_rle(&[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0], 10, 10);
        let u = union(&[a.clone(), b.clone()], 10, 10);
        let (ma, mb, mu) = (RunMask::new(&a.counts, 10), RunMask::new(&b.counts, 10), RunMask::new(&u.counts, 10));
        assert_eq!((ma.area, mb.area), (16, 16));
        assert_eq!(ma.intersection(&mb), 4);
        assert_eq!(mu.area, 28);
        assert!((mask_iou(&ma, &mb, false) - 4.0 / 28.0).abs() < 1e-12);
        assert!((mask_iou(&ma, &mb, true) - 4.0 / 16.0).abs() < 1e-12);
        assert_eq!(box_iou(&[0.0, 0.0, 4.0, 4.0], &[2.0, 2.0, 4.0, 4.0], false), 4.0 / 28.0);
        assert_eq!(box_iou(&[0.0, 0.0, 4.0, 4.0], &[4.0, 0.0, 4.0, 4.0], false), 0.0);
    }
}
