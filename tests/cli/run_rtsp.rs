//! `fastsam-track rtsp://…` against a loopback RTSP server (system python3 + gi GstRtspServer):
//! the stream is detected as live, frames flow, and Ctrl-C leaves a playable MP4 and complete
//! track files. Skipped (loudly) when the system python has no GstRtspServer bindings.

use crate::support::video;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn have_rtsp_server() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn rtsp_stream_is_live_and_stops_cleanly() {
    if !have_rtsp_server() {
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
            .expect("start the RTSP server"),
    );
    let mut ready = [0u8; 5];
    server.0.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready");

    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("cam.mp4"), dir.path().join("t.jsonl"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
        .arg(format!("rtsp://127.0.0.1:{port}/test"))
        .args(["--null-model", "-o"])
        .arg(&out)
        .arg("--tracks-json")
        .arg(&json)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait for the first flush of the track file (50 frames = 2 s of stream); it is written to
    // t.jsonl.partial and renamed to t.jsonl when the run finishes
    let t0 = Instant::now();
    let partial = dir.path().join("t.jsonl.partial");
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) == 0 {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("exited early {st:?}: {err}");
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no frames from the RTSP stream");
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "{st:?}: {err}");
    assert!(err.contains("320x240, 25.00 fps, live"), "detected as live: {err}");
    assert!(err.contains("interrupted after"), "{err}");
    let (info, frames) = video::decode_all(&out);
    assert_eq!((info.width, info.height), (320, 240));
    assert!(frames.len() >= 50, "{} frames", frames.len());
    let lines = video::read_jsonl(&json);
    assert_eq!(lines.len(), frames.len(), "one JSON line per encoded frame (no drops with a null model)");
}
