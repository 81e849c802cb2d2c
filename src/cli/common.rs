//! Options shared by the subcommands that run the model (`segment`, the main job).
//! Owned by the model work; other subcommands `#[command(flatten)]` it.

use std::path::PathBuf;

use anyhow::Context;

use fastsam_track::convert::quantize::source::{CalibSource, IMAGE_EXTENSIONS, quantize_cached};
use fastsam_track::convert::quantize::{self, QuantizeOptions};
use fastsam_track::model::{Device, FastSam, ModelOptions, Precision};
use fastsam_track::types::BBox;

/// Model selection and inference options.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model: a .onnx file (FastSAM / YOLOv8-seg export), an Ultralytics .pt checkpoint (converted
    /// to ONNX in Rust and cached), or FastSAM-s / FastSAM-x (downloaded once from the Ultralytics
    /// release, then converted). Default: $FASTSAM_MODEL, else FastSAM-s.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Inference size (longest side, multiple of 32). Default: the model's own size.
    #[arg(long, value_name = "N")]
    pub imgsz: Option<u32>,
    /// Confidence threshold: detections scoring below it are dropped. [default: 0.4
    /// (FastSAM's) for images; for tracking, the tracker's `track_low_thresh` (0.1 in the
    /// built-in configs/bytetrack.toml), so that ByteTrack's second stage sees the low-score
    /// detections that keep tracks alive; new tracks still need `new_track_thresh`]
    #[arg(long, value_name = "SCORE")]
    pub conf: Option<f32>,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = ModelOptions::default().iou)]
    pub iou: f32,
    /// Maximum detections per image.
    #[arg(long, default_value_t = ModelOptions::default().max_det)]
    pub max_det: usize,
    /// Build masks at the original resolution (Ultralytics `retina_masks`); `--retina-masks false`
    /// builds them at the network resolution and resizes.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub retina_masks: Option<bool>,
    /// Execution device: cpu, cuda, cuda:N, tensorrt, tensorrt:N, or auto (CUDA if available,
    /// else CPU).
    #[arg(long, default_value_t = ModelOptions::default().device, value_parser = parse_device)]
    pub device: Device,
    /// ONNX Runtime intra-op threads (default: ONNX Runtime's choice); capped at the machine's
    /// cores, with a warning.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Path to libonnxruntime.so (default: found automatically).
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Numeric precision: fp32, or int8 (CPU: the model is quantized once, calibrated on the
    /// input itself or on --calib, and cached by weights, calibration source and quantizer
    /// version; about 2-3x faster on CPUs with AVX-512 VNNI; see docs/int8.md). fp16 needs
    /// --device tensorrt.
    #[arg(long, value_name = "P", default_value_t = ModelOptions::default().precision, value_parser = parse_precision)]
    pub precision: Precision,
    /// With --precision int8: calibrate on this video, URI, image folder or image instead of the
    /// input.
    #[arg(long, value_name = "SOURCE", requires = "precision")]
    pub calib: Option<String>,
    /// With --precision int8: calibration frames, spread over the source.
    #[arg(long, value_name = "N", default_value_t = QuantizeOptions::default().calib_frames)]
    pub calib_frames: usize,
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse::<Precision>().map_err(|e| e.to_string())
}

fn parse_device(s: &str) -> Result<Device, String> {
    s.parse::<Device>().map_err(|e| e.to_string())
}

impl ModelArgs {
    /// The model options; `default_retina` applies when `--retina-masks` is not given.
    pub fn options(&self, default_retina: bool) -> ModelOptions {
        ModelOptions {
            imgsz: self.imgsz,
            conf: self.conf.unwrap_or(ModelOptions::default().conf),
            iou: self.iou,
            max_det: self.max_det,
            retina_masks: self.retina_masks.unwrap_or(default_retina),
            device: self.device,
            intra_threads: self.threads.map(cap_threads),
            ort_lib: self.ort_lib.clone(),
            precision: self.precision,
            ..ModelOptions::default()
        }
    }

