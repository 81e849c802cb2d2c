//! Options shared by the subcommands that run the model (`segment`, the main job).
//! Owned by the model work; other subcommands `#[command(flatten)]` it.

use std::path::PathBuf;

use fastsam_track::model::{Device, FastSam, ModelOptions};
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
            ..ModelOptions::default()
        }
    }

    /// The ONNX model file: `--model`, else `$FASTSAM_MODEL`, else FastSAM-s; names and `.pt`
    /// checkpoints are downloaded and converted as needed (see [`fastsam_track::convert::resolve_model`]).
    pub fn model_path(&self) -> anyhow::Result<PathBuf> {
        Ok(fastsam_track::convert::resolve_model(self.model.as_deref())?)
    }

    /// Resolve and load the model.
    pub fn load(&self, default_retina: bool) -> anyhow::Result<FastSam> {
        let path = self.model_path()?;
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
