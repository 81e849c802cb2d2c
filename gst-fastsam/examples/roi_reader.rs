//! Read the tracks `fastsamtrack` attaches to each buffer, without looking at the pixels, and
//! print them as JSON Lines (the CLI's `--tracks-json` format).
//!
//! ```text
//! cargo run -p gst-fastsam --example roi_reader -- VIDEO [PROPERTY=VALUE ...]
//! cargo run -p gst-fastsam --example roi_reader -- ../shared/assets/synth/synth_track_a.mp4 \
//!     model=../shared/models/FastSAM-n-synth-dynamic.onnx imgsz=320 device=cpu
//! ```
//!
//! The pipeline is `filesrc ! decodebin ! videoconvert ! fastsamtrack draw=false PROPS ! appsink`.
//! Each buffer carries one `GstVideoRegionOfInterestMeta` per track with a `fastsam/track` param
//! structure (`id`, `score`, `class-id`, `bbox` = x,y,w,h, `rle-size` = h,w, `rle-counts`). The
//! plugin is registered from this binary, so it runs without installing it; an application using
//! an installed plugin skips `plugin_register_static`.

use gst::prelude::*;
use serde_json::{Value, json};

fn floats(s: &gst::StructureRef, field: &str) -> Option<Vec<f64>> {
    let a = s.get::<gst::Array>(field).ok()?;
    a.iter().map(|v| v.get::<f32>().ok().map(f64::from)).collect()
}

fn uints(s: &gst::StructureRef, field: &str) -> Option<Vec<u32>> {
    let a = s.get::<gst::Array>(field).ok()?;
    a.iter().map(|v| v.get::<u32>().ok()).collect()
}

/// One frame's tracks as the CLI's JSON Lines record.
fn frame_json(index: u64, buffer: &gst::BufferRef) -> Value {
    let mut objects = Vec::new();
    for meta in buffer.iter_meta::<gst_video::VideoRegionOfInterestMeta>() {
        let Some(p) = meta.param(gstfastsam::fastsamtrack::PARAM_NAME) else { continue };
        let mut o = json!({
            "id": p.get::<u64>("id").unwrap_or(meta.id() as u64),
            "bbox": floats(p, "bbox").unwrap_or_default(),
            "score": p.get::<f32>("score").unwrap_or(0.0),
            "class_id": p.get::<u32>("class-id").unwrap_or(0),
        });
        if let (Some(size), Some(counts)) = (uints(p, "rle-size"), uints(p, "rle-counts")) {
            o["rle"] = json!({ "size": size, "counts": counts });
        }
        objects.push(o);
    }
    json!({
        "frame": index + 1,
        "pts": buffer.pts().map(|t| t.nseconds() as f64 / 1e9),
        "objects": objects,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(input) = args.next() else {
        eprintln!("usage: roi_reader VIDEO [PROPERTY=VALUE ...]  (fastsamtrack properties, e.g. model=M imgsz=320)");
        std::process::exit(2);
    };
    let props: Vec<String> = args.collect();
    gst::init()?;
    if gst::ElementFactory::find("fastsamtrack").is_none() {
        gstfastsam::plugin_register_static()?;
    }
    let desc = format!(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! fastsamtrack draw=false {} ! appsink name=sink sync=false",
        props.join(" ")
    );
    let pipeline = gst::parse::launch(&desc)?.downcast::<gst::Pipeline>().map_err(|_| "not a pipeline")?;
    let src = pipeline.by_name("src").ok_or("no filesrc")?;
    src.set_property("location", &input);
    let sink =
        pipeline.by_name("sink").ok_or("no appsink")?.downcast::<gst_app::AppSink>().map_err(|_| "not an appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let mut index = 0u64;
    let result = loop {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            if let Some(buffer) = sample.buffer() {
                println!("{}", frame_json(index, buffer));
                index += 1;
            }
            continue;
        }
        if sink.is_eos() {
            break Ok(());
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            break Err(format!("{}: {}", e.error(), e.debug().unwrap_or_default()));
        }
    };
    pipeline.set_state(gst::State::Null)?;
    eprintln!("{index} frames");
    result.map_err(Into::into)
}