    /// The model file to run: [`ModelArgs::model_path`], and with `--precision int8` its
    /// quantized copy (from the cache, or made now), calibrated on `--calib`, else on `inputs`
    /// (one video or URI, or still images). Says which file runs.
    pub fn model_path_for(&self, inputs: &[&str]) -> anyhow::Result<PathBuf> {
        if self.precision != Precision::Int8 {
            return self.model_path();
        }
        if self.calib_frames == 0 {
            return Err(super::UsageError("--calib-frames must be at least 1".into()).into());
        }
        // the calibration source is checked before the model is converted or quantized
        let source = match (&self.calib, inputs) {
            (Some(c), _) => CalibSource::open(c)?,
            (None, []) => {
                return Err(super::UsageError(
                    "--precision int8 needs calibration frames here: give --calib VIDEO_OR_FOLDER".into(),
                )
                .into());
            }
            (None, [one]) if !is_image(one) => CalibSource::open(one)?,
            (None, many) => CalibSource::images(many.iter().map(PathBuf::from).collect())?,
        };
        let float = self.model_path()?;
        if let Some(info) = quantize::quantization_info(&float) {
            eprintln!("model: {} is already int8 ({info}); running it as it is", float.display());
            return Ok(float);
        }
        let opts = QuantizeOptions {
            calib_frames: self.calib_frames,
            imgsz: self.imgsz,
            intra_threads: self.threads.map(cap_threads),
            ort_lib: self.ort_lib.clone(),
            ..QuantizeOptions::default()
        };
        let bar = super::quantize::calib_bar(self.calib_frames);
        let mut progress = |done: usize, total: usize| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        };
        let (path, fresh) = quantize_cached(&float, source, &opts, &mut progress)?;
        bar.finish_and_clear();
        eprintln!(
            "model: int8 {} ({}, from {})",
            path.display(),
            if fresh { "quantized now and cached" } else { "quantized earlier, from the cache" },
            float.display()
        );
        Ok(path)
    }

    /// The ONNX model file: `--model`, else `$FASTSAM_MODEL`, else FastSAM-s; names and `.pt`
    /// checkpoints are downloaded and converted as needed (see [`fastsam_track::convert::resolve_model`]).
    pub fn model_path(&self) -> anyhow::Result<PathBuf> {
        Ok(fastsam_track::convert::resolve_model(self.model.as_deref())?)
    }

    /// Resolve and load the model (with `--precision int8`, `--calib` is the calibration source).
    pub fn load(&self, default_retina: bool) -> anyhow::Result<FastSam> {
        self.load_for(default_retina, &[])
    }

    /// Resolve and load the model; `inputs` calibrate `--precision int8` when `--calib` is not given.
    pub fn load_for(&self, default_retina: bool, inputs: &[&str]) -> anyhow::Result<FastSam> {
        let path = self.model_path_for(inputs)?;
        self.load_path(&path, self.options(default_retina))
    }

    /// Load the resolved model file `path` with `opts`.
    pub fn load_path(&self, path: &std::path::Path, opts: ModelOptions) -> anyhow::Result<FastSam> {
        FastSam::load(path, opts).map_err(|e| {
            let hint = fastsam_track::convert::cache::damaged_hint(path).unwrap_or_default();
            anyhow::Error::from(e).context(format!("loading model {}{hint}", path.display()))
        })
    }
}

/// Text prompts with CLIP (`--text`), shared by `segment` and the main job.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClipArgs {
    /// Keep the object CLIP finds most similar to this description, e.g. "a photo of a dog"
    /// (repeatable: the union of each prompt's pick). Needs --clip-image and --clip-text. Each
    /// candidate mask's box is cropped with the pixels outside the mask blanked, masks of 100
    /// pixels or fewer are skipped; combines with --box/--point as their union.
    #[arg(long = "text", value_name = "TEXT")]
    pub texts: Vec<String>,
    /// Keep every object whose CLIP cosine similarity with the text is at least T instead of
    /// only the best one (matches typically score 0.2 to 0.35 with ViT-B/32).
    #[arg(long, value_name = "T", requires = "texts", allow_negative_numbers = true)]
    pub text_threshold: Option<f32>,
    /// CLIP image encoder (ONNX, images[N,3,224,224] -> [N,D]); make it with
    /// scripts/export-clip.py (docs/clip.md).
    #[arg(long, value_name = "MODEL", env = "FASTSAM_CLIP_IMAGE")]
    pub clip_image: Option<PathBuf>,
    /// CLIP text encoder (ONNX, tokens[N,77] int64 -> [N,D]), from the same CLIP model.
    #[arg(long, value_name = "MODEL", env = "FASTSAM_CLIP_TEXT")]
    pub clip_text: Option<PathBuf>,
    /// CLIP's BPE vocabulary, bpe_simple_vocab_16e6.txt.gz. Default: that file beside the text
    /// encoder (where scripts/export-clip.py puts it).
    #[arg(long, value_name = "PATH", env = "FASTSAM_CLIP_VOCAB")]
    pub clip_vocab: Option<PathBuf>,
}

