//! The full pipeline (decode → segment → track → draw → encode + track files) on a synthetic clip
//! of moving shapes with known masks, driven by a scripted segmenter. Checks that track IDs persist
//! through every stage, that the output keeps the frame count and timing, and that the overlay
//! changes the picture exactly where the masks are.

use crate::support::video;
use crate::support::video::*;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use fastsam_track::Rle;
use fastsam_track::overlay::OverlayStyle;
use fastsam_track::video::{NullSegmenter, SourceConfig, VideoSource};

const N: u64 = 60;

/// Pixels within `r` of `m` (a square dilation).
fn dilate(m: &fastsam_track::Bitmap, r: i32) -> Vec<bool> {
    let (w, h) = (m.width as i32, m.height as i32);
    let mut out = vec![false; m.data.len()];
    for y in 0..h {
        for x in 0..w {
            if m.data[(y * w + x) as usize] == 0 {
                continue;
            }
            for yy in (y - r).max(0)..=(y + r).min(h - 1) {
                for xx in (x - r).max(0)..=(x + r).min(w - 1) {
                    out[(yy * w + xx) as usize] = true;
                }
            }
        }
    }
    out
}

#[test]
fn ids_persist_through_the_whole_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shapes.mp4");
    let output = dir.path().join("shapes.tracked.mp4");
    let (mot, json) = (dir.path().join("t.txt"), dir.path().join("t.jsonl"));
    write_clip(&input, N);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut seg = Box::new(ScriptedSegmenter { seen: seen.clone() });
    let source = VideoSource::open(input.to_str().unwrap(), &SourceConfig::default()).unwrap();
    let cfg = video::Job {
        pipeline: fastsam_track::video::PipelineConfig { channel_capacity: 2, ..Default::default() },
        // labels are drawn outside masks by the real overlay; this test checks mask pixels only
        overlay: OverlayStyle { show_labels: false, ..OverlayStyle::default() },
        output: Some(output.clone()),
        tracks_mot: Some(mot.clone()),
        tracks_json: Some(json.clone()),
        ..video::Job::default()
    };
    let stop = AtomicBool::new(false);
    let report = video::run_job(source, &mut *seg, cfg, &stop).unwrap();

    // Every frame decoded in order, none dropped.
    assert_eq!(*seen.lock().unwrap(), (0..N).collect::<Vec<_>>());
    assert_eq!((report.frames, report.frames_encoded, report.dropped), (N, N, 0));
    assert_eq!(report.tracks, 3);
    assert!(!report.interrupted && report.input_error.is_none());
    assert!(report.steady_fps > 0.0 && report.mean_fps() > 0.0);
    // Buffers recycled: bounded by what can be in flight, not by the frame count.
    assert!(report.buffer_allocations < 20, "allocated {} frame buffers for {N} frames", report.buffer_allocations);

    // MOT: 3 tracks per frame, each ID always on the same shape.
    let rows = read_mot(&mot);
    assert_eq!(rows.len() as u64, 3 * N);
    let mut id_to_shape: HashMap<u64, usize> = HashMap::new();
    for (f, id, b) in &rows {
        let k = shape_of(b, f - 1, 0.7).unwrap_or_else(|| panic!("frame {f}: box {b:?} of id {id} matches no shape"));
        assert_eq!(*id_to_shape.entry(*id).or_insert(k), k, "id {id} jumped to shape {k} at frame {f}");
    }
    assert_eq!(id_to_shape.len(), 3);

    // JSON Lines: same IDs and boxes as MOT, masks exactly the known ones, PTS of the input.
    let (in_info, in_frames) = decode_all(&input);
    // Decoding gives back what was drawn, up to codec noise and without a level shift.
    let mut drawn = vec![0u8; (W * H * 3) as usize];
    for f in in_frames.iter().step_by(10) {
        draw_frame(read_code(&f.view()), &mut drawn);
        let n = drawn.len() as f64;
        let bias: f64 = drawn.iter().zip(&f.data).map(|(a, b)| *b as f64 - *a as f64).sum::<f64>() / n;
        let mad: f64 = drawn.iter().zip(&f.data).map(|(a, b)| (*b as f64 - *a as f64).abs()).sum::<f64>() / n;
        assert!(
            bias.abs() < 0.5 && mad < 3.0,
            "frame {}: decoded vs drawn: bias {bias:.2}, mean abs {mad:.2}",
            f.index
        );
    }
    let lines = read_jsonl(&json);
    assert_eq!(lines.len() as u64, N);
    for (i, l) in lines.iter().enumerate() {
        let f = i as u64 + 1;
        assert_eq!(l["frame"], f);
        let pts = l["pts"].as_f64().unwrap();
        let in_pts = in_frames[i].pts.unwrap().as_secs_f64();
        assert!((pts - in_pts).abs() < 1e-6, "frame {f}: pts {pts} vs input {in_pts}");
        if i > 0 {
            assert!((pts - lines[i - 1]["pts"].as_f64().unwrap() - 0.04).abs() < 1e-3, "frame {f}: 25 fps spacing");
        }
        let objs = l["objects"].as_array().unwrap();
        assert_eq!(objs.len(), 3);
        for o in objs {
            let id = o["id"].as_u64().unwrap();
            let b: Vec<f32> = o["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let mot_row = rows.iter().find(|r| r.0 == f && r.1 == id).expect("JSON track missing from MOT");
            let mb = mot_row.2;
            assert!((mb.x1 - b[0]).abs() < 0.01 && (mb.width() - b[2]).abs() < 0.01, "frame {f} id {id}");
            let rle: Rle = serde_json::from_value(o["rle"].clone()).unwrap();
            let k = id_to_shape[&id];
            assert_eq!(rle.to_bitmap().unwrap(), shape_mask(k, i as u64), "frame {f}: mask of id {id}");
        }
    }

    // Output video: same frame count and timing as the input.
    let (out_info, out_frames) = decode_all(&output);
    assert_eq!(in_frames.len() as u64, N);
    assert_eq!(out_frames.len(), in_frames.len());
    assert_eq!(out_info.fps, in_info.fps);
    // Timestamps relative to the first frame (mp4mux starts at 0 unless B-frames shift it).
    let rel_pts = |fr: &[fastsam_track::video::Frame], i: usize| fr[i].pts.unwrap() - fr[0].pts.unwrap();
    for i in 0..in_frames.len() {
        assert!(rel_pts(&in_frames, i).abs_diff(rel_pts(&out_frames, i)).as_secs_f64() < 1e-3, "frame {i} pts");
    }
    let dur = |fr: &[fastsam_track::video::Frame]| {
        let last = fr.last().unwrap();
        last.pts.unwrap() + last.duration.unwrap() - fr[0].pts.unwrap()
    };
    assert_eq!(dur(&out_frames), dur(&in_frames));

    // The overlay changes the picture inside the masks, and only there (codec noise aside); the
    // colour drawn on each shape is the same in every frame (its ID, hence colour, never changes).
    // Reference: the same pipeline with a segmenter that finds nothing, so both went through the
    // same decode/encode steps and differ only by the overlay (and codec noise).
    let plain = dir.path().join("plain.mp4");
    let source = VideoSource::open(input.to_str().unwrap(), &SourceConfig::default()).unwrap();
    let cfg = video::Job { output: Some(plain.clone()), ..video::Job::default() };
    let r = video::run_job(source, &mut NullSegmenter, cfg, &stop).unwrap();
    assert_eq!(r.tracks, 0);
    let (_, ref_frames) = decode_all(&plain);
    assert_eq!(ref_frames.len() as u64, N);
    let mut shape_colour: Vec<Vec<[f64; 3]>> = vec![Vec::new(); 3];
    for (i, (a, b)) in ref_frames.iter().zip(&out_frames).enumerate() {
        assert_eq!(read_code(&b.view()), i as u64, "output frame order");
        let masks: Vec<_> = (0..3).map(|k| shape_mask(k, i as u64)).collect();
        let near: Vec<Vec<bool>> = masks.iter().map(|m| dilate(m, 3)).collect();
        let (mut din, mut nin, mut dout, mut nout) = (0f64, 0u64, 0f64, 0u64);
        for p in 0..(W * H) as usize {
            let y = p as u32 / W;
            if y < 8 {
                continue; // the frame-number code
            }
            let d: f64 = (0..3).map(|c| (a.data[p * 3 + c] as f64 - b.data[p * 3 + c] as f64).abs()).sum::<f64>() / 3.0;
            if masks.iter().any(|m| m.data[p] != 0) {
                // interior only (contours are drawn on the border)
                let interior = masks.iter().any(|m| {
                    let (x, y) = (p as i64 % W as i64, p as i64 / W as i64);
                    [(-3, 0), (3, 0), (0, -3), (0, 3)].iter().all(|(dx, dy)| {
                        let (xx, yy) = (x + dx, y + dy);
                        xx >= 0
                            && yy >= 0
                            && xx < W as i64
                            && yy < H as i64
                            && m.data[(yy * W as i64 + xx) as usize] != 0
                    })
                });
                if interior {
                    din += d;
                    nin += 1;
                }
            } else if !near.iter().any(|n| n[p]) {
                dout += d;
                nout += 1;
            }
        }
        let (mi, mo) = (din / nin as f64, dout / nout as f64);
        if i % 20 == 0 {
            eprintln!("frame {i}: mean abs diff inside masks {mi:.2}, outside {mo:.2}");
        }
        assert!(mi > 15.0, "frame {i}: mean diff inside masks only {mi:.2}");
        assert!(mo < 1.5, "frame {i}: mean diff outside masks {mo:.2}");
        for (k, m) in masks.iter().enumerate() {
            let mut sum = [0f64; 3];
            let mut n = 0f64;
            for (p, &v) in m.data.iter().enumerate() {
                if v != 0 {
                    for (c, acc) in sum.iter_mut().enumerate() {
                        *acc += b.data[p * 3 + c] as f64;
                    }
                    n += 1.0;
                }
            }
            shape_colour[k].push(sum.map(|s| s / n));
        }
    }
    for (k, cs) in shape_colour.iter().enumerate() {
        let first = cs[0];
        for (i, c) in cs.iter().enumerate() {
            let d = (0..3).map(|j| (c[j] - first[j]).abs()).fold(0.0, f64::max);
            assert!(d < 12.0, "shape {k}: overlay colour changed at frame {i}: {c:?} vs {first:?}");
        }
    }
}

