//! Data safety (issue 8): no subcommand destroys a file the user did not ask it to replace, no
//! wait is unbounded, and errors name the true cause. Every test creates its own files and checks
//! their SHA-256 before and after, not only exit codes.

use crate::support::video as support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fastsam_track::outputs::{OutputCheck, OutputError, Role};
use fastsam_track::video::{FramePool, SinkConfig, SourceConfig, VideoError, VideoInfo, VideoSink, VideoSource};
use sha2::{Digest, Sha256};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("spawn fastsam-track")
}

fn sha(p: &Path) -> String {
    Sha256::digest(std::fs::read(p).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Fails with exit code `code`, no panic, stderr containing every needle.
fn assert_exit(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
    err
}

/// Files in `dir` whose name contains `.partial`.
fn partials(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".partial"))
        .collect()
}

fn det_file(dir: &Path) -> PathBuf {
    let p = dir.join("det.txt");
    let mut s = String::new();
    for f in 1..=20 {
        s += &format!("{f},-1,{},{},40,80,0.9\n{f},-1,300,100,30,60,0.8\n", 10 + 2 * f, 20 + f);
    }
    std::fs::write(&p, s).unwrap();
    p
}

// ---------------------------------------------------------------- the same file by other names

#[test]
fn same_file_through_uri_hard_link_and_symlink_is_a_clash() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("my clip.mp4");
    support::write_clip(&input, 3);
    let before = sha(&input);
    let uri = format!("file://{}", dir.path().join("my%20clip.mp4").display());
    let hard = dir.path().join("hard.mp4");
    std::fs::hard_link(&input, &hard).unwrap();
    let sym = dir.path().join("sym.mp4");
    std::os::unix::fs::symlink(&input, &sym).unwrap();
    for (inp, out) in [(uri.as_str(), &input), (input.to_str().unwrap(), &hard), (input.to_str().unwrap(), &sym)] {
        let e = OutputCheck::new()
            .input(Role::InputVideo, inp)
            .input(Role::Model, "FastSAM-s")
            .output(Role::OutputVideo, out)
            .check()
            .unwrap_err();
        assert!(matches!(e, OutputError::OverwritesInput { .. }) && e.is_usage(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("the output video (-o)") && msg.contains("the input video"), "{msg}");
    }
    // each pair of the main job's output roles
    let roles = [Role::OutputVideo, Role::TracksMot, Role::TracksJson];
    let target = dir.path().join("out.file");
    // the second name is a (dangling: out.file does not exist yet) symlink to the first
    let alias = dir.path().join("alias.file");
    std::os::unix::fs::symlink(&target, &alias).unwrap();
    for (i, a) in roles.iter().enumerate() {
        for b in &roles[i + 1..] {
            let e = OutputCheck::new().output(*a, &target).output(*b, &alias).check();
            assert!(matches!(e, Err(OutputError::SameOutput { .. })), "{a} / {b}: {e:?}");
        }
    }
    assert_eq!(sha(&input), before);
}

