//! The element in pipelines and harnesses: formats, parity with the CLI's JSON Lines, flush,
//! renegotiation, a bad model.

mod common;

use std::path::Path;
use std::process::Command;

use gst::prelude::*;
use gst_check::Harness;

use common::*;

fn element_desc(model: &Path, extra: &str) -> String {
    format!("fastsamtrack model={} imgsz=320 device=cpu {extra}", model.display())
}

/// Every listed format flows through; pixels are untouched with `draw=false` and changed where
/// tracks are drawn with `draw=true`; timestamps pass through; each buffer carries the tracks.
#[test]
fn buffers_flow_in_every_format() {
    init();
    let (Some(model), Some(clip)) = (asset(MODEL), asset(SYNTH)) else { return };
    const N: usize = 8;
    for format in ["RGB", "RGBA", "RGBx", "BGR", "BGRx", "NV12"] {
        let mut tracks_by_draw = Vec::new();
        for draw in [false, true] {
            // An odd width (322) gives padded rows in the 3-byte formats.
            let desc = format!(
                "filesrc location={} ! decodebin ! videoconvert ! videoscale ! \
                 video/x-raw,format={format},width=322,height=182 ! tee name=t \
                 t. ! queue ! appsink name=raw sync=false \
                 t. ! queue ! {} ! appsink name=out sync=false",
                clip.display(),
                element_desc(&model, &format!("draw={draw}"))
            );
            let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
            let sink = |n| pipeline.by_name(n).unwrap().downcast::<gst_app::AppSink>().unwrap();
            let (raw, out) = (sink("raw"), sink("out"));
            pipeline.set_state(gst::State::Playing).unwrap();
            let mut all_tracks = Vec::new();
            let mut changed_frames = 0;
            for i in 0..N {
                let r = raw.pull_sample().unwrap_or_else(|_| panic!("{format}: no input frame {i}"));
                let o = out.pull_sample().unwrap_or_else(|_| panic!("{format} draw={draw}: no output frame {i}"));
                let caps = o.caps().unwrap().structure(0).unwrap().get::<String>("format").unwrap();
                assert_eq!(caps, format, "same format out");
                let (rb, ob) = (r.buffer().unwrap(), o.buffer().unwrap());
                assert_eq!((rb.pts(), rb.duration()), (ob.pts(), ob.duration()), "{format}: timestamps pass through");
                let t = tracks(ob);
                for tr in &t {
                    assert_eq!(tr.roi_id as u64, tr.id);
                    let (x, y, w, h) = tr.rect;
                    assert!(x + w <= 322 && y + h <= 182, "{format}: ROI {:?} inside the frame", tr.rect);
                    assert_eq!(tr.rle.as_ref().unwrap().0, [182, 322], "mask at frame size");
                }
                let same = rb.map_readable().unwrap().as_slice() == ob.map_readable().unwrap().as_slice();
                if !draw {
                    assert!(same, "{format}: draw=false must leave the pixels untouched (frame {i})");
                } else if !t.is_empty() {
                    assert!(!same, "{format}: draw=true with {} tracks must change pixels (frame {i})", t.len());
                    changed_frames += 1;
                }
                all_tracks.push(t);
            }
            pipeline.set_state(gst::State::Null).unwrap();
            assert!(all_tracks.iter().any(|t| !t.is_empty()), "{format}: no track in {N} frames");
            if draw {
                assert!(changed_frames > 0, "{format}: nothing drawn");
            }
            tracks_by_draw.push(all_tracks);
        }
        assert_eq!(tracks_by_draw[0], tracks_by_draw[1], "{format}: drawing does not change the tracks");
    }
}

