//! Live input: frames arriving faster than the segmenter are dropped (appsink drop=true plus
//! `try_send` into the first channel) and counted, instead of queueing without bound; the
//! output still plays (a live `videotestsrc`). A slow model on a loopback RTSP camera keeps the
//! age of what it processes bounded.

use crate::support::rtsp::Camera;
use crate::support::video;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastsam_track::stream::FrameSource;
use fastsam_track::video::job;
use fastsam_track::video::{ReconnectPolicy, SourceConfig, VideoSource};
use fastsam_track::{Detection, ImageView, Segmenter};

/// Takes 40 ms per frame: slower than the 50 fps source.
struct Slow;
impl Segmenter for Slow {
    fn segment(&mut self, _image: ImageView<'_>) -> Result<Vec<Detection>, fastsam_track::model::ModelError> {
        std::thread::sleep(Duration::from_millis(40));
        Ok(Vec::new())
    }
    fn describe(&self) -> String {
        "slow".into()
    }
}

#[test]
fn live_source_drops_and_counts_frames() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.mp4");
    let template = "videotestsrc is-live=true num-buffers=100 ! video/x-raw,width=160,height=120,framerate=50/1 ! \
                    videoconvert ! appsink name=sink";
    // live is detected from the pipeline (no preroll), not forced
    let src_cfg = SourceConfig { template: template.into(), ..SourceConfig::default() };
    let source = VideoSource::open("videotestsrc://", &src_cfg).unwrap();
    assert!(source.info().live);
    let cfg = video::Job {
        pipeline: fastsam_track::video::PipelineConfig { channel_capacity: 2, ..Default::default() },
        output: Some(out.clone()),
        ..video::Job::default()
    };
    let report = video::run_job(source, &mut Slow, cfg, &AtomicBool::new(false)).unwrap();
    eprintln!("{report:?}");
    assert!(report.dropped > 0, "a 40 ms/frame segmenter on a 50 fps live source must drop frames");
    assert_eq!(report.frames + report.dropped, report.frames_decoded);
    assert!(report.frames < 100);
    // The run keeps up with real time instead of processing a backlog: 100 frames at 50 fps last
    // 2 s, in which a 40 ms/frame segmenter finishes at most 50 (plus what the channels hold).
    assert!(report.frames <= 58, "{} frames processed: a backlog was queued instead of dropped", report.frames);
    let (_, frames) = video::decode_all(&out);
    assert_eq!(frames.len() as u64, report.frames_encoded);
    assert_eq!(report.frames_encoded, report.frames);
}

/// Records, for each frame it is given, how old the frame is when its segmentation is done
/// (from the moment the camera pushed it: the frame code drawn into its pixels says which one).
struct Timed {
    pushed: Arc<Mutex<Vec<Instant>>>,
    ages: Arc<Mutex<Vec<(u64, Duration)>>>,
    work: Duration,
}

impl Segmenter for Timed {
    fn segment(&mut self, image: ImageView<'_>) -> Result<Vec<Detection>, fastsam_track::model::ModelError> {
        std::thread::sleep(self.work);
        let code = video::read_code(&image);
        let done = Instant::now();
        let pushed = self.pushed.lock().unwrap();
        // the code counts modulo 4096; the newest push with that code is the frame
        let at = (0..pushed.len()).rev().find(|&n| n as u64 % 4096 == code).map(|n| pushed[n]);
        drop(pushed);
        if let Some(at) = at {
            self.ages.lock().unwrap().push((code, done - at));
        }
        Ok(Vec::new())
    }
    fn describe(&self) -> String {
        "timed".into()
    }
}

