//! `fastsam-track quantize --model M --calib SOURCE -o M.int8.onnx`: static INT8 (QDQ)
//! quantization for fast CPU inference. The work is in [`fastsam_track::convert::quantize`].

use std::path::PathBuf;

use anyhow::Context;
use fastsam_track::convert::quantize::source::{CalibSource, quantize_with_source};
use fastsam_track::convert::quantize::{CalibMethod, QuantizeOptions};
use fastsam_track::outputs::{OutputCheck, Role};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    fastsam-track quantize --model FastSAM-s.onnx --calib street.mp4 -o FastSAM-s.int8.onnx\n  \
    fastsam-track quantize --model FastSAM-s.pt --calib frames/ --calib-frames 128\n  \
    fastsam-track street.mp4 --model FastSAM-s.int8.onnx\n\n\
    Calibrate on footage like the footage you will run on, at the size you will run at (--imgsz).\n\
    The head's tail (DFL, box decode, sigmoid, output concatenations, prototype output) stays in\n\
    float; see docs/int8.md. `--precision int8` on the main job and `segment` does all this in one\n\
    step and caches the result.")]
pub struct QuantizeArgs {
    /// The float model: a FastSAM / YOLOv8-seg .onnx, an Ultralytics .pt checkpoint (converted
    /// first, cached), or FastSAM-s / FastSAM-x.
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    /// Calibration frames: a video file or URI, a folder of images, or one image.
    #[arg(long, value_name = "SOURCE")]
    pub calib: String,
    /// Output .onnx (default: MODEL_STEM.int8.onnx next to the model).
    #[arg(short, long, value_name = "OUT.onnx")]
    pub output: Option<PathBuf>,
    /// Calibration frames, spread evenly over the source (a live stream: the first N).
    #[arg(long, value_name = "N", default_value_t = QuantizeOptions::default().calib_frames)]
    pub calib_frames: usize,
    /// How activation ranges are chosen: mse (per tensor, the clipping with the least
    /// quantization error over the calibration values), minmax (exact range seen) or
    /// percentile[:P] (clip the top and bottom (100-P)% of values; P defaults to 99.999).
    #[arg(long, value_name = "METHOD", default_value_t = QuantizeOptions::default().method)]
    pub calib_method: CalibMethod,
    /// Calibration size (long side, multiple of 32); use the size you run at. Default: the
    /// model's fixed size, else its imgsz metadata, else 640.
    #[arg(long, value_name = "N")]
    pub imgsz: Option<u32>,
    /// Keep the final 1x1 convolution of each head branch in float (box distribution, mask
    /// coefficients, prototype output): the float boundary one step earlier, a little slower.
    #[arg(long)]
    pub float_head_convs: bool,
    /// Keep the head's class-score branch in float (quantizer v2's mixed precision): about 20%
    /// slower on FastSAM-s. By default it runs in int8 with --class-headroom (docs/int8.md).
    #[arg(long)]
    pub float_class_branch: bool,
    /// Widen the top of the class-score branch's activation ranges by this factor: its strongest
    /// activations are the evidence of objects, which calibration footage under-represents and
    /// a percentile clips. 1 keeps the calibrated ranges.
    #[arg(long, value_name = "F", default_value_t = QuantizeOptions::default().class_headroom,
          value_parser = parse_headroom, conflicts_with = "float_class_branch")]
    pub class_headroom: f32,
    /// Quantize the class-logit convolutions too (they stay in float by default: no measurable
    /// speed to gain, and the scores near the tracker's low threshold keep fp32's values).
    #[arg(long, conflicts_with = "float_head_convs")]
    pub quantize_class_logits: bool,
    /// How the ranges of the class-score branch (and the class logits with
    /// --quantize-class-logits) are chosen, same choices as --calib-method (default:
    /// --calib-method's).
    #[arg(long, value_name = "METHOD", conflicts_with = "float_class_branch")]
    pub class_calib_method: Option<CalibMethod>,
    /// ONNX Runtime intra-op threads for calibration (default: ONNX Runtime's choice).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Path to libonnxruntime.so (default: found automatically).
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
}

fn parse_headroom(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(f) if (1.0..=16.0).contains(&f) => Ok(f),
        Ok(f) => Err(format!("{f} is outside 1..=16 (1 keeps the calibrated ranges; 1.5 is the default)")),
        Err(_) => Err(format!("`{s}` is not a number (e.g. 1.5)")),
    }
}

/// A calibration progress bar on stderr (hidden when stderr is not a terminal).
pub fn calib_bar(total: usize) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let b = ProgressBar::new(total as u64);
    b.set_style(
        ProgressStyle::with_template("calibrating [{bar:30}] {pos}/{len} frames {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    if args.calib_frames == 0 {
        return Err(super::UsageError("--calib-frames must be at least 1".into()).into());
    }
    // the calibration source is checked before any model work
    let source = CalibSource::open(&args.calib)?;
    let model_spec = std::path::Path::new(&args.model);
    let out = args.output.clone().unwrap_or_else(|| {
        let stem = model_spec.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
        model_spec.with_file_name(format!("{stem}.int8.onnx"))
    });
    let mut check = OutputCheck::new().input(Role::Model, model_spec).output(Role::ConvertedModel, &out);
    if std::path::Path::new(&args.calib).exists() {
        check = check.input(Role::Image, std::path::Path::new(&args.calib));
    }
    check.check()?;
    let float = fastsam_track::convert::resolve_model(Some(&args.model))?;
    let opts = QuantizeOptions {
        calib_frames: args.calib_frames,
        method: args.calib_method,
        quantize_head_convs: !args.float_head_convs,
        class_branch_float: args.float_class_branch,
        class_branch_method: args.class_calib_method,
        class_headroom: args.class_headroom,
        class_logits_float: !args.quantize_class_logits,
        imgsz: args.imgsz,
        intra_threads: args.threads.map(super::common::cap_threads),
        ort_lib: args.ort_lib.clone(),
        ..QuantizeOptions::default()
    };
    let source_desc = source.describe();
    let t = std::time::Instant::now();
    let bar = calib_bar(args.calib_frames);
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let s = quantize_with_source(&float, source, &out, &opts, &mut progress)
        .with_context(|| format!("quantizing {}", float.display()))?;
    let frames = bar.position();
    bar.finish_and_clear();
    let fmt = |m: &std::collections::BTreeMap<String, usize>| {
        m.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
    };
    outln!("wrote {} in {:.1}s", out.display(), t.elapsed().as_secs_f64());
    outln!("  model:        {}", float.display());
    outln!("  calibration:  {source_desc}, {frames} frames, {}", opts.method);
    outln!(
        "  int8:         {} nodes ({}); {} weights, {} activations",
        s.total_quantized(),
        fmt(&s.quantized),
        s.weights,
        s.activations
    );
    outln!("  kept in float: {} nodes ({})", s.total_float(), fmt(&s.float_tail));
    outln!("  float boundary convolutions: {}", s.float_convs.join(", "));
    for why in &s.skipped {
        outln!("  also float: {why}");
    }
    Ok(())
}