#[test]
fn main_job_refuses_every_clash_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("my clip.mp4");
    support::write_clip(&input, 3);
    let uri = format!("file://{}", dir.path().join("my%20clip.mp4").display());
    let hard = dir.path().join("hard.mp4");
    std::fs::hard_link(&input, &hard).unwrap();
    let sym = dir.path().join("sym.mp4");
    std::os::unix::fs::symlink(&input, &sym).unwrap();
    let cfg = dir.path().join("bt.toml");
    std::fs::write(&cfg, "track_buffer = 30\n").unwrap();
    let prev = dir.path().join("previous.txt");
    std::fs::write(&prev, "a previous result\n").unwrap();
    let (inp, hard_s, sym_s, cfg_s, prev_s) = (
        input.to_str().unwrap(),
        hard.to_str().unwrap(),
        sym.to_str().unwrap(),
        cfg.to_str().unwrap(),
        prev.to_str().unwrap(),
    );
    let cases: [(&[&str], &str); 8] = [
        (&[uri.as_str(), "-o", inp], "the output video (-o)"),
        (&[inp, "-o", hard_s], "the output video (-o)"),
        (&[inp, "-o", sym_s], "the output video (-o)"),
        (&[inp, "--no-video", "--tracks-mot", inp], "--tracks-mot"),
        (&[inp, "--no-video", "--tracks-json", hard_s], "--tracks-json"),
        (&[inp, "--tracker", cfg_s, "--no-video", "--tracks-mot", cfg_s], "tracker config"),
        (&[inp, "--no-video", "--tracks-mot", prev_s, "--tracks-json", prev_s], "--tracks-json"),
        (&[inp, "-o", prev_s, "--tracks-mot", prev_s], "--tracks-mot"),
    ];
    let files = [&input, &cfg, &prev];
    let before: Vec<String> = files.iter().map(|f| sha(f)).collect();
    for (args, needle) in cases {
        let mut all = args.to_vec();
        all.push("--null-model");
        let o = run(&all);
        assert_exit(&o, 2, &[needle]);
        let after: Vec<String> = files.iter().map(|f| sha(f)).collect();
        assert_eq!(after, before, "{args:?} changed a file");
        assert!(partials(dir.path()).is_empty(), "{args:?} left a partial file");
    }
}

