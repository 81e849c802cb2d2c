//! A tracker-tuning harness (not a check): runs FastSAM-n-synth once per synthetic clip at a low
//! detector threshold, keeps the detections in memory, then replays the tracker with each
//! configuration listed in `$FASTSAM_TUNE` and prints MOTA / IDF1 / HOTA / IDs / FP / FN per clip.
//!
//! Each line of the file is `name; conf=0.4; key=value; [dedup]key=value ...` where keys are
//! `TrackerConfig` TOML keys (`dedup.mask_iou` for the `[dedup]` table) and `conf` is the
//! detector threshold applied before the tracker (filtering after NMS equals running NMS on the
//! filtered set, since a box is only ever suppressed by a higher-scoring one).
//!
//! `FASTSAM_TUNE=cfgs.txt cargo test --release --test pipeline tune:: -- --ignored --nocapture`

use crate::support::assets;
use crate::support::video;

use fastsam_track::model::{Device, FastSam, ModelOptions};
use fastsam_track::track::{ByteTracker, TrackerConfig};
use fastsam_track::types::{Detection, Segmenter};

fn apply(cfg: &TrackerConfig, overrides: &[(String, String)]) -> TrackerConfig {
    let mut v = toml::Value::try_from(cfg).unwrap();
    for (k, val) in overrides {
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("x = {val}"))
            .map(|t| t["x"].clone())
            .unwrap_or_else(|_| toml::Value::String(val.clone()));
        let mut t = v.as_table_mut().unwrap();
        let parts: Vec<&str> = k.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            t = t.get_mut(*p).unwrap().as_table_mut().unwrap();
        }
        assert!(t.contains_key(*parts.last().unwrap()), "unknown key {k}");
        t.insert(parts.last().unwrap().to_string(), parsed);
    }
    v.try_into().unwrap()
}

