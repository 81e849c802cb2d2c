//! Live input: frames arriving faster than the segmenter are dropped (appsink drop=true plus
//! `try_send` into the first channel) and counted, instead of queueing without bound; the
//! output still plays. A live `videotestsrc` stands in for an RTSP camera.

use crate::support::video;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use fastsam_track::video::{SourceConfig, VideoSource};
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
