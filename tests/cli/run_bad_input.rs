//! `fastsam-track INPUT` on bad input: a clear error, a non-zero exit, no panic, and no output
//! left behind (or, for a file truncated mid-stream, an output finalised with the frames that
//! decoded and an error naming the frame).

use crate::support::video;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastsam-track")).args(args).output().expect("spawn fastsam-track")
}

fn assert_fails(out: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.to_lowercase().contains(&needle.to_lowercase()), "stderr lacks `{needle}`: {err}");
    err
}

fn no_mp4_in(dir: &Path) {
    let mp4s: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tracked.mp4"))
        .collect();
    assert!(mp4s.is_empty(), "output left behind: {mp4s:?}");
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("missing.mp4");
    assert_fails(&run(&[p.to_str().unwrap(), "--null-model"]), "not found");
    no_mp4_in(dir.path());
}

#[test]
fn zero_byte_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.mp4");
    std::fs::write(&p, b"").unwrap();
    assert_fails(&run(&[p.to_str().unwrap(), "--null-model"]), "empty");
    no_mp4_in(dir.path());
}

#[test]
fn not_a_video() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.mp4");
    std::fs::write(&p, "these are not video frames\n".repeat(100)).unwrap();
    assert_fails(&run(&[p.to_str().unwrap(), "--null-model"]), "not a video");
    no_mp4_in(dir.path());
}

/// A minimal AVI whose video stream uses a FOURCC no decoder knows.
fn write_unknown_codec_avi(path: &Path) {
    fn chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend((data.len() as u32).to_le_bytes());
        v.extend(data);
        if data.len() % 2 == 1 {
            v.push(0);
        }
        v
    }
    fn list(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut d = kind.to_vec();
        d.extend(body);
        chunk(b"LIST", &d)
    }
    let le = |vals: &[u32]| vals.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    let (w, h, n) = (64u32, 48u32, 10u32);
    let avih = le(&[40000, 0, 0, 0, n, 0, 1, 4096, w, h, 0, 0, 0, 0]);
    let mut strh = b"vidsZZZZ".to_vec();
    strh.extend(le(&[0, 0, 0, 1, 25, 0, n, 4096, 0xFFFF_FFFF, 0]));
    strh.extend([0u8; 8]);
    let mut strf = le(&[40, w, h]);
    strf.extend([1u8, 0, 24, 0]);
    strf.extend(b"ZZZZ");
    strf.extend(le(&[w * h * 3, 0, 0, 0, 0]));
    let strl = list(b"strl", &[chunk(b"strh", &strh), chunk(b"strf", &strf)].concat());
    let hdrl = list(b"hdrl", &[chunk(b"avih", &avih), strl].concat());
    let movi: Vec<u8> = (0..n).flat_map(|i| chunk(b"00dc", &vec![i as u8; 500])).collect();
    let movi = list(b"movi", &movi);
    let mut body = b"AVI ".to_vec();
    body.extend(hdrl);
    body.extend(movi);
    std::fs::write(path, chunk(b"RIFF", &body)).unwrap();
}

#[test]
fn unsupported_codec() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("weird.avi");
    write_unknown_codec_avi(&p);
    let err = assert_fails(&run(&[p.to_str().unwrap(), "--null-model"]), "no decoder");
    assert!(err.contains("gstreamer1.0-libav"), "names the package to install: {err}");
    no_mp4_in(dir.path());
}

#[test]
fn missing_encoder_element_names_package() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.mp4");
    video::write_clip(&input, 5);
    let out = run(&[
        input.to_str().unwrap(),
        "--null-model",
        "--encode-pipeline",
        "appsrc name=src ! videoconvert ! nvh264enc ! h264parse ! mp4mux ! filesink location=\"{output}\"",
    ]);
    if out.status.success() {
        eprintln!("nvh264enc is installed here; nothing to check");
        return;
    }
    let err = assert_fails(&out, "nvh264enc");
    assert!(err.contains("gstreamer1.0-plugins-bad"), "{err}");
    no_mp4_in(dir.path());
}

#[test]
fn truncated_mid_stream_finalises_output() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.mp4");
    // faststart: the index comes first, so a truncated file still opens and announces 100 frames
    let tmpl = "appsrc name=src ! videoconvert ! video/x-raw,format=I420 ! x264enc ! h264parse ! \
                mp4mux faststart=true ! filesink location=\"{output}\"";
    {
        let info = fastsam_track::video::VideoInfo {
            width: video::W,
            height: video::H,
            fps: Some((25, 1)),
            duration: None,
            live: false,
            uri: String::new(),
        };
        let cfg = fastsam_track::video::SinkConfig {
            template: tmpl.into(),
            fallback: None,
            ..fastsam_track::video::SinkConfig::default()
        };
        let mut sink = fastsam_track::video::VideoSink::create(&full, &info, &cfg).unwrap();
        let mut data = vec![0u8; (video::W * video::H * 3) as usize];
        for i in 0..100u64 {
            video::draw_frame(i, &mut data);
            let f = fastsam_track::video::Frame {
                index: i,
                pts: Some(std::time::Duration::from_millis(40 * i)),
                duration: Some(std::time::Duration::from_millis(40)),
                width: video::W,
                height: video::H,
                data: std::mem::take(&mut data),
            };
            sink.push(&f).unwrap();
            data = f.data;
        }
        sink.finish().unwrap();
    }
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mot = dir.path().join("cut.txt");
    let out = run(&[cut.to_str().unwrap(), "--null-model", "--tracks-mot", mot.to_str().unwrap()]);
    let err = assert_fails(&out, "truncated or corrupt from frame");
    assert!(err.contains("finalised"), "{err}");
    // The output holds exactly the frames that decoded, and plays.
    let output = dir.path().join("cut.tracked.mp4");
    let (_, frames) = video::decode_all(&output);
    assert!(frames.len() > 10 && frames.len() < 100, "{} frames", frames.len());
    assert!(
        err.contains(&format!("input ended at frame {}", frames.len())),
        "output has {} frames: {err}",
        frames.len()
    );
    // in order, each decodable input frame once (B-frame reordering may skip a few near the cut)
    let codes: Vec<u64> = frames.iter().map(|f| video::read_code(&f.view())).collect();
    assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
    assert_eq!(codes[..10], (0..10).collect::<Vec<_>>());
}

/// A reader that goes away (`fastsam-track eval-mot ... | head -1`, closed here before the
/// command prints) does not panic the process: Rust ignores SIGPIPE, so a plain `println!`
/// panics on a closed pipe. The command finishes and exits 0.
#[test]
fn closed_stdout_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (gt, pred) = (dir.path().join("gt.txt"), dir.path().join("pred.txt"));
    // big enough that the evaluation takes longer than closing the pipe
    let mut rows = String::new();
    for f in 1..=3000 {
        for id in 1..=12 {
            rows.push_str(&format!("{f},{id},{},{},40,80,1,-1,-1,-1\n", id * 50 + f % 7, 20 + id * 3));
        }
    }
    std::fs::write(&gt, &rows).unwrap();
    std::fs::write(&pred, &rows).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastsam-track"))
        .args(["eval-mot", "--gt", gt.to_str().unwrap(), "--pred", pred.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(o.status.success(), "exit {:?}: {err}", o.status);
}
