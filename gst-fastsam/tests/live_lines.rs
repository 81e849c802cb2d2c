//! The live `gst-launch-1.0` lines of `pipelines/`: RTSP → file against a loopback RTSP server
//! (system python3 + gi GstRtspServer; skipped loudly without it), and the leaky-queue live line
//! with a live test source standing in for the camera and a fakesink for the screen.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use fastsam_track::frame::FramePool;
use fastsam_track::video::{SourceConfig, VideoSource};

const SERVER: &str = r#"
import sys, gi
gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address('127.0.0.1'); server.set_service(sys.argv[1])
f = GstRtspServer.RTSPMediaFactory()
f.set_launch('( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 '
             '! x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay name=pay0 pt=96 )')
f.set_shared(True)
server.get_mount_points().add_factory('/test', f)
server.attach(None)
print('ready', flush=True)
GLib.MainLoop().run()
"#;

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn model_props(model: &std::path::Path) -> String {
    format!("model={} imgsz=320 device=cpu", model.display())
}

fn count_frames(path: &std::path::Path) -> u64 {
    let mut src = VideoSource::open(&path.display().to_string(), &SourceConfig::default()).expect("open the output");
    let (pool, stop) = (FramePool::new(4), AtomicBool::new(false));
    let mut n = 0;
    while src.next_frame(&pool, &stop).expect("decode the output").is_some() {
        n += 1;
    }
    n
}

#[test]
fn rtsp_to_file_line_writes_a_playable_mp4() {
    let Some(model) = common::asset(common::MODEL) else { return };
    let have_server = Command::new("/usr/bin/python3")
        .args(["-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_server {
        eprintln!(
            "\n!!!!!!!!!! SKIPPING: /usr/bin/python3 has no gi GstRtspServer (apt gir1.2-gst-rtsp-server-1.0) !!!!!!!!!!\n"
        );
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = KillOnDrop(
        Command::new("/usr/bin/python3")
            .args(["-c", SERVER, &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = [0u8; 5];
    server.0.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cam.mp4");
    let (program, args) = common::pipeline_line(
        "fastsamtrack-rtsp.txt",
        &[
            ("location=rtsp://127.0.0.1:8554/stream", format!("location=rtsp://127.0.0.1:{port}/test")),
            ("location=out.mp4", format!("location={}", out.display())),
            ("model=FastSAM-s", model_props(&model)),
        ],
    );
    let mut child = KillOnDrop(
        Command::new(program)
            .args(&args)
            .env("GST_PLUGIN_PATH", common::plugin_dir())
            .env("GST_REGISTRY", dir.path().join("registry.bin"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Let it run ~4 s of stream after the file appears, then Ctrl-C (-e: EOS, the MP4 is finished).
    let t0 = Instant::now();
    while std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(child.0.try_wait().unwrap().is_none(), "gst-launch-1.0 exited early");
        assert!(t0.elapsed() < Duration::from_secs(60), "no output from the RTSP line");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));
    Command::new("kill").args(["-INT", &child.0.id().to_string()]).status().unwrap();
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "{st:?}: {err}");
    let n = count_frames(&out);
    assert!(n >= 25, "{n} frames in the MP4 after ~4 s of a 25 fps stream");
}

#[test]
fn live_line_with_leaky_queue_runs() {
    let Some(model) = common::asset(common::MODEL) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (program, args) = common::pipeline_line(
        "fastsamtrack-live.txt",
        &[
            (
                "v4l2src",
                "videotestsrc is-live=true num-buffers=100 pattern=ball ! video/x-raw,width=640,height=360,framerate=50/1".into(),
            ),
            ("model=FastSAM-s", model_props(&model)),
            ("autovideosink sync=false", "fakesink name=screen sync=false silent=false".into()),
        ],
    );
    let out = Command::new(program)
        .arg("-v")
        .args(&args)
        .env("GST_PLUGIN_PATH", common::plugin_dir())
        .env("GST_REGISTRY", dir.path().join("registry.bin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let shown = text.lines().filter(|l| l.contains("screen") && l.contains("chain")).count();
    assert!(shown > 0, "frames reached the sink:\n{text}");
    assert!(shown <= 100, "no more frames than the source made ({shown})");
    eprintln!("live line: {shown} of 100 frames shown (the leaky queue dropped the rest)");
}
