//! Pipeline templates from the command line and `configs/pipeline.toml`: the shipped templates
//! work, an inline description works, the openh264 encoder template works, and a template without
//! the required appsink/appsrc is a clear error.

use crate::support::video;

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fastsam-track")).args(args).output().expect("spawn")
}

#[test]
fn config_file_and_template_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.mp4");
    video::write_clip(&input, 20);
    let i = input.to_str().unwrap();
    for (name, extra) in [
        ("config", vec!["--pipelines", "configs/pipeline.toml", "--channel-capacity", "1"]),
        ("openh264", vec!["--encode-pipeline", "pipelines/encode-openh264.txt"]),
    ] {
        let out_path = dir.path().join(format!("{name}.mp4"));
        let mut args = vec![i, "--null-model", "-o", out_path.to_str().unwrap()];
        args.extend(extra);
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {err}");
        let (_, frames) = video::decode_all(&out_path);
        assert_eq!(frames.len(), 20, "{name}");
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(video::read_code(&f.view()), k as u64, "{name}: frame order");
        }
    }
}

#[test]
fn inline_decode_template() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("bars.mp4");
    let out = run(&[
        "testsrc://bars",
        "--null-model",
        "-o",
        out_path.to_str().unwrap(),
        "--decode-pipeline",
        "videotestsrc num-buffers=15 ! video/x-raw,width=160,height=96,framerate=30/1 ! appsink name=sink",
        "--bench-raw",
        "5",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // the raw-inference comparison ran on 5 frames (after a warm-up frame) and is reported
    assert!(err.contains("raw inference (model alone, 5 frames in memory, "), "{err}");
    assert!(err.contains("end-to-end:") && err.contains("x raw inference"), "{err}");
    let (info, frames) = video::decode_all(&out_path);
    assert_eq!((frames.len(), info.width, info.height, info.fps), (15, 160, 96, Some((30, 1))));
}

#[test]
fn template_without_appsink_or_appsrc_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.mp4");
    video::write_clip(&input, 3);
    let out =
        run(&[input.to_str().unwrap(), "--null-model", "--decode-pipeline", "uridecodebin uri=\"{uri}\" ! fakesink"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("appsink name=sink"), "{err}");
    let out = run(&[
        input.to_str().unwrap(),
        "--null-model",
        "--encode-pipeline",
        "videotestsrc ! x264enc ! mp4mux ! filesink location=\"{output}\"",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("appsrc name=src"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dir.path().join("clip.tracked.mp4").exists(), "no output left behind");
    let out = run(&[input.to_str().unwrap(), "--null-model", "--encode-pipeline", "pipelines/nope.txt"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("pipelines/nope.txt"), "{err}");
}
