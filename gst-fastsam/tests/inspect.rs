//! `gst-inspect-1.0 fastsamtrack`, with `GST_PLUGIN_PATH` set to the build output, lists every
//! property with the library's default.

mod common;

use std::process::Command;

use fastsam_track::model::ModelOptions;
use fastsam_track::overlay::OverlayStyle;
use fastsam_track::track::{Association, TrackerConfig};

/// The lines of `out` describing property `name`, up to its `Default:` line.
fn property_block<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .lines()
        .position(|l| l.trim_start().starts_with(&format!("{name} ")) && l.contains(':'))
        .unwrap_or_else(|| panic!("property `{name}` not listed by gst-inspect:\n{out}"));
    let lines: Vec<&str> = out.lines().collect();
    let end = (start..lines.len()).find(|&i| lines[i].contains("Default:")).expect("a Default: line");
    let (a, b) = (lines[start], lines[end]);
    let from = a.as_ptr() as usize - out.as_ptr() as usize;
    let to = b.as_ptr() as usize - out.as_ptr() as usize + b.len();
    &out[from..to]
}

fn default_of(block: &str) -> String {
    let line = block.lines().last().unwrap();
    line[line.find("Default:").unwrap() + "Default:".len()..].trim().to_string()
}

#[test]
fn gst_inspect_lists_every_property_with_the_library_default() {
    let dir = common::plugin_dir();
    let registry = tempfile::tempdir().unwrap();
    let out = Command::new("gst-inspect-1.0")
        .arg("fastsamtrack")
        .env("GST_PLUGIN_PATH", &dir)
        .env("GST_REGISTRY", registry.path().join("registry.bin"))
        .output()
        .expect("run gst-inspect-1.0 (package gstreamer1.0-tools)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "gst-inspect-1.0 failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("libgstfastsam.so"), "loaded from the build output:\n{text}");
    for fmt in ["RGB", "RGBA", "RGBx", "BGR", "BGRx", "NV12"] {
        assert!(text.contains(fmt), "caps list {fmt}");
    }

    let m = ModelOptions::default();
    let s = OverlayStyle::default();
    let t = TrackerConfig::product().unwrap();
    let assoc = match t.association {
        Association::Box => "0, \"box\"",
        Association::Mask => "1, \"mask\"",
        Association::Fused => "2, \"fused\"",
    };
    let float = |v: f32| format!("{v}");
    let expected: Vec<(&str, String)> = vec![
        ("model", "null".into()),
        ("device", format!("\"{}\"", m.device)),
        ("imgsz", m.imgsz.unwrap_or(0).to_string()),
        ("conf", float(t.track_low_thresh)),
        ("iou", float(m.iou)),
        ("retina-masks", m.retina_masks.to_string()),
        ("threads", m.intra_threads.unwrap_or(0).to_string()),
        ("tracker-config", "null".into()),
        ("association", assoc.into()),
        ("draw", "true".into()),
        ("mask-alpha", float(s.alpha)),
        ("show-boxes", s.show_boxes.to_string()),
        ("boxes", "null".into()),
        ("points", "null".into()),
        // CLIP text prompts: off unless `text` and both encoders are set; -2 = follow the best track.
        ("text", "null".into()),
        ("text-threshold", "-2".into()),
        ("text-every", "0".into()),
        ("clip-image", "null".into()),
        ("clip-text", "null".into()),
        ("clip-vocab", "null".into()),
    ];
    for (name, want) in &expected {
        let block = property_block(&text, name);
        let got = default_of(block);
        // gst-inspect prints floats with 6 decimals (0.400000) on some versions, shortest on others.
        let same = got == *want
            || (got.parse::<f64>().ok().zip(want.parse::<f64>().ok()).is_some_and(|(a, b)| (a - b).abs() < 1e-6));
        assert!(same, "property {name}: gst-inspect default `{got}`, library default `{want}`\n{block}");
    }
    // No property beyond these (plus the base classes' `name`, `parent`, `qos`).
    let listed = text.lines().filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.contains(" : ")).count();
    assert_eq!(listed, expected.len() + 3, "properties listed:\n{text}");
}