/// The ROI metas equal, frame by frame, the CLI's JSON Lines on the same clip and model: IDs,
/// boxes to 1e-3, scores, RLE masks identical, PTS.
#[test]
fn metas_equal_cli_json_lines() {
    init();
    let (Some(model), Some(clip)) = (asset(MODEL), asset(SYNTH)) else { return };
    // The CLI.
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("cli.jsonl");
    let out = Command::new(cli_binary())
        .arg(&clip)
        .args(["--model", &model.display().to_string(), "--imgsz", "320", "--device", "cpu", "--no-video"])
        .arg("--tracks-json")
        .arg(&jsonl)
        .output()
        .unwrap();
    assert!(out.status.success(), "CLI failed: {}", String::from_utf8_lossy(&out.stderr));
    let cli: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();

    // The element, fed the frames the CLI decodes (the library's exact I420 -> RGB).
    let (w, h, fps, frames) = decode(&clip, usize::MAX);
    assert_eq!(frames.len(), 250);
    let element = run_through_appsrc(&element_desc(&model, "draw=false"), &rgb_caps(w, h, fps), &frames);

    assert_eq!(element.len(), cli.len(), "frame count");
    let mut n_tracks = 0;
    let mut ids = std::collections::BTreeSet::new();
    for (i, ((pts, el), js)) in element.iter().zip(&cli).enumerate() {
        assert_eq!(js["frame"].as_u64(), Some(i as u64 + 1));
        let js_pts = js["pts"].as_f64().unwrap();
        assert!((pts.unwrap().nseconds() as f64 / 1e9 - js_pts).abs() < 1e-6, "frame {i}: pts");
        // Interpolated gap fillers exist only in the CLI's files (recorded input, written late).
        let objs: Vec<&serde_json::Value> =
            js["objects"].as_array().unwrap().iter().filter(|o| o["interpolated"] != true).collect();
        assert_eq!(
            el.len(),
            objs.len(),
            "frame {}: track count (element {:?})",
            i + 1,
            el.iter().map(|t| t.id).collect::<Vec<_>>()
        );
        for (t, &o) in el.iter().zip(&objs) {
            assert_eq!(Some(t.id), o["id"].as_u64(), "frame {}: ID", i + 1);
            for (k, (a, b)) in t.bbox.iter().zip(o["bbox"].as_array().unwrap()).enumerate() {
                let b = b.as_f64().unwrap();
                assert!((*a as f64 - b).abs() < 1e-3, "frame {} id {}: bbox[{k}] {a} vs {b}", i + 1, t.id);
            }
            assert!((t.score as f64 - o["score"].as_f64().unwrap()).abs() < 1e-6, "frame {}: score", i + 1);
            assert_eq!(Some(t.class_id as u64), o["class_id"].as_u64());
            let (size, counts) = t.rle.clone().expect("mask");
            let rle = &o["rle"];
            let jsize: Vec<u32> = rle["size"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let jcounts: Vec<u32> =
                rle["counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            assert_eq!(size.to_vec(), jsize, "frame {}: RLE size", i + 1);
            assert!(counts == jcounts, "frame {} id {}: RLE counts differ", i + 1, t.id);
            n_tracks += 1;
            ids.insert(t.id);
        }
    }
    eprintln!("{} frames, {n_tracks} track boxes, {} IDs: identical to the CLI", element.len(), ids.len());
    assert!(n_tracks > 100 && ids.len() > 1, "a comparison needs tracks ({n_tracks} boxes, {} IDs)", ids.len());
}

fn harness(model: &Path) -> Harness {
    let mut h = Harness::new_parse(&element_desc(model, "draw=false"));
    h.play();
    h
}

fn push_pull(h: &mut Harness, frames: &[RgbFrame]) -> Vec<Vec<Track>> {
    frames
        .iter()
        .map(|f| {
            h.push(rgb_buffer(f)).expect("push");
            let b = h.pull().expect("pull");
            assert_eq!(b.pts(), f.pts, "timestamps pass through");
            tracks(&b)
        })
        .collect()
}

fn ids(run: &[Vec<Track>]) -> Vec<Vec<u64>> {
    run.iter().map(|t| t.iter().map(|t| t.id).collect()).collect()
}

/// A flush resets the tracker: the same frames after a flush give the same IDs again (not new
/// ones continuing the count).
#[test]
fn flush_resets_track_ids() {
    init();
    let (Some(model), Some(clip)) = (asset(MODEL), asset(SYNTH)) else { return };
    let (w, h, fps, frames) = decode(&clip, 20);
    let mut hs = harness(&model);
    hs.set_src_caps(rgb_caps(w, h, fps));
    let first = push_pull(&mut hs, &frames);
    let again_without_flush = push_pull(&mut hs, &frames[..1]);
    assert!(hs.push_event(gst::event::FlushStart::new()));
    assert!(hs.push_event(gst::event::FlushStop::new(true)));
    assert!(hs.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())));
    let second = push_pull(&mut hs, &frames);
    let max_first = ids(&first).into_iter().flatten().max().expect("tracks in 20 frames");
    assert!(max_first >= 1);
    assert_eq!(ids(&first), ids(&second), "after a flush the IDs start over");
    assert_eq!(first, second, "after a flush the whole result repeats");
    // Without the flush the tracker goes on (a jump back in time loses or renumbers tracks).
    assert_ne!(ids(&first[..1]), ids(&again_without_flush), "control: no reset without a flush");
}

