//! Shared helpers of the video pipeline tests: a synthetic clip of moving shapes with exact masks,
//! a scripted segmenter that reads the frame number drawn into each frame and returns that
//! frame's known masks, and decoding a whole video back into frames.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastsam_track::video::{Frame, FramePool, SinkConfig, SourceConfig, VideoInfo, VideoSink, VideoSource};
use fastsam_track::{BBox, Bitmap, Detection, ImageView, Mask, RoiBitmap, Segmenter};

pub const W: u32 = 320;
pub const H: u32 = 240;
/// Frame-number code: 12 bits, 8x8 blocks along the top-left.
const CODE_BITS: u32 = 12;
const BLOCK: u32 = 8;

/// Shape `k` (0..3) of frame `i`: the exact full-frame mask.
pub fn shape_mask(k: usize, i: u64) -> Bitmap {
    let mut bm = Bitmap::zeros(W, H);
    let f = i as f32;
    for y in 0..H {
        for x in 0..W {
            let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
            let inside = match k {
                // rectangle moving right
                0 => {
                    let x0 = 10.0 + 3.0 * f;
                    xf >= x0 && xf < x0 + 40.0 && (40.0..70.0).contains(&yf)
                }
                // disc moving left and down
                1 => {
                    let (cx, cy) = (280.0 - 2.0 * f, 120.0 + f);
                    (xf - cx).powi(2) + (yf - cy).powi(2) <= 18.0f32.powi(2)
                }
                // ring (disc with a hole) moving right and up
                _ => {
                    let (cx, cy) = (60.0 + f, 190.0 - 0.5 * f);
                    let d2 = (xf - cx).powi(2) + (yf - cy).powi(2);
                    d2 <= 22.0f32.powi(2) && d2 >= 8.0f32.powi(2)
                }
            };
            if inside {
                bm.data[(y * W + x) as usize] = 1;
            }
        }
    }
    bm
}

pub const COLORS: [[u8; 3]; 3] = [[220, 40, 40], [40, 200, 60], [50, 70, 230]];

/// Draw frame `i`: a smooth background, the shapes, and the frame number code.
pub fn draw_frame(i: u64, out: &mut [u8]) {
    for y in 0..H {
        for x in 0..W {
            let p = ((y * W + x) * 3) as usize;
            let g = (60 + (x * 80 / W) + (y * 40 / H)) as u8;
            out[p..p + 3].copy_from_slice(&[g, g, g.saturating_add(10)]);
        }
    }
    for (k, c) in COLORS.iter().enumerate() {
        let m = shape_mask(k, i);
        for (idx, &v) in m.data.iter().enumerate() {
            if v != 0 {
                out[idx * 3..idx * 3 + 3].copy_from_slice(c);
            }
        }
    }
    for b in 0..CODE_BITS {
        let v = if (i >> b) & 1 == 1 { 255 } else { 0 };
        for y in 0..BLOCK {
            for x in b * BLOCK..(b + 1) * BLOCK {
                let p = ((y * W + x) * 3) as usize;
                out[p..p + 3].copy_from_slice(&[v, v, v]);
            }
        }
    }
}

/// Read the frame number drawn by [`draw_frame`] (robust to codec noise).
pub fn read_code(img: &ImageView<'_>) -> u64 {
    let mut n = 0u64;
    for b in 0..CODE_BITS {
        let (x, y) = (b * BLOCK + BLOCK / 2, BLOCK / 2);
        let p = y as usize * img.stride + x as usize * 3;
        if img.data[p] > 128 {
            n |= 1 << b;
        }
    }
    n
}

/// Write the synthetic clip (`frames` frames at 25 fps) with the library's appsrc encoder.
pub fn write_clip(path: &Path, frames: u64) {
    let info = VideoInfo { width: W, height: H, fps: Some((25, 1)), duration: None, live: false, uri: String::new() };
    let mut sink = VideoSink::create(path, &info, &SinkConfig::default()).expect("encoder");
    let mut data = vec![0u8; (W * H * 3) as usize];
    for i in 0..frames {
        draw_frame(i, &mut data);
        let frame = Frame {
            index: i,
            pts: Some(Duration::from_millis(40 * i)),
            duration: Some(Duration::from_millis(40)),
            width: W,
            height: H,
            data: std::mem::take(&mut data),
        };
        sink.push(&frame).expect("push");
        data = frame.data;
    }
    assert_eq!(sink.finish().expect("finish"), frames);
}

/// Decode a whole video into frames.
pub fn decode_all(path: &Path) -> (VideoInfo, Vec<Frame>) {
    let mut src = VideoSource::open(path.to_str().unwrap(), &SourceConfig::default()).expect("open");
    let info = src.info().clone();
    let pool = FramePool::new(2);
    let stop = AtomicBool::new(false);
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame(&pool, &stop).expect("decode") {
        frames.push(f);
    }
    (info, frames)
}

