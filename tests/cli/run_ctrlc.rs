//! Interrupting `fastsam-track` mid-run: SIGINT/SIGTERM leave a playable MP4 and complete track
//! files; a second SIGINT aborts at once.

use crate::support::assets;
use crate::support::video;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

fn spawn(input: &Path, dir: &Path) -> (Child, PathBuf, PathBuf, PathBuf) {
    spawn_with(input, dir, &[])
}

fn spawn_with(input: &Path, dir: &Path, extra: &[&str]) -> (Child, PathBuf, PathBuf, PathBuf) {
    let (out, mot, json) = (dir.join("out.mp4"), dir.join("t.txt"), dir.join("t.jsonl"));
    let child = Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
        .arg(input)
        .args(extra)
        .args(["--null-model", "-o"])
        .arg(&out)
        .arg("--tracks-mot")
        .arg(&mot)
        .arg("--tracks-json")
        .arg(&json)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    (child, out, mot, json)
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill").args([sig, &child.id().to_string()]).status().expect("kill");
    assert!(st.success());
}

/// Wait until the run has written some frames (the JSON file is written to `t.jsonl.partial`,
/// flushed every 50 frames, and renamed to `t.jsonl` when the run finishes).
fn wait_started(json: &Path) {
    let t0 = Instant::now();
    let partial = json.with_file_name("t.jsonl.partial");
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the run did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child) -> (ExitStatus, String) {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (st, err);
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("fastsam-track did not exit after the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_stopped_cleanly(sig: &str) {
    let Some(input) = assets::require("assets/video/opencv_vtest_pedestrians_768x576_795f.avi") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, out, mot, json) = spawn(&input, dir.path());
    wait_started(&json);
    signal(&child, sig);
    let (st, err) = wait_exit(&mut child);
    assert!(st.success(), "exit {st:?}: {err}");
    assert!(err.contains("interrupted after"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // The MP4 plays: it decodes to as many frames as were processed, with the input's frame rate.
    let (info, frames) = video::decode_all(&out);
    let n = frames.len();
    assert!((50..795).contains(&n), "{n} frames");
    assert_eq!(info.fps, Some((10, 1)));
    assert!(err.contains(&format!("output: {} ({n} frames)", out.display())), "{err}");
    // Track files cover exactly the processed frames (no torn last line).
    let lines = video::read_jsonl(&json);
    assert_eq!(lines.len(), n);
    assert_eq!(lines.last().unwrap()["frame"], n as u64);
    assert!(std::fs::read_to_string(&mot).is_ok());
}

#[test]
fn sigint_finishes_the_mp4_and_track_files() {
    check_stopped_cleanly("-INT");
}

#[test]
fn sigterm_finishes_the_mp4_and_track_files() {
    check_stopped_cleanly("-TERM");
}

/// Forward the child's stderr, line by line, to a channel (so that a test can wait for a message).
fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Append lines from `rx` to `log` until one contains `needle`.
fn wait_for_line(rx: &Receiver<String>, log: &mut String, needle: &str) {
    let t0 = Instant::now();
    loop {
        let left = Duration::from_secs(60).saturating_sub(t0.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(needle) {
                    return;
                }
            }
            Err(e) => panic!("no stderr line containing {needle:?} ({e:?}); stderr so far:\n{log}"),
        }
    }
}

#[test]
fn second_sigint_aborts() {
    let Some(input) = assets::require("assets/video/opencv_vtest_pedestrians_768x576_795f.avi") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The shipped encoder with a 30 ms pause per frame: the graceful stop then spends a while
    // draining the frames in flight, so that the second signal lands while the first is still
    // finishing the output (instead of racing a run that has already ended).
    let slow_encode = "appsrc name=src ! identity sleep-time=30000 ! videoconvert ! video/x-raw,format=I420 ! \
                       x264enc speed-preset=superfast bframes=0 ! h264parse ! mp4mux ! filesink location=\"{output}\"";
    let (mut child, _out, _mot, json) = spawn_with(&input, dir.path(), &["--encode-pipeline", slow_encode]);
    wait_started(&json);
    let lines = stderr_lines(&mut child);
    let mut err = String::new();
    signal(&child, "-INT");
    // Wait until the first signal has been handled, so that the two cannot merge into one.
    wait_for_line(&lines, &mut err, "stopping: finishing the output file");
    signal(&child, "-INT");
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("fastsam-track did not exit after the second signal; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
        err.push_str(&line);
        err.push('\n');
    }
    // The abort path ran: exit status 130 and its message, after the first signal's message, and
    // the run did not end gracefully.
    assert_eq!(st.code(), Some(130), "the second SIGINT must abort with 130, got {st:?}; stderr:\n{err}");
    let stopping = err.find("stopping: finishing the output file").expect("first signal's message");
    let aborted = err.find("\naborted").expect("\"aborted\" on stderr");
    assert!(stopping < aborted, "\"stopping\" must come before \"aborted\":\n{err}");
    assert!(!err.contains("interrupted after"), "the run ended gracefully instead of aborting:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}
