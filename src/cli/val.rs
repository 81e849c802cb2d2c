//! `fastsam-track val`: COCO box and mask mAP with pycocotools COCOeval semantics.
//!
//! - `val --model M --images DIR --ann instances.json [--save-json preds.json]` runs the model on
//!   every image of the annotation file and evaluates its predictions;
//! - `val --pred preds.json --ann instances.json` evaluates a COCO results file from any source.
//!
//! Thin: reading, evaluation and RLE encoding are in [`fastsam_track::eval::coco`].

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use opencv::core::{MatTraitConst, MatTraitConstManual};

use super::UsageError;
use super::common::ModelArgs;
use fastsam_track::eval::coco::{self, CocoGt, CocoResult, EvalOptions, IouType, ValConfig};
use fastsam_track::model::{Device, ModelOptions};
use fastsam_track::outputs::{AtomicFile, OutputCheck, Role};
use fastsam_track::types::{ImageView, PixelFormat, Segmenter};

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["pred", "images"])),
    after_help = "Examples:\n  fastsam-track val --model FastSAM-s --images coco/val2017 --ann coco/annotations/instances_val2017.json --save-json preds.json\n  fastsam-track val --pred preds.json --ann instances.json --json"
)]
pub struct ValArgs {
    /// COCO ground truth (instances.json): images, annotations with polygons, uncompressed or
    /// compressed RLE, iscrowd regions.
    #[arg(long, value_name = "JSON")]
    pub ann: PathBuf,
    /// Evaluate this COCO results file (a list of {image_id, category_id, bbox, score,
    /// segmentation}) instead of running a model.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["images", "model", "save_json"])]
    pub pred: Option<PathBuf>,
    /// Folder holding the images of --ann (their `file_name`); runs the model on each.
    #[arg(long, value_name = "DIR", requires = "ann")]
    pub images: Option<PathBuf>,
    /// Model: a .onnx file, an Ultralytics .pt checkpoint, or FastSAM-s / FastSAM-x (see
    /// `segment --help`). Default: $FASTSAM_MODEL, else FastSAM-s.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Inference size (longest side, multiple of 32). Default: the model's own size.
    #[arg(long, value_name = "N")]
    pub imgsz: Option<u32>,
    /// Confidence threshold. Low by default, as evaluations use: every detection down to this
    /// score counts towards the precision-recall curve (the predict default, 0.4, would cut
    /// recall and understate mAP).
    #[arg(long, default_value_t = ValConfig::default().conf)]
    pub conf: f32,
    /// NMS IoU threshold (Ultralytics' validation default).
    #[arg(long, default_value_t = ValConfig::default().iou)]
    pub iou: f32,
    /// Maximum detections per image (COCOeval scores the best 100 per image).
    #[arg(long, default_value_t = ValConfig::default().max_det)]
    pub max_det: usize,
    /// Execution device: cpu, cuda, cuda:N, tensorrt, tensorrt:N, or auto.
    #[arg(long, default_value_t = ModelOptions::default().device, value_parser = parse_device)]
    pub device: Device,
    /// ONNX Runtime intra-op threads (default: ONNX Runtime's choice).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Path to libonnxruntime.so (default: found automatically).
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Write the model's predictions in COCO results format (masks as compressed RLE).
    #[arg(long, value_name = "JSON")]
    pub save_json: Option<PathBuf>,
    /// Count every annotation and prediction as one category (the default: FastSAM is
    /// class-agnostic).
    #[arg(long, overrides_with = "class_aware")]
    pub class_agnostic: bool,
    /// Match categories as COCOeval does (useCats=1). With a model, class k is the k-th category
    /// of --ann by id.
    #[arg(long, overrides_with = "class_agnostic")]
    pub class_aware: bool,
    /// Print every statistic as JSON instead of COCOeval's table.
    #[arg(long)]
    pub json: bool,
}

fn parse_device(s: &str) -> Result<Device, String> {
    s.parse::<Device>().map_err(|e| e.to_string())
}