/// Caps renegotiation to another resolution: buffers keep flowing, boxes and masks follow the
/// new size, and the tracker starts over.
#[test]
fn renegotiation_to_another_resolution() {
    init();
    let (Some(model), Some(a), Some(b)) = (asset(MODEL), asset(SYNTH), asset(BIKES)) else { return };
    let (wa, ha, fa, fr_a) = decode(&a, 6);
    let (wb, hb, fb, fr_b) = decode(&b, 6);
    assert_ne!((wa, ha), (wb, hb));
    let mut hs = harness(&model);
    hs.set_src_caps(rgb_caps(wa, ha, fa));
    let run_a = push_pull(&mut hs, &fr_a);
    hs.set_src_caps(rgb_caps(wb, hb, fb));
    let run_b = push_pull(&mut hs, &fr_b);
    hs.set_src_caps(rgb_caps(wa, ha, fa));
    let run_a2 = push_pull(&mut hs, &fr_a);
    for (run, (w, h)) in [(&run_a, (wa, ha)), (&run_b, (wb, hb)), (&run_a2, (wa, ha))] {
        for t in run.iter().flatten() {
            assert_eq!(t.rle.as_ref().unwrap().0, [h, w], "mask at the negotiated size");
            assert!(t.rect.0 + t.rect.2 <= w && t.rect.1 + t.rect.3 <= h);
        }
    }
    assert!(run_a.iter().any(|t| !t.is_empty()), "tracks before renegotiation");
    assert_eq!(run_a, run_a2, "back at the first size, the tracker started over");
}

/// A model that does not exist, or is not a model, is an element error on the bus naming the
/// path and the reason; the state change fails, nothing crashes.
#[test]
fn bad_model_is_an_element_error() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let not_onnx = dir.path().join("not-a-model.onnx");
    std::fs::write(&not_onnx, b"this is not ONNX").unwrap();
    let missing = dir.path().join("missing.onnx");
    for (path, reason) in [(&missing, "not found"), (&not_onnx, "not a valid ONNX model")] {
        let desc = format!(
            "videotestsrc num-buffers=3 ! video/x-raw,format=RGB ! fastsamtrack name=f model={} device=cpu ! fakesink",
            path.display()
        );
        let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
        let res = pipeline.set_state(gst::State::Playing);
        let bus = pipeline.bus().unwrap();
        let msg = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
            .expect("an error message on the bus");
        let gst::MessageView::Error(e) = msg.view() else { unreachable!() };
        let text = e.error().to_string();
        assert_eq!(msg.src().map(|s| s.name().to_string()).as_deref(), Some("f"), "posted by the element");
        assert!(text.contains(&path.display().to_string()), "names the path: {text}");
        assert!(text.to_lowercase().contains(&reason.to_lowercase()), "says why ({reason}): {text}");
        assert!(res.is_err() || pipeline.state(gst::ClockTime::from_seconds(5)).0.is_err());
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
