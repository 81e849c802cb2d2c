//! `fastsam-track segment IMAGE...`: segment still images (everything mode, box/point prompts, or
//! CLIP text prompts with `--text`)
//! and write, per image, an overlay PNG and a JSON file with boxes, scores and COCO RLE masks in
//! Ultralytics' detection order. Thin: the work is in [`fastsam_track::model`] and [`fastsam_track::overlay`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, MatTraitManual};
use serde::Serialize;

use super::UsageError;
use super::common::{ClipArgs, ModelArgs, parse_box, parse_point};
use fastsam_track::mask::Rle;
use fastsam_track::model::prompt::{self, Prompt};
use fastsam_track::outputs::{AtomicFile, OutputCheck, Role};
use fastsam_track::overlay::{Overlay, OverlayItem, OverlayStyle};
use fastsam_track::stream::PromptSelector;
use fastsam_track::types::{BBox, ImageView, PixelFormat, Segmenter};

#[derive(Debug, clap::Args)]
pub struct SegmentArgs {
    /// Images to segment (any format OpenCV reads: PNG, JPEG, BMP, TIFF, WebP...).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Keep the mask that best matches this box, x1,y1,x2,y2 in pixels (repeatable).
    #[arg(long = "box", value_name = "X1,Y1,X2,Y2", value_parser = parse_box)]
    pub boxes: Vec<BBox>,
    /// Keep the masks containing this point, x,y[,label] with label 1 (include, default) or 0
    /// (exclude) (repeatable).
    #[arg(long = "point", value_name = "X,Y[,LABEL]", value_parser = parse_point)]
    pub points: Vec<(f32, f32, bool)>,
    /// Output directory for IMAGE_STEM.overlay.png and IMAGE_STEM.json (created if missing).
    /// Two images with the same stem (a/x.jpg, b/x.png) would write the same files: that is an
    /// error (exit 2), segment them in separate runs with different -o. Files are written
    /// atomically (IMAGE_STEM.json.partial, then renamed).
    #[arg(short = 'o', long, default_value = "out", value_name = "DIR")]
    pub output_dir: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub clip: ClipArgs,
}

#[derive(Serialize)]
struct JsonDetection {
    /// Index in the everything-mode result (Ultralytics order).
    index: usize,
    xyxy: [f32; 4],
    score: f32,
    class_id: u32,
    mask: Rle,
    /// With --text: the best CLIP cosine similarity of this mask's crop over the prompts.
    #[serde(skip_serializing_if = "Option::is_none")]
    clip_score: Option<f32>,
}

#[derive(Serialize)]
struct JsonImage<'a> {
    image: String,
    width: u32,
    height: u32,
    model: String,
    prompt: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    texts: &'a [String],
    detections: Vec<JsonDetection>,
}

/// Decode an image as BGR (like `cv2.imread`).
pub(super) fn read_image(path: &Path) -> anyhow::Result<Mat> {
    if !path.is_file() {
        anyhow::bail!("image {} does not exist or is not a file", path.display());
    }
    let s = path.to_str().with_context(|| format!("image path {} is not valid UTF-8", path.display()))?;
    let m = opencv::imgcodecs::imread(s, opencv::imgcodecs::IMREAD_COLOR)
        .with_context(|| format!("cannot read image {}", path.display()))?;
    if m.empty() {
        anyhow::bail!(
            "cannot read image {}: not an image format OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP...)",
            path.display()
        );
    }
    Ok(if m.is_continuous() { m } else { m.try_clone()? })
}

/// `(DIR/STEM.json, DIR/STEM.overlay.png)` per image; two images with the same stem are a usage
/// error naming both.
fn output_names(images: &[PathBuf], dir: &Path) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let mut by_stem: std::collections::HashMap<std::ffi::OsString, &PathBuf> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(images.len());
    for p in images {
        let stem = p.file_stem().map(|s| s.to_os_string()).unwrap_or_else(|| "image".into());
        if let Some(first) = by_stem.insert(stem.clone(), p) {
            let stem = stem.to_string_lossy();
            return Err(UsageError(format!(
                "{} and {} would both write {}: segment them in separate runs with different -o",
                first.display(),
                p.display(),
                dir.join(format!("{stem}.json")).display()
            ))
            .into());
        }
        let stem = stem.to_string_lossy();
        out.push((dir.join(format!("{stem}.json")), dir.join(format!("{stem}.overlay.png"))));
    }
    Ok(out)
}