pub fn run(args: ValArgs) -> anyhow::Result<()> {
    let mut check = OutputCheck::new();
    check.push_input(Role::Other("the annotations (--ann)"), &args.ann);
    if let Some(p) = &args.pred {
        check.push_input(Role::Predictions, p);
    }
    if let Some(m) = &args.model {
        check.push_input(Role::Model, m);
    }
    if let Some(p) = &args.save_json {
        check.push_output(Role::Other("the predictions file (--save-json)"), p);
    }
    check.check()?;
    let t0 = Instant::now();
    let gt = coco::load_gt(&args.ann)?;
    let opts = EvalOptions { class_agnostic: !args.class_aware, ..EvalOptions::default() };
    let preds = match (&args.pred, &args.images) {
        (Some(p), _) => {
            tracing::debug!("ground truth read in {:.3} s", t0.elapsed().as_secs_f64());
            let preds = coco::load_results(p, &gt)?;
            tracing::debug!("predictions read in {:.3} s", t0.elapsed().as_secs_f64());
            preds
        }
        (None, Some(dir)) => {
            let records = predict(&args, &gt, dir, opts.class_agnostic)?;
            if let Some(p) = &args.save_json {
                AtomicFile::write_all_to(p, &serde_json::to_vec(&records)?)?;
                eprintln!("wrote {} predictions to {}", records.len(), p.display());
            }
            coco::results_from_records(&records, &gt)?
        }
        (None, None) => return Err(UsageError("give --pred FILE, or --images DIR with a model".into()).into()),
    };
    let mut out = serde_json::Map::new();
    for iou_type in [IouType::Bbox, IouType::Segm] {
        let t = Instant::now();
        let s = coco::evaluate(&gt, &preds, iou_type, &opts)?;
        tracing::debug!("{} evaluated in {:.3} s", iou_type.name(), t.elapsed().as_secs_f64());
        if args.json {
            out.insert(iou_type.name().to_string(), s.to_json());
        } else {
            outln!("{}:\n{}", iou_type.name(), s.summary());
        }
    }
    if args.json {
        out.insert("images".into(), gt.images.len().into());
        out.insert("annotations".into(), gt.annotations.len().into());
        out.insert("predictions".into(), preds.len().into());
        out.insert("class_agnostic".into(), opts.class_agnostic.into());
        outln!("{}", serde_json::to_string_pretty(&out)?);
    }
    eprintln!(
        "{} images, {} annotations, {} predictions; {:.2} s",
        gt.images.len(),
        gt.annotations.len(),
        preds.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Run the model on every image of `gt` and return its detections as COCO results.
fn predict(
    args: &ValArgs,
    gt: &CocoGt,
    dir: &std::path::Path,
    class_agnostic: bool,
) -> anyhow::Result<Vec<CocoResult>> {
    if !dir.is_dir() {
        anyhow::bail!("--images {} is not a folder", dir.display());
    }
    // Every image must be there before the model loads.
    let mut paths = Vec::with_capacity(gt.images.len());
    for im in &gt.images {
        let name = im
            .file_name
            .as_deref()
            .with_context(|| format!("{}: image id {} has no file_name", args.ann.display(), im.id))?;
        let p = dir.join(name);
        if !p.is_file() {
            anyhow::bail!("{}: image id {} names {}, which does not exist", args.ann.display(), im.id, p.display());
        }
        paths.push(p);
    }
    let margs = ModelArgs {
        model: args.model.clone(),
        imgsz: args.imgsz,
        conf: Some(args.conf),
        iou: args.iou,
        max_det: args.max_det,
        retina_masks: Some(true),
        device: args.device,
        threads: args.threads,
        ort_lib: args.ort_lib.clone(),
        // an int8 model is measured by passing the quantized file (`fastsam-track quantize`)
        precision: Default::default(),
        calib: None,
        calib_frames: fastsam_track::convert::quantize::QuantizeOptions::default().calib_frames,
    };
    let mut model = margs.load(true)?;
    eprintln!("model: {}; conf {}, iou {}, max_det {}", model.describe(), args.conf, args.iou, args.max_det);
    let category = |class_id: u32| -> anyhow::Result<i64> {
        if class_agnostic {
            return Ok(gt.categories.first().copied().unwrap_or(1));
        }
        gt.categories.get(class_id as usize).copied().with_context(|| {
            format!(
                "the model predicted class {class_id}, but {} has {} categories: use --class-agnostic",
                args.ann.display(),
                gt.categories.len()
            )
        })
    };
    let bar = indicatif::ProgressBar::new(gt.images.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("val [{bar:30}] {pos}/{len} images {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut records = Vec::new();
    for (im, path) in gt.images.iter().zip(&paths) {
        let img = super::segment::read_image(path)?;
        let (w, h) = (img.cols() as u32, img.rows() as u32);
        if (w, h) != (im.width, im.height) {
            anyhow::bail!(
                "{}: image id {} is {}x{} in the annotations, but {} is {w}x{h}",
                args.ann.display(),
                im.id,
                im.width,
                im.height,
                path.display()
            );
        }
        let data = img.data_bytes()?;
        let view = ImageView::packed(w, h, PixelFormat::Bgr8, data)
            .with_context(|| format!("{}: unexpected pixel layout", path.display()))?;
        let dets = model.segment(view).with_context(|| format!("segmenting {}", path.display()))?;
        for d in &dets {
            records.push(coco::detection_result(im.id, category(d.class_id)?, d, w, h));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(records)
}
