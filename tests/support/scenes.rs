//! Synthetic tracking scenes for tests and benches: moving elliptical objects with masks,
//! box jitter, dropped detections and occlusion (an object mostly hidden behind a nearer one is
//! not detected, and a partly hidden one is detected with its visible mask and box only).
#![allow(dead_code)]

use fastsam_track::eval::MotRow;
use fastsam_track::{BBox, Bitmap, Detection, Mask, PixelRect, RoiBitmap};

/// Small deterministic PRNG (xorshift64*), so scenes need no extra dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn f(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.f()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.f().max(1e-12);
        let v = self.f();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

pub fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Detection {
    Detection { bbox: BBox::new(x1, y1, x2, y2), score, class_id: 0, mask: None }
}

/// Filled ellipse inscribed in the box, as a mask ROI of a `w x h` image.
pub fn ellipse_roi(b: &BBox, w: u32, h: u32) -> RoiBitmap {
    let r = PixelRect::from_box_clamped(b.x1, b.y1, b.x2, b.y2, w, h);
    let (cx, cy) = b.center();
    let (ax, ay) = (b.width() / 2.0, b.height() / 2.0);
    let mut data = vec![0u8; r.area() as usize];
    for y in 0..r.h {
        for x in 0..r.w {
            let px = (r.x + x) as f32 + 0.5;
            let py = (r.y + y) as f32 + 0.5;
            let dx = (px - cx) / ax;
            let dy = (py - cy) / ay;
            if dx * dx + dy * dy <= 1.0 {
                data[(y * r.w + x) as usize] = 1;
            }
        }
    }
    RoiBitmap { img_w: w, img_h: h, rect: r, data }
}

/// One ground-truth object of a scene.
#[derive(Debug, Clone)]
pub struct Obj {
    pub id: i64,
    pub cx: f64,
    pub cy: f64,
    pub w: f64,
    pub h: f64,
    pub vx: f64,
    pub vy: f64,
    /// Depth order: larger is nearer (drawn on top).
    pub depth: f64,
}

/// A generated sequence: per frame the detections (shuffled) and the ground truth.
pub struct Scene {
    pub frames: Vec<Vec<Detection>>,
    pub gt: Vec<MotRow>,
    /// For each frame and detection, the gt id it came from (-1 = false positive).
    pub source: Vec<Vec<i64>>,
}

pub struct SceneParams {
    pub img_w: u32,
    pub img_h: u32,
    pub num_objects: usize,
    pub num_frames: usize,
    pub jitter: f64,
    pub drop_prob: f64,
    /// Random velocity change per frame (std, px).
    pub accel: f64,
    pub speed: f64,
    pub with_masks: bool,
    /// Visible fraction below which an occluded object is not detected.
    pub min_visible: f64,
}

impl Default for SceneParams {
    fn default() -> Self {
        Self {
            img_w: 640,
            img_h: 480,
            num_objects: 6,
            num_frames: 120,
            jitter: 2.0,
            drop_prob: 0.05,
            accel: 0.3,
            speed: 6.0,
            with_masks: true,
            min_visible: 0.3,
        }
    }
}