#[test]
#[ignore = "tuning harness: FASTSAM_TUNE=cfgs.txt"]
fn tune() {
    let Ok(list) = std::env::var("FASTSAM_TUNE") else {
        eprintln!("set FASTSAM_TUNE");
        return;
    };
    let Some(model) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let text = std::fs::read_to_string(list).unwrap();
    let mut configs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut parts = line.split(';').map(str::trim);
        let name = parts.next().unwrap().to_string();
        let mut conf = 0.4f32;
        let mut boxsrc = String::from("kalman");
        let mut ov = Vec::new();
        for p in parts.filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').unwrap();
            if k.trim() == "conf" {
                conf = v.trim().parse().unwrap();
            } else if k.trim() == "box" {
                boxsrc = v.trim().to_string();
            } else {
                ov.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        configs.push((name, conf, ov, boxsrc));
    }
    let min_conf = configs.iter().map(|c| c.1).fold(1.0f32, f32::min);
    let base = TrackerConfig::product().unwrap();
    let mut totals = vec![Vec::new(); configs.len()];
    for clip in ["a", "c", "d"] {
        let name = format!("synth_track_{clip}");
        let video_p = assets::require(&format!("assets/synth/{name}.mp4")).unwrap();
        let gt =
            fastsam_track::eval::read_mot(&assets::require(&format!("assets/synth/{name}/gt.txt")).unwrap()).unwrap();
        let (info, frames) = video::decode_all(&video_p);
        let opts = ModelOptions { imgsz: Some(320), conf: min_conf, device: Device::Cpu, ..ModelOptions::default() };
        let mut seg = FastSam::load(&model, opts).unwrap();
        let dets: Vec<Vec<Detection>> = frames.iter().map(|f| seg.segment(f.view()).unwrap()).collect();
        if let Ok(dir) = std::env::var("FASTSAM_TUNE_DUMP") {
            let mut text = String::new();
            for (i, d) in dets.iter().enumerate() {
                for x in d {
                    let b = x.bbox;
                    text += &format!(
                        "{},-1,{:.2},{:.2},{:.2},{:.2},{:.4}\n",
                        i + 1,
                        b.x1,
                        b.y1,
                        b.x2 - b.x1,
                        b.y2 - b.y1,
                        x.score
                    );
                }
            }
            std::fs::write(format!("{dir}/{clip}_dets.txt"), text).unwrap();
        }
        for (ci, (cname, conf, ov, boxsrc)) in configs.iter().enumerate() {
            let mut cfg = apply(&base, ov);
            if let Some((n, d)) = info.fps {
                cfg.frame_rate = n as f64 / d as f64;
            }
            let mut filler = fastsam_track::export::GapFiller::new(cfg.interpolation_frames());
            let mut ready = Vec::new();
            let mut tr = ByteTracker::new(cfg);
            let mut rows = Vec::new();
            for (i, d) in dets.iter().enumerate() {
                let kept: Vec<Detection> = d.iter().filter(|x| x.score >= *conf).cloned().collect();
                let mut out = Vec::new();
                tr.update_with_image(&kept, Some(frames[i].view()), &mut out);
                let r = |x: f32| (x as f64 * 100.0).round() / 100.0;
                let mut objs = Vec::new();
                for t in out {
                    let d = &kept[t.det_index];
                    let b = match boxsrc.as_str() {
                        "det" => d.bbox,
                        "mask" => d
                            .mask
                            .as_ref()
                            .and_then(|m| m.roi().tight_rect())
                            .map(|r| fastsam_track::BBox {
                                x1: r.x as f32,
                                y1: r.y as f32,
                                x2: (r.x + r.w) as f32,
                                y2: (r.y + r.h) as f32,
                            })
                            .unwrap_or(t.bbox),
                        _ => t.bbox,
                    };
                    objs.push(fastsam_track::export::ExportObject::new(t.track_id, &b, t.score, 0, None));
                }
                filler.push(i as u64 + 1, None, &objs, &mut ready);
                if i + 1 == dets.len() {
                    filler.drain(&mut ready);
                }
                for h in ready.drain(..) {
                    for o in &h.objects {
                        let [x, y, w, h2] = o.bbox;
                        rows.push(fastsam_track::eval::MotRow {
                            frame: h.frame as i64,
                            id: o.id as i64,
                            x: r(x),
                            y: r(y),
                            w: r(w),
                            h: r(h2),
                            conf: o.score as f64,
                        });
                    }
                }
            }
            if let Ok(dir) = std::env::var("FASTSAM_TUNE_DUMP") {
                let text = fastsam_track::eval::io::format_mot(&rows);
                std::fs::write(format!("{dir}/{clip}_{cname}.txt"), text).unwrap();
            }
            let m = fastsam_track::eval::evaluate(&gt, &rows, 0.5).unwrap();
            let h = fastsam_track::eval::evaluate_hota(&gt, &rows).unwrap();
            totals[ci].push((m.mota * 100.0, m.idf1 * 100.0));
            eprintln!(
                "TUNE {clip} {cname:<28} MOTA {:5.1} IDF1 {:5.1} HOTA {:5.1} IDs {:3} FP {:4} FN {:4}",
                m.mota * 100.0,
                m.idf1 * 100.0,
                h.hota * 100.0,
                m.num_switches,
                m.num_false_positives,
                m.num_misses
            );
        }
    }
    // best Ultralytics per clip: a 62.8/58.4, c 32.8/48.7, d 16.3/33.5
    let bar = [(62.8, 58.4), (32.8, 48.7), (16.3, 33.5)];
    for (ci, (cname, _, _, _)) in configs.iter().enumerate() {
        let margins: Vec<String> =
            totals[ci].iter().zip(bar).map(|((m, i), (bm, bi))| format!("{:+5.1}/{:+5.1}", m - bm, i - bi)).collect();
        let worst =
            totals[ci].iter().zip(bar).map(|((m, i), (bm, bi))| (m - bm).min(i - bi)).fold(f64::INFINITY, f64::min);
        eprintln!("SUMMARY {cname:<28} a {} c {} d {}  worst {worst:+.1}", margins[0], margins[1], margins[2]);
    }
}