impl ClipArgs {
    /// Whether a text prompt was given.
    pub fn active(&self) -> bool {
        !self.texts.is_empty()
    }

    /// The CLIP files, or a usage error naming what is missing.
    pub fn paths(&self) -> anyhow::Result<fastsam_track::clip::ClipPaths> {
        let missing: Vec<&str> =
            [("--clip-image", self.clip_image.is_none()), ("--clip-text", self.clip_text.is_none())]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect();
        match (&self.clip_image, &self.clip_text) {
            (Some(image), Some(text)) => Ok(fastsam_track::clip::ClipPaths {
                image: image.clone(),
                text: text.clone(),
                vocab: self.clip_vocab.clone(),
            }),
            _ => Err(super::UsageError(format!(
                "--text needs the CLIP encoders: {} missing. Export them with scripts/export-clip.py \
                 (see docs/clip.md) and pass --clip-image IMAGE.onnx --clip-text TEXT.onnx \
                 (or set FASTSAM_CLIP_IMAGE / FASTSAM_CLIP_TEXT)",
                missing.join(" and ")
            ))
            .into()),
        }
    }

    /// The text-prompt settings.
    pub fn config(&self) -> fastsam_track::clip::TextPromptConfig {
        fastsam_track::clip::TextPromptConfig {
            threshold: self.text_threshold,
            ..fastsam_track::clip::TextPromptConfig::default()
        }
    }

    /// Load CLIP and build the text selector (`None` without `--text`); `geometric` is the box/point
    /// part of the prompt. Every check (files, signatures, the pair, empty prompts) happens here,
    /// before any frame.
    pub fn selector(
        &self,
        engine: &fastsam_track::engine::EngineConfig,
        geometric: Option<fastsam_track::model::Prompt>,
    ) -> anyhow::Result<Option<fastsam_track::clip::TextSelector>> {
        if !self.active() {
            return Ok(None);
        }
        let model = self.load(engine)?;
        let sel = fastsam_track::clip::TextSelector::new(model, self.texts.clone(), self.config())
            .map_err(|e| super::UsageError(e.to_string()))?;
        Ok(Some(sel.with_geometric(geometric)))
    }

    /// Load the CLIP pair (checks the vocabulary, the signatures and the pair).
    pub fn load(&self, engine: &fastsam_track::engine::EngineConfig) -> anyhow::Result<fastsam_track::clip::ClipModel> {
        let paths = self.paths()?;
        self.config().validate().map_err(|e| super::UsageError(e.to_string()))?;
        let model = fastsam_track::clip::ClipModel::load(&paths, engine).context("loading the CLIP encoders")?;
        eprintln!("text prompt: {}", model.describe());
        Ok(model)
    }
}

fn is_image(s: &str) -> bool {
    std::path::Path::new(s).extension().is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// `--threads N` capped at the machine's cores (ONNX Runtime makes no progress with 100000
/// threads); warns when capping.
pub fn cap_threads(n: usize) -> usize {
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    if n > cores {
        tracing::warn!("--threads {n} is more than the {cores} cores of this machine: using {cores}");
        cores
    } else {
        n
    }
}

/// `x1,y1,x2,y2` in pixels (parsed by the library: [`fastsam_track::model::prompt::parse_box`]).
pub fn parse_box(s: &str) -> Result<BBox, String> {
    fastsam_track::model::prompt::parse_box(s).map_err(|e| e.to_string())
}

/// `x,y[,label]` with label 1 (include, default) or 0 (exclude) (parsed by the library:
/// [`fastsam_track::model::prompt::parse_point`]).
pub fn parse_point(s: &str) -> Result<(f32, f32, bool), String> {
    fastsam_track::model::prompt::parse_point(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_prompts() {
        assert_eq!(parse_box("1,2,3.5,4").unwrap(), BBox::new(1.0, 2.0, 3.5, 4.0));
        assert!(parse_box("1,2,3").is_err());
        assert!(parse_box("5,2,3,4").is_err());
        assert!(parse_box("a,2,3,4").is_err());
        assert!(parse_box("5,5,1,1").is_err());
        assert_eq!(parse_point("3,4").unwrap(), (3.0, 4.0, true));
        assert_eq!(parse_point("3,4,0").unwrap(), (3.0, 4.0, false));
        assert!(parse_point("3,4,2").is_err());
        assert!(parse_point("3").is_err());
        assert!(parse_point("a,4").is_err());
    }

    #[test]
    fn threads_are_capped_at_the_cores() {
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(cap_threads(100_000), cores);
        assert_eq!(cap_threads(1), 1);
    }
}