/// Returns the known masks of the frame whose number is drawn in the image; records the
/// frame numbers it saw. Detection order is reversed on odd frames, so IDs cannot come from order.
pub struct ScriptedSegmenter {
    pub seen: Arc<Mutex<Vec<u64>>>,
}

pub fn detections_for(i: u64) -> Vec<Detection> {
    let mut dets: Vec<Detection> = (0..3)
        .map(|k| {
            let roi = RoiBitmap::from_full(&shape_mask(k, i));
            let r = roi.rect;
            Detection {
                bbox: BBox::new(r.x as f32, r.y as f32, r.right() as f32, r.bottom() as f32),
                score: 0.9,
                class_id: 0,
                mask: Some(Mask::from_roi(roi)),
            }
        })
        .collect();
    if i % 2 == 1 {
        dets.reverse();
    }
    dets
}

impl Segmenter for ScriptedSegmenter {
    fn segment(&mut self, image: ImageView<'_>) -> Result<Vec<Detection>, fastsam_track::model::ModelError> {
        let i = read_code(&image);
        self.seen.lock().unwrap().push(i);
        Ok(detections_for(i))
    }
    fn describe(&self) -> String {
        "scripted".into()
    }
}

/// Which shape (0..3) a box belongs to in frame `i` (best IoU, must exceed `min_iou`).
pub fn shape_of(b: &BBox, i: u64, min_iou: f32) -> Option<usize> {
    (0..3)
        .map(|k| {
            let r = RoiBitmap::from_full(&shape_mask(k, i)).rect;
            (k, b.iou(&BBox::new(r.x as f32, r.y as f32, r.right() as f32, r.bottom() as f32)))
        })
        .filter(|(_, v)| *v >= min_iou)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

/// Parse a MOTChallenge file into (frame, id, box).
pub fn read_mot(path: &Path) -> Vec<(u64, u64, BBox)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|s| s.parse().unwrap()).collect();
            (v[0] as u64, v[1] as u64, BBox::from_xywh(v[2] as f32, v[3] as f32, v[4] as f32, v[5] as f32))
        })
        .collect()
}

/// Parse the JSON Lines track file.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Scripted detections for real footage: two ellipses moving along fixed paths, keyed by the
/// call count (file input never drops frames, so call `n` is frame `n`).
pub struct PathSegmenter {
    pub w: u32,
    pub h: u32,
    pub calls: u64,
}

pub fn path_masks(w: u32, h: u32, i: u64) -> Vec<Bitmap> {
    let f = i as f32;
    let (wf, hf) = (w as f32, h as f32);
    let centres = [
        (0.2 * wf + (f * 1.5) % (0.6 * wf), 0.4 * hf, 0.08 * wf, 0.12 * hf),
        (0.7 * wf, 0.3 * hf + (f * 0.7) % (0.4 * hf), 0.06 * wf, 0.1 * hf),
    ];
    centres
        .iter()
        .map(|&(cx, cy, rx, ry)| {
            let mut bm = Bitmap::zeros(w, h);
            for y in 0..h {
                for x in 0..w {
                    let (dx, dy) = ((x as f32 + 0.5 - cx) / rx, (y as f32 + 0.5 - cy) / ry);
                    if dx * dx + dy * dy <= 1.0 {
                        bm.data[(y * w + x) as usize] = 1;
                    }
                }
            }
            bm
        })
        .collect()
}

impl Segmenter for PathSegmenter {
    fn segment(&mut self, image: ImageView<'_>) -> Result<Vec<Detection>, fastsam_track::model::ModelError> {
        assert_eq!((image.width, image.height), (self.w, self.h));
        let i = self.calls;
        self.calls += 1;
        Ok(path_masks(self.w, self.h, i)
            .iter()
            .map(|m| {
                let roi = RoiBitmap::from_full(m);
                let r = roi.rect;
                Detection {
                    bbox: BBox::new(r.x as f32, r.y as f32, r.right() as f32, r.bottom() as f32),
                    score: 0.8,
                    class_id: 0,
                    mask: Some(Mask::from_roi(roi)),
                }
            })
            .collect())
    }
    fn describe(&self) -> String {
        "scripted paths".into()
    }
}