pub fn run(args: SegmentArgs) -> anyhow::Result<()> {
    // fail on unreadable inputs before loading the model
    for p in &args.images {
        if !p.is_file() {
            anyhow::bail!("image {} does not exist or is not a file", p.display());
        }
        let readable = p.to_str().is_some_and(|s| opencv::imgcodecs::have_image_reader(s).unwrap_or(false));
        if !readable {
            anyhow::bail!(
                "cannot read image {}: not an image format OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP...)",
                p.display()
            );
        }
    }
    let prompt = match (args.boxes.is_empty(), args.points.is_empty()) {
        (true, true) => Prompt::Everything,
        (false, true) => Prompt::Boxes(args.boxes.clone()),
        (true, false) => Prompt::Points(args.points.clone()),
        (false, false) => Prompt::BoxesAndPoints(args.boxes.clone(), args.points.clone()),
    };
    let geometric_desc = match &prompt {
        Prompt::Everything => "everything",
        Prompt::Boxes(_) => "boxes",
        Prompt::Points(_) => "points",
        Prompt::BoxesAndPoints(..) => "boxes+points",
    };
    let prompt_desc = match (args.clip.active(), &prompt) {
        (false, _) => geometric_desc.to_string(),
        (true, Prompt::Everything) => "text".to_string(),
        (true, _) => format!("text+{geometric_desc}"),
    };
    // Outputs: one pair per image, never the same file twice, never an input; before the model loads.
    let names = output_names(&args.images, &args.output_dir)?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create output directory {}", args.output_dir.display()))?;
    let mut check = OutputCheck::new();
    for p in &args.images {
        check.push_input(Role::Image, p);
    }
    if let Some(m) = &args.model.model {
        check.push_input(Role::Model, m);
    }
    for m in [&args.clip.clip_image, &args.clip.clip_text, &args.clip.clip_vocab].into_iter().flatten() {
        check.push_input(Role::Model, m);
    }
    for (json, png) in &names {
        check.push_output(Role::SegmentJson, json);
        check.push_output(Role::SegmentPng, png);
    }
    check.check()?;
    // CLIP first: a bad text prompt or encoder fails before FastSAM loads
    let geometric = (!matches!(prompt, Prompt::Everything)).then(|| prompt.clone());
    let mut text = args.clip.selector(&args.model.options(false).engine_config(), geometric)?;
    let image_args: Vec<&str> = args.images.iter().filter_map(|p| p.to_str()).collect();
    let mut model = args.model.load_for(false, &image_args)?;
    eprintln!("model: {}", model.describe());
    let mut overlay = Overlay::new(OverlayStyle::default());
    for (path, (json_path, png_path)) in args.images.iter().zip(&names) {
        let mut img = read_image(path)?;
        let (w, h) = (img.cols() as u32, img.rows() as u32);
        let (dets, keep, text_ms) = {
            let data = img.data_bytes()?;
            let view = ImageView::packed(w, h, PixelFormat::Bgr8, data)
                .with_context(|| format!("{}: unexpected pixel layout", path.display()))?;
            let dets = model.segment(view).with_context(|| format!("segmenting {}", path.display()))?;
            let t0 = std::time::Instant::now();
            let keep = match &mut text {
                Some(sel) => PromptSelector::select(sel, view, &dets),
                None => prompt::select(&dets, &prompt, w, h),
            }
            .with_context(|| format!("prompt on {}", path.display()))?;
            (dets, keep, text.is_some().then(|| t0.elapsed().as_secs_f64() * 1e3))
        };
        let scores = text.as_ref().map(|s| s.last_scores().to_vec()).unwrap_or_default();
        let t = model.last_timings();
        eprintln!(
            "{}: {}x{}, {} objects ({} selected); pre {:.1} ms, inference {:.1} ms, post {:.1} ms",
            path.display(),
            w,
            h,
            dets.len(),
            keep.len(),
            t.pre.as_secs_f64() * 1e3,
            t.infer.as_secs_f64() * 1e3,
            t.post.as_secs_f64() * 1e3
        );
        if let Some(ms) = text_ms {
            let scored = scores.iter().filter(|s| s.is_some()).count();
            eprintln!(
                "{}: text prompt {:?}: {scored} masks scored by CLIP ({} skipped as tiny), {ms:.1} ms",
                path.display(),
                args.clip.texts,
                dets.len() - scored,
            );
        }
        let json = JsonImage {
            image: path.display().to_string(),
            width: w,
            height: h,
            model: model.describe(),
            prompt: &prompt_desc,
            texts: &args.clip.texts,
            detections: keep
                .iter()
                .map(|&i| {
                    let d = &dets[i];
                    JsonDetection {
                        index: i,
                        xyxy: d.bbox.to_array(),
                        score: d.score,
                        class_id: d.class_id,
                        mask: d.mask.as_ref().map(|m| m.to_rle()).unwrap_or(Rle { size: [h, w], counts: vec![w * h] }),
                        clip_score: scores.get(i).copied().flatten(),
                    }
                })
                .collect(),
        };
        AtomicFile::write_all_to(json_path, &serde_json::to_vec(&json)?)?;

        let items: Vec<OverlayItem<'_>> = keep
            .iter()
            .map(|&i| OverlayItem {
                mask: dets[i].mask.as_ref(),
                bbox: dets[i].bbox,
                color_key: i as u64,
                label: Some(i.to_string()),
                score: Some(dets[i].score),
            })
            .collect();
        let stride = img.step1(0)?;
        overlay.draw(img.data_bytes_mut()?, w, h, stride, PixelFormat::Bgr8, &items)?;
        let mut png = opencv::core::Vector::<u8>::new();
        let ok = opencv::imgcodecs::imencode(".png", &img, &mut png, &opencv::core::Vector::new())
            .with_context(|| format!("cannot encode {}", png_path.display()))?;
        if !ok {
            anyhow::bail!("cannot encode {}", png_path.display());
        }
        AtomicFile::write_all_to(png_path, png.as_slice())?;
        outln!("{}", png_path.display());
        outln!("{}", json_path.display());
    }
    Ok(())
}