#[test]
fn prompt_on_first_frame_selects_the_followed_tracks() {
    use fastsam_track::model::prompt::Prompt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shapes.mp4");
    let (mot, json, output) = (dir.path().join("p.txt"), dir.path().join("p.jsonl"), dir.path().join("p.mp4"));
    write_clip(&input, 30);
    // a point on the disc (shape 1) in frame 0: centre (280, 120)
    let prompt = Prompt::Points(vec![(280.0, 120.0, true)]);
    let selector: Box<dyn fastsam_track::stream::PromptSelector> = Box::new(prompt);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let source = VideoSource::open(input.to_str().unwrap(), &SourceConfig::default()).unwrap();
    let cfg = video::Job {
        output: Some(output.clone()),
        tracks_mot: Some(mot.clone()),
        tracks_json: Some(json.clone()),
        prompt: Some(selector),
        overlay: OverlayStyle { show_labels: false, ..OverlayStyle::default() },
        ..video::Job::default()
    };
    let report = video::run_job(source, &mut ScriptedSegmenter { seen }, cfg, &AtomicBool::new(false)).unwrap();
    let seeded = report.seeded_tracks.clone().expect("prompt ran");
    assert_eq!(seeded.len(), 1);
    assert_eq!(report.tracks, 1);
    // only the followed ID, on the disc, in every frame of both files
    let rows = read_mot(&mot);
    assert_eq!(rows.len(), 30);
    for (f, id, b) in &rows {
        assert_eq!(*id, seeded[0]);
        assert_eq!(shape_of(b, f - 1, 0.7), Some(1), "frame {f}");
    }
    for l in read_jsonl(&json) {
        let objs = l["objects"].as_array().unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0]["id"].as_u64().unwrap(), seeded[0]);
    }
    // the overlay is drawn on the disc only: the other shapes look as in a plain re-encode
    let plain = dir.path().join("plain.mp4");
    let source = VideoSource::open(input.to_str().unwrap(), &SourceConfig::default()).unwrap();
    let cfg = video::Job { output: Some(plain.clone()), ..video::Job::default() };
    video::run_job(source, &mut NullSegmenter, cfg, &AtomicBool::new(false)).unwrap();
    let (_, a) = decode_all(&plain);
    let (_, b) = decode_all(&output);
    for i in [0usize, 15, 29] {
        let mean_diff = |k: usize| {
            let m = shape_mask(k, i as u64);
            let (mut d, mut n) = (0f64, 0f64);
            for (p, &v) in m.data.iter().enumerate() {
                if v != 0 {
                    d += (0..3).map(|c| (a[i].data[p * 3 + c] as f64 - b[i].data[p * 3 + c] as f64).abs()).sum::<f64>();
                    n += 3.0;
                }
            }
            d / n
        };
        assert!(mean_diff(1) > 15.0, "frame {i}: followed disc not drawn");
        assert!(mean_diff(0) < 1.5 && mean_diff(2) < 1.5, "frame {i}: unfollowed shapes drawn");
    }
}