/// Check that the MOT and JSON Lines files describe the same tracks, frame by frame, for a
/// video of `frames` frames whose PTS are `pts`. Returns the number of distinct IDs.
pub fn check_track_files_consistent(mot: &Path, json: &Path, pts: &[Option<Duration>], w: u32, h: u32) -> usize {
    let rows = read_mot(mot);
    let lines = read_jsonl(json);
    assert_eq!(lines.len(), pts.len(), "one JSON line per frame");
    let mut ids = std::collections::HashSet::new();
    let mut n_json_objects = 0;
    for (i, l) in lines.iter().enumerate() {
        let f = i as u64 + 1;
        assert_eq!(l["frame"], f);
        match pts[i] {
            Some(p) => assert!((l["pts"].as_f64().unwrap() - p.as_secs_f64()).abs() < 1e-6, "frame {f} pts"),
            None => assert!(l["pts"].is_null()),
        }
        let objs = l["objects"].as_array().unwrap();
        let mot_rows: Vec<_> = rows.iter().filter(|r| r.0 == f).collect();
        assert_eq!(objs.len(), mot_rows.len(), "frame {f}: MOT and JSON track counts differ");
        for o in objs {
            n_json_objects += 1;
            let id = o["id"].as_u64().unwrap();
            ids.insert(id);
            let b: Vec<f32> = o["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let r = mot_rows.iter().find(|r| r.1 == id).unwrap_or_else(|| panic!("frame {f}: id {id} not in MOT"));
            assert!((r.2.x1 - b[0]).abs() < 0.01 && (r.2.y1 - b[1]).abs() < 0.01, "frame {f} id {id} box");
            assert!((r.2.width() - b[2]).abs() < 0.01 && (r.2.height() - b[3]).abs() < 0.01, "frame {f} id {id} box");
            if !o["rle"].is_null() {
                let rle: fastsam_track::Rle = serde_json::from_value(o["rle"].clone()).unwrap();
                assert_eq!(rle.size, [h, w], "frame {f}: RLE size is the video size");
                rle.to_bitmap().expect("RLE counts sum to h*w");
            }
        }
    }
    assert_eq!(n_json_objects, rows.len(), "MOT has rows for frames not in JSON");
    // Two empty files are trivially consistent: require something to have been tracked.
    assert!(n_json_objects > 0 && !ids.is_empty(), "no tracked object in any frame: nothing was checked");
    ids.len()
}

/// One pipeline run as the main job sets it up (outputs, tracker scaled to the input's rate,
/// optional prompt), for tests that drive the library directly.
#[derive(Default)]
pub struct Job {
    pub output: Option<std::path::PathBuf>,
    pub tracks_mot: Option<std::path::PathBuf>,
    pub tracks_json: Option<std::path::PathBuf>,
    pub tracker: fastsam_track::track::TrackerConfig,
    pub overlay: fastsam_track::overlay::OverlayStyle,
    pub sink: SinkConfig,
    pub prompt: Option<Box<dyn fastsam_track::stream::PromptSelector>>,
    pub pipeline: fastsam_track::video::PipelineConfig,
    /// Record a live input in segments of this length.
    pub segment: Option<Duration>,
}

/// Build the stream (creating the outputs) and run it.
pub fn run_job(
    source: impl fastsam_track::stream::FrameSource<Error = fastsam_track::video::VideoError> + 'static,
    seg: &mut dyn Segmenter,
    job: Job,
    stop: &AtomicBool,
) -> Result<fastsam_track::video::RunReport, fastsam_track::video::VideoError> {
    run_job_progress(source, seg, job, stop, &|_| {})
}

/// [`run_job`], reporting finished frames to `progress`.
pub fn run_job_progress(
    source: impl fastsam_track::stream::FrameSource<Error = fastsam_track::video::VideoError> + 'static,
    seg: &mut dyn Segmenter,
    job: Job,
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<fastsam_track::video::RunReport, fastsam_track::video::VideoError> {
    use fastsam_track::video::job::{StreamOutputs, StreamSetup, build_stream};
    let outputs =
        StreamOutputs { video: job.output, tracks_mot: job.tracks_mot, tracks_json: job.tracks_json, serve_path: None };
    let setup = StreamSetup {
        tracker: &job.tracker,
        overlay: &job.overlay,
        sink: &job.sink,
        segment: job.segment,
        serve: None,
    };
    let stream = build_stream("test".into(), Box::new(source), job.prompt, &outputs, &setup)?;
    fastsam_track::video::pipeline::run(stream, seg, &job.pipeline, stop, progress)
}
/// Write the synthetic clip of `frames` frames with its index first (`faststart`), then cut the
/// file in half: it opens, announces `frames` frames, and breaks mid-stream.
pub fn write_truncated_clip(path: &Path, frames: u64) {
    let full = path.with_extension("full.mp4");
    let tmpl = "appsrc name=src ! videoconvert ! video/x-raw,format=I420 ! x264enc ! h264parse ! \
                mp4mux faststart=true ! filesink location=\"{output}\"";
    let info = VideoInfo { width: W, height: H, fps: Some((25, 1)), duration: None, live: false, uri: String::new() };
    let cfg = SinkConfig { template: tmpl.into(), fallback: None, ..SinkConfig::default() };
    let mut sink = VideoSink::create(&full, &info, &cfg).expect("encoder");
    let mut data = vec![0u8; (W * H * 3) as usize];
    for i in 0..frames {
        draw_frame(i, &mut data);
        let f = Frame {
            index: i,
            pts: Some(Duration::from_millis(40 * i)),
            duration: Some(Duration::from_millis(40)),
            width: W,
            height: H,
            data: std::mem::take(&mut data),
        };
        sink.push(&f).expect("encode");
        data = f.data;
    }
    sink.finish().expect("finish");
    let bytes = std::fs::read(&full).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_file(&full).unwrap();
}