#[test]
fn track_detections_never_overwrites_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let det = det_file(dir.path());
    let before = sha(&det);
    let hard = dir.path().join("hard.txt");
    std::fs::hard_link(&det, &hard).unwrap();
    let sym = dir.path().join("sym.txt");
    std::os::unix::fs::symlink(&det, &sym).unwrap();
    for out in [&det, &hard, &sym] {
        let o = run(&["track-detections", det.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_exit(&o, 2, &["the track file (-o)", "the detections", "same file"]);
        assert_eq!(sha(&det), before);
    }
    // a tracker config as output is caught too
    let cfg = dir.path().join("bt.toml");
    std::fs::write(&cfg, "track_buffer = 30\n").unwrap();
    let cfg_sha = sha(&cfg);
    let o = run(&[
        "track-detections",
        det.to_str().unwrap(),
        "--tracker",
        cfg.to_str().unwrap(),
        "-o",
        cfg.to_str().unwrap(),
    ]);
    assert_exit(&o, 2, &["the tracker config"]);
    assert_eq!(sha(&cfg), cfg_sha);
    // a normal run replaces an existing result atomically, leaves no partial file
    let res = dir.path().join("tracks.txt");
    std::fs::write(&res, "old\n").unwrap();
    let o = run(&["track-detections", det.to_str().unwrap(), "-o", res.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&res).unwrap().starts_with("1,"));
    assert!(partials(dir.path()).is_empty());
    // empty detections: an error, the previous result untouched
    let res_sha = sha(&res);
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let o = run(&["track-detections", empty.to_str().unwrap(), "-o", res.to_str().unwrap()]);
    assert_exit(&o, 1, &["no detections"]);
    assert_eq!(sha(&res), res_sha);
    // an output directory that does not exist: usage error before anything is read
    let o = run(&["track-detections", det.to_str().unwrap(), "-o", dir.path().join("no/dir/t.txt").to_str().unwrap()]);
    assert_exit(&o, 2, &["does not exist", "mkdir -p"]);
}

#[test]
fn model_convert_refuses_to_overwrite_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("X.pt");
    std::fs::write(&pt, b"PK\x03\x04 not really a checkpoint, never read").unwrap();
    let before = sha(&pt);
    let hard = dir.path().join("Y.onnx");
    std::fs::hard_link(&pt, &hard).unwrap();
    for out in [&pt, &hard] {
        let o = run(&["model", "convert", pt.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_exit(&o, 2, &["the converted model (-o)", "the checkpoint"]);
        assert_eq!(sha(&pt), before);
    }
}

/// A 24-bit BMP (OpenCV reads it) of `w`x`h` grey pixels.
fn write_bmp(path: &Path, w: u32, h: u32) {
    let row = (w * 3).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut b = Vec::new();
    b.extend(b"BM");
    b.extend(size.to_le_bytes());
    b.extend([0u8; 4]);
    b.extend(54u32.to_le_bytes());
    b.extend(40u32.to_le_bytes());
    b.extend(w.to_le_bytes());
    b.extend(h.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(24u16.to_le_bytes());
    b.extend([0u8; 24]);
    b.extend(vec![128u8; (row * h) as usize]);
    std::fs::write(path, b).unwrap();
}

#[test]
fn segment_with_two_same_named_images_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        write_bmp(&dir.path().join(sub).join("x.bmp"), 8, 8);
    }
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("x.json"), "previous").unwrap();
    let before = sha(&out.join("x.json"));
    let (a, b) = (dir.path().join("a/x.bmp"), dir.path().join("b/x.bmp"));
    // --model names a file that does not exist: the clash must be found before the model loads
    let o = run(&[
        "segment",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        dir.path().join("none.onnx").to_str().unwrap(),
    ]);
    assert_exit(&o, 2, &["a/x.bmp", "b/x.bmp", "would both write"]);
    assert_eq!(sha(&out.join("x.json")), before);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

// ---------------------------------------------------------------- failing runs keep existing files

#[test]
fn a_failing_run_keeps_an_existing_output_and_a_symlinked_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.mp4");
    support::write_clip(&input, 10);
    let precious = dir.path().join("precious.mp4");
    std::fs::write(&precious, b"a previous result the user wants to keep").unwrap();
    let link = dir.path().join("link.mp4");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    let before = sha(&precious);
    let bad_tracks = dir.path().join("no/such/dir/t.txt");
    // The track file cannot be created: the run fails after the encoder has started.
    for out in [&precious, &link] {
        let o = run(&[
            input.to_str().unwrap(),
            "--null-model",
            "-o",
            out.to_str().unwrap(),
            "--tracks-mot",
            bad_tracks.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert_eq!(sha(&precious), before, "-o {} was changed by a failed run", out.display());
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(partials(dir.path()).is_empty(), "{:?}", partials(dir.path()));
    }
    // An encoder that fails after 3 frames: -o unchanged, the run ends in seconds.
    let failing = "appsrc name=src ! videoconvert ! video/x-raw,format=I420 ! identity error-after=3 ! \
                   x264enc ! h264parse ! mp4mux ! filesink location=\"{output}\"";
    let t0 = Instant::now();
    let o = run(&[input.to_str().unwrap(), "--null-model", "-o", link.to_str().unwrap(), "--encode-pipeline", failing]);
    assert_exit(&o, 1, &["encode"]);
    assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
    assert_eq!(sha(&precious), before);
}

#[test]
fn encoder_errors_end_the_run_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.mp4");
    support::write_clip(&input, 60);
    let out = dir.path().join("out.mp4");
    // an element that fails mid-stream
    let failing = "appsrc name=src ! videoconvert ! video/x-raw,format=I420 ! identity error-after=10 ! \
                   x264enc ! h264parse ! mp4mux ! filesink location=\"{output}\"";
    let t0 = Instant::now();
    let o = run(&[input.to_str().unwrap(), "--null-model", "-o", out.to_str().unwrap(), "--encode-pipeline", failing]);
    let took = t0.elapsed();
    let err = assert_exit(&o, 1, &["encode"]);
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
    assert!(!out.exists(), "a failed encode must not create -o");
    // an output directory that does not exist: a usage error, before decoding
    let t0 = Instant::now();
    let o = run(&[input.to_str().unwrap(), "--null-model", "-o", dir.path().join("nope/out.mp4").to_str().unwrap()]);
    assert_exit(&o, 2, &["does not exist"]);
    assert!(t0.elapsed() < Duration::from_secs(20));
    // a read-only directory (skipped as root, who may write anyway)
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    if std::fs::File::create(ro.join("probe")).is_err() {
        let o = run(&[input.to_str().unwrap(), "--null-model", "-o", ro.join("out.mp4").to_str().unwrap()]);
        assert_exit(&o, 2, &["not writable"]);
    } else {
        eprintln!("running as root: the read-only directory is writable, case skipped");
    }
    // an encode template without {output}
    let o = run(&[
        input.to_str().unwrap(),
        "--null-model",
        "-o",
        out.to_str().unwrap(),
        "--encode-pipeline",
        "appsrc name=src ! videoconvert ! x264enc ! fakesink",
    ]);
    assert_exit(&o, 1, &["{output}"]);
}

// ---------------------------------------------------------------- odd sizes

#[test]
fn odd_frame_sizes_encode() {
    let dir = tempfile::tempdir().unwrap();
    // An odd-size input (x264 cannot write 4:2:0 at 641x361, so MJPEG in AVI).
    let input = dir.path().join("odd.avi");
    let st = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=10", "!", "video/x-raw,width=641,height=361,framerate=25/1"])
        .args(["!", "jpegenc", "!", "avimux", "!", "filesink"])
        .arg(format!("location={}", input.display()))
        .status();
    match st {
        Ok(s) if s.success() => {}
        other => {
            if std::env::var("FASTSAM_REQUIRE_ASSETS").is_ok_and(|v| v == "1") {
                panic!("gst-launch-1.0 could not make the odd-size input: {other:?}");
            }
            eprintln!("SKIPPED: gst-launch-1.0 could not make the odd-size input: {other:?}");
            return;
        }
    }
    let (info, frames) = support::decode_all(&input);
    assert_eq!((info.width, info.height, frames.len()), (641, 361, 10));
    let out = dir.path().join("odd.tracked.mp4");
    let o = run(&[input.to_str().unwrap(), "--null-model", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (info, frames) = support::decode_all(&out);
    // padded to even (the last column/row repeated), every frame there
    assert_eq!((info.width, info.height, frames.len()), (642, 362, 10));
    // the library sink too
    let out2 = dir.path().join("lib.mp4");
    let vi = VideoInfo { width: 641, height: 361, fps: Some((25, 1)), duration: None, live: false, uri: String::new() };
    let mut sink = VideoSink::create(&out2, &vi, &SinkConfig::default()).unwrap();
    for f in frames.into_iter().take(5) {
        let f = fastsam_track::video::Frame { width: 641, height: 361, data: crop(&f.data, 642, 641, 361), ..f };
        sink.push(&f).unwrap();
    }
    assert_eq!(sink.finish().unwrap(), 5);
    let (info, frames) = support::decode_all(&out2);
    assert_eq!((info.width, info.height, frames.len()), (642, 362, 5));
}

fn crop(rgb: &[u8], stride_px: usize, w: usize, h: usize) -> Vec<u8> {
    (0..h).flat_map(|y| rgb[y * stride_px * 3..(y * stride_px + w) * 3].iter().copied()).collect()
}

// ---------------------------------------------------------------- network inputs

/// An HTTP server on 127.0.0.1 that answers one request with headers (and `body`), then stalls.
fn stalling_server(body: Vec<u8>, announced: usize) -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        // the source's probe connects once and closes; serve every connection the same way
        let mut held = Vec::new();
        l.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                    let mut buf = [0u8; 4096];
                    let n = s.read(&mut buf).unwrap_or(0);
                    if n > 0 {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {announced}\r\nAccept-Ranges: none\r\n\r\n"
                        );
                        let _ = s.write_all(head.as_bytes());
                        let _ = s.write_all(&body);
                        let _ = s.flush();
                    }
                    held.push(s); // never closed: the client sees a stall
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, h)
}