#[test]
fn a_slow_model_on_a_live_camera_keeps_latency_bounded() {
    // 25 fps camera, 200 ms per frame: the model sees one frame in five at best.
    let cam = Camera::start(video::W, video::H, 25, Arc::new(|n, out| video::draw_frame(n % 4096, out)));
    let latency = Duration::from_millis(200);
    let work = Duration::from_millis(200);
    let cfg = SourceConfig { latency, ..SourceConfig::default() };
    let source = job::open_source(&cam.url(), &cfg, ReconnectPolicy::default()).unwrap();
    assert!(source.info().live);
    let ages: Arc<Mutex<Vec<(u64, Duration)>>> = Arc::default();
    let mut seg = Timed { pushed: cam.pushed.clone(), ages: ages.clone(), work };
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(8));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let job = video::Job::default();
    let report = video::run_job(source, &mut seg, job, &stop).unwrap();
    stopper.join().unwrap();
    let ages = ages.lock().unwrap().clone();
    let worst = ages.iter().map(|a| a.1).max().unwrap();
    let mean = ages.iter().map(|a| a.1).sum::<Duration>() / ages.len() as u32;
    eprintln!(
        "{} frames processed, {} dropped, frame age at the end of processing: mean {mean:?}, worst {worst:?}",
        report.frames, report.dropped
    );
    // ~8 s at 5 frames/s processed; the rest dropped, and counted
    assert!(report.frames >= 20, "{} frames", report.frames);
    assert!(report.dropped >= 3 * report.frames, "{} dropped for {} processed", report.dropped, report.frames);
    // The bound of the issue: 2 x the processing time plus the configured latency. The first
    // frames are skipped: they include the connection's start-up.
    let bound = 2 * work + latency;
    let steady: Vec<_> = ages.iter().skip(3).collect();
    let over: Vec<_> = steady.iter().filter(|a| a.1 > bound).collect();
    assert!(over.is_empty(), "{} of {} frames older than {bound:?}: {over:?}", over.len(), steady.len());
    // and it does not grow: the last frames are no older than the first ones plus one frame
    let (first, last) =
        (steady[..5].iter().map(|a| a.1).max().unwrap(), steady[steady.len() - 5..].iter().map(|a| a.1).max().unwrap());
    assert!(last <= first + Duration::from_millis(80), "latency grew from {first:?} to {last:?}");
}

#[test]
fn track_ids_continue_across_a_camera_outage() {
    let mut cam = Camera::start(video::W, video::H, 25, Arc::new(|n, out| video::draw_frame(n % 4096, out)));
    let source = job::open_source(&cam.url(), &SourceConfig::default(), ReconnectPolicy::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mot = dir.path().join("t.txt");
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut seg = video::ScriptedSegmenter { seen: seen.clone() };
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let wait = |n: usize| {
                let t0 = Instant::now();
                while seen.lock().unwrap().len() < n {
                    assert!(t0.elapsed() < Duration::from_secs(60), "only {} frames", seen.lock().unwrap().len());
                    std::thread::sleep(Duration::from_millis(20));
                }
            };
            wait(40);
            cam.stop();
            let before = seen.lock().unwrap().len();
            std::thread::sleep(Duration::from_secs(3));
            cam.restart();
            wait(before + 40);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            before
        })
    };
    let job = video::Job { tracks_mot: Some(mot.clone()), ..video::Job::default() };
    let report = video::run_job(source, &mut seg, job, &stop).unwrap();
    let before = driver.join().unwrap();
    assert_eq!(report.reconnects, 1);
    let rows = video::read_mot(&mot);
    let frames_seen = seen.lock().unwrap().clone();
    // the row frames after the outage: the frames processed after `before` of them
    let split = rows.iter().map(|r| r.0).collect::<std::collections::BTreeSet<_>>();
    let split_frame = *split.iter().nth(before.min(split.len() - 1)).unwrap();
    let ids_before: std::collections::BTreeSet<u64> = rows.iter().filter(|r| r.0 < split_frame).map(|r| r.1).collect();
    let ids_after: std::collections::BTreeSet<u64> = rows.iter().filter(|r| r.0 >= split_frame).map(|r| r.1).collect();
    eprintln!("{} frames, ids before {ids_before:?}, after {ids_after:?}", frames_seen.len());
    assert_eq!(ids_before.len(), 3, "three shapes, three tracks");
    assert_eq!(ids_after, ids_before, "the same three IDs after the reconnect");
}