/// Random walk scene with occlusions: objects bounce inside the image and cross each other.
pub fn random_scene(p: &SceneParams, seed: u64) -> Scene {
    let mut rng = Rng::new(seed);
    let (iw, ih) = (p.img_w as f64, p.img_h as f64);
    let mut objs: Vec<Obj> = (0..p.num_objects)
        .map(|i| {
            let h = rng.range(80.0, 160.0);
            let w = h * rng.range(0.35, 0.6);
            let ang = rng.range(0.0, 2.0 * std::f64::consts::PI);
            Obj {
                id: i as i64 + 1,
                cx: rng.range(w, iw - w),
                cy: rng.range(h / 2.0, ih - h / 2.0),
                w,
                h,
                vx: p.speed * ang.cos(),
                vy: p.speed * ang.sin() * 0.5,
                depth: rng.f(),
            }
        })
        .collect();
    let mut frames = Vec::new();
    let mut gt = Vec::new();
    let mut source = Vec::new();
    for f in 0..p.num_frames {
        let boxes: Vec<BBox> = objs
            .iter()
            .map(|o| {
                BBox::new(
                    (o.cx - o.w / 2.0) as f32,
                    (o.cy - o.h / 2.0) as f32,
                    (o.cx + o.w / 2.0) as f32,
                    (o.cy + o.h / 2.0) as f32,
                )
            })
            .collect();
        for (o, b) in objs.iter().zip(&boxes) {
            gt.push(MotRow {
                frame: f as i64 + 1,
                id: o.id,
                x: b.x1 as f64,
                y: b.y1 as f64,
                w: b.width() as f64,
                h: b.height() as f64,
                conf: 1.0,
            });
        }
        // Render visible masks in depth order (nearest last).
        let mut order: Vec<usize> = (0..objs.len()).collect();
        order.sort_by(|&a, &b| objs[a].depth.total_cmp(&objs[b].depth));
        let mut owner = vec![u16::MAX; (p.img_w * p.img_h) as usize];
        let full: Vec<RoiBitmap> = boxes.iter().map(|b| ellipse_roi(b, p.img_w, p.img_h)).collect();
        for &k in &order {
            let r = &full[k];
            for y in 0..r.rect.h {
                for x in 0..r.rect.w {
                    if r.data[(y * r.rect.w + x) as usize] != 0 {
                        owner[((r.rect.y + y) * p.img_w + r.rect.x + x) as usize] = k as u16;
                    }
                }
            }
        }
        let mut dets = Vec::new();
        let mut src = Vec::new();
        for k in 0..objs.len() {
            if rng.f() < p.drop_prob {
                continue;
            }
            let r = &full[k];
            let mut vis = Bitmap::zeros(p.img_w, p.img_h);
            let mut n_vis = 0u64;
            for y in 0..r.rect.h {
                for x in 0..r.rect.w {
                    let idx = ((r.rect.y + y) * p.img_w + r.rect.x + x) as usize;
                    if owner[idx] == k as u16 {
                        vis.data[idx] = 1;
                        n_vis += 1;
                    }
                }
            }
            let total = r.area().max(1);
            if (n_vis as f64) < p.min_visible * total as f64 {
                continue;
            }
            let roi = RoiBitmap::from_full(&vis);
            let Some(t) = roi.tight_rect() else { continue };
            let j = |rng: &mut Rng| (rng.normal() * p.jitter) as f32;
            let b = BBox::new(
                t.x as f32 + j(&mut rng),
                t.y as f32 + j(&mut rng),
                t.right() as f32 + j(&mut rng),
                t.bottom() as f32 + j(&mut rng),
            );
            let score = rng.range(0.5, 0.95) as f32;
            let mask = p.with_masks.then(|| Mask::from_roi(roi));
            dets.push(Detection { bbox: b, score, class_id: 0, mask });
            src.push(objs[k].id);
        }
        // Shuffle detection order.
        for i in (1..dets.len()).rev() {
            let j = (rng.u64() % (i as u64 + 1)) as usize;
            dets.swap(i, j);
            src.swap(i, j);
        }
        frames.push(dets);
        source.push(src);
        // Move.
        for o in objs.iter_mut() {
            o.vx += rng.normal() * p.accel;
            o.vy += rng.normal() * p.accel * 0.5;
            o.cx += o.vx;
            o.cy += o.vy;
            if o.cx < o.w / 2.0 || o.cx > iw - o.w / 2.0 {
                o.vx = -o.vx;
                o.cx = o.cx.clamp(o.w / 2.0, iw - o.w / 2.0);
            }
            if o.cy < o.h / 2.0 || o.cy > ih - o.h / 2.0 {
                o.vy = -o.vy;
                o.cy = o.cy.clamp(o.h / 2.0, ih - o.h / 2.0);
            }
        }
    }
    Scene { frames, gt, source }
}

/// Two objects of the same size crossing horizontally with a small vertical offset; the nearer
/// one (B) hides the other while they overlap.
pub fn crossing_scene(num_frames: usize, speed: f64, dy: f64, with_masks: bool, seed: u64) -> Scene {
    let mut rng = Rng::new(seed);
    let w = 50.0;
    let mut frames = Vec::new();
    let mut gt = Vec::new();
    let mut source = Vec::new();
    let mid = num_frames as f64 / 2.0;
    for f in 0..num_frames {
        let t = f as f64 - mid;
        let a = BBox::new((320.0 + t * speed - w / 2.0) as f32, 180.0, (320.0 + t * speed + w / 2.0) as f32, 300.0);
        let b = BBox::new(
            (320.0 - t * speed - w / 2.0) as f32,
            (180.0 + dy) as f32,
            (320.0 - t * speed + w / 2.0) as f32,
            (300.0 + dy) as f32,
        );
        let mut dets = Vec::new();
        let mut src = Vec::new();
        let ra = ellipse_roi(&a, 640, 480);
        let rb = ellipse_roi(&b, 640, 480);
        for (id, bb, r, score) in [(1i64, a, &ra, 0.9f32), (2, b, &rb, 0.85)] {
            gt.push(MotRow {
                frame: f as i64 + 1,
                id,
                x: bb.x1 as f64,
                y: bb.y1 as f64,
                w: bb.width() as f64,
                h: bb.height() as f64,
                conf: 1.0,
            });
            // A is hidden behind B when mostly covered.
            let visible = if id == 1 { r.area() - r.intersection_area(&rb, 0, 0) } else { r.area() };
            if (visible as f64) < 0.3 * r.area() as f64 {
                continue;
            }
            let mut vis = r.to_full();
            if id == 1 {
                for (p, q) in vis.data.iter_mut().zip(rb.to_full().data) {
                    if q != 0 {
                        *p = 0;
                    }
                }
            }
            let roi = RoiBitmap::from_full(&vis);
            let Some(t) = roi.tight_rect() else { continue };
            let j = |rng: &mut Rng| rng.normal() as f32;
            let bbox = BBox::new(
                t.x as f32 + j(&mut rng),
                t.y as f32 + j(&mut rng),
                t.right() as f32 + j(&mut rng),
                t.bottom() as f32 + j(&mut rng),
            );
            dets.push(Detection { bbox, score, class_id: 0, mask: with_masks.then(|| Mask::from_roi(roi)) });
            src.push(id);
        }
        if f % 2 == 1 {
            dets.reverse();
            src.reverse();
        }
        frames.push(dets);
        source.push(src);
    }
    Scene { frames, gt, source }
}