#[test]
fn a_stalled_http_server_fails_naming_the_host() {
    // headers, then nothing
    let (port, _srv) = stalling_server(Vec::new(), 1_000_000);
    let cfg = SourceConfig { stall_timeout: Duration::from_secs(2), ..SourceConfig::default() };
    let t0 = Instant::now();
    let e = VideoSource::open(&format!("http://user:secret@127.0.0.1:{port}/clip.mp4"), &cfg).unwrap_err();
    let took = t0.elapsed();
    let msg = e.to_string();
    assert!(matches!(e, VideoError::Stalled { .. }), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("2.0 s"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn an_http_input_that_stalls_mid_file_fails_naming_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    // a fragmented MP4 (the default template): its first fragments decode without the rest
    support::write_clip(&clip, 150);
    let bytes = std::fs::read(&clip).unwrap();
    let (port, _srv) = stalling_server(bytes[..bytes.len() / 2].to_vec(), bytes.len());
    let cfg = SourceConfig { stall_timeout: Duration::from_secs(2), ..SourceConfig::default() };
    let mut src = VideoSource::open(&format!("http://127.0.0.1:{port}/clip.mp4"), &cfg).unwrap();
    let pool = FramePool::new(4);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let t0 = Instant::now();
    let mut n = 0;
    let err = loop {
        match src.next_frame(&pool, &stop) {
            Ok(Some(f)) => {
                n += 1;
                pool.give(f.data);
            }
            Ok(None) => panic!("the stalled input ended normally after {n} frames"),
            Err(e) => break e,
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no stall error after {n} frames");
    };
    let msg = err.to_string();
    assert!(n > 0 && n < 150, "{n} frames before the stall");
    assert!(matches!(err, VideoError::Stalled { .. }), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("after frame"), "{msg}");
}

#[test]
fn network_and_scheme_errors_name_the_true_cause() {
    // connection refused: a port nobody listens on
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let t0 = Instant::now();
    let url = format!("http://admin:hunter2@127.0.0.1:{port}/x.mp4");
    let o = run(&[&url, "--null-model"]);
    let err = assert_exit(&o, 1, &["connection refused", &format!("127.0.0.1:{port}")]);
    assert!(!err.contains("hunter2") && !err.contains("Internal data stream error"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(20));
    // an unsupported scheme is not a missing codec
    let o = run(&["foo://host/x.mp4", "--null-model"]);
    let err = assert_exit(&o, 1, &["unsupported URI scheme `foo://`"]);
    assert!(!err.contains("apt-get") && !err.contains("no decoder"), "{err}");
}

// ---------------------------------------------------------------- kill -9

#[test]
fn kill_9_leaves_a_playable_partial_mp4_and_the_previous_output() {
    // 795 frames, ~8 s with --null-model here: long enough to be killed mid-run
    let Some(input) = crate::support::assets::require("assets/video/opencv_vtest_pedestrians_768x576_795f.avi") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    std::fs::write(&out, b"the previous result").unwrap();
    let before = sha(&out);
    let partial = dir.path().join("out.mp4.partial");
    // the default encode template (fragmented MP4)
    let mut child = bin().arg(&input).args(["--null-model", "-o"]).arg(&out).stderr(Stdio::null()).spawn().unwrap();
    // wait for a few fragments (one per second of video) in the partial file
    let t0 = Instant::now();
    let mut finished = false;
    loop {
        let size = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if size > 500_000 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    if finished {
        eprintln!("the run finished before it could be killed; kill -9 path not exercised");
        return;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(sha(&out), before, "kill -9 must leave the previous output intact");
    let (info, frames) = support::decode_all(&partial);
    assert_eq!((info.width, info.height), (768, 576));
    assert!(!frames.is_empty() && frames.len() < 795, "{} frames in the partial file", frames.len());
    eprintln!("kill -9: {} frames decode from {}", frames.len(), partial.display());
}

// ---------------------------------------------------------------- metrics and messages

#[test]
fn eval_mot_with_empty_or_non_finite_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (gt, pred) = (dir.path().join("gt.txt"), dir.path().join("pred.txt"));
    std::fs::write(&gt, "").unwrap();
    std::fs::write(&pred, "1,1,10,10,5,5,1\n").unwrap();
    let o = run(&["eval-mot", "--gt", gt.to_str().unwrap(), "--pred", pred.to_str().unwrap()]);
    let err = assert_exit(&o, 1, &["no rows"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("inf"), "{err}");
    std::fs::write(&gt, "1,1,10,10,5,5,1\n").unwrap();
    std::fs::write(&pred, "1,1,nan,10,5,5,1\n").unwrap();
    let o = run(&["eval-mot", "--gt", gt.to_str().unwrap(), "--pred", pred.to_str().unwrap()]);
    assert_exit(&o, 1, &["not a finite number"]);
    std::fs::write(&pred, "1,1,10,10,5,5,1\n").unwrap();
    let o = run(&["eval-mot", "--gt", gt.to_str().unwrap(), "--pred", pred.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_cause_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let det = det_file(dir.path());
    let missing = dir.path().join("missing.toml");
    let o = run(&[
        "track-detections",
        det.to_str().unwrap(),
        "--tracker",
        missing.to_str().unwrap(),
        "-o",
        dir.path().join("t.txt").to_str().unwrap(),
    ]);
    let err = assert_exit(&o, 1, &["missing.toml"]);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

// ---------------------------------------------------------------- the CLIP files of a text prompt

#[test]
fn main_job_never_writes_over_the_clip_files() {
    // Issue 12: --clip-image / --clip-text / --clip-vocab are inputs of the main job like the
    // model. Placeholder files are enough: the clash must be found before anything loads.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    support::write_clip(&input, 3);
    let image = dir.path().join("clip-image.onnx");
    let text = dir.path().join("clip-text.onnx");
    let vocab = dir.path().join("bpe_simple_vocab_16e6.txt.gz");
    for (p, body) in [(&image, "image encoder"), (&text, "text encoder"), (&vocab, "vocabulary")] {
        std::fs::write(p, body).unwrap();
    }
    let sym = dir.path().join("vocab-link.gz");
    std::os::unix::fs::symlink(&vocab, &sym).unwrap();
    let fine = dir.path().join("fine.mp4");
    let (image_s, text_s, sym_s) = (image.to_str().unwrap(), text.to_str().unwrap(), sym.to_str().unwrap());
    let clip = ["--text", "a dog", "--clip-image", image_s, "--clip-text", text_s, "--clip-vocab", sym_s];
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["-o", image.to_str().unwrap()], "the CLIP image encoder (--clip-image)"),
        (vec!["--no-video", "--tracks-mot", text.to_str().unwrap()], "the CLIP text encoder (--clip-text)"),
        // through the symlink given as --clip-vocab: the real file is the same
        (vec!["--no-video", "--tracks-json", vocab.to_str().unwrap()], "the CLIP vocabulary (--clip-vocab)"),
        (vec!["-o", fine.to_str().unwrap(), "--tracks-mot", sym_s], "--clip-vocab"),
    ];
    let files = [&input, &image, &text, &vocab];
    let before: Vec<String> = files.iter().map(|f| sha(f)).collect();
    for (out, needle) in cases {
        let mut all = vec![input.to_str().unwrap()];
        all.extend(clip);
        all.extend(out.iter().copied());
        let o = run(&all);
        assert_exit(&o, 2, &[needle, "same file"]);
        let after: Vec<String> = files.iter().map(|f| sha(f)).collect();
        assert_eq!(after, before, "{out:?} changed a file");
        assert!(partials(dir.path()).is_empty(), "{out:?} left a partial file");
        assert!(!fine.exists(), "{out:?} wrote the other output");
    }
}
