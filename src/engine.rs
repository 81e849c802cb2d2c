//! The inference engine layer: the one place that creates ONNX Runtime sessions.
//!
//! Models do not own their inference engine (the usls crate's design): a model ([`crate::model::FastSam`]
//! now, a CLIP encoder next) asks [`Engine::load`] for a session built from an [`EngineConfig`]
//! (execution provider, intra-op threads, graph optimisation level, precision, ONNX Runtime
//! library) and keeps the [`Engine`] it gets back: the session, the provider actually in use and the
//! model's metadata.
//!
//! No silent fallback: an explicitly requested `cuda`/`tensorrt` device that cannot be registered is
//! an [`EngineError::Provider`]; only [`Device::Auto`] falls back to the CPU, with a log line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

/// Errors of the engine layer (session creation).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The ONNX Runtime library cannot be found or loaded.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("cannot read model {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid ONNX model ({message}); expected a FastSAM / YOLOv8-seg ONNX export (get one with `fastsam-track model fetch FastSAM-s`, or convert a checkpoint with `fastsam-track model convert FILE.pt`)"
    )]
    InvalidOnnx { path: PathBuf, message: String },
    #[error("execution provider for device `{device}` could not be registered: {message}")]
    Provider { device: String, message: String },
    #[error("invalid engine option: {0}")]
    InvalidOption(String),
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    Cpu,
    Cuda(u32),
    TensorRt(u32),
    /// CUDA when it can be registered, otherwise CPU (logged).
    #[default]
    Auto,
}

impl FromStr for Device {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (name, idx) = match s.split_once(':') {
            Some((n, i)) => {
                let i = i.parse::<u32>().map_err(|_| {
                    EngineError::InvalidOption(format!("device index in `{s}` is not a number (use e.g. cuda:0)"))
                })?;
                (n.to_string(), Some(i))
            }
            None => (s.clone(), None),
        };
        match (name.as_str(), idx) {
            ("cpu", None) => Ok(Device::Cpu),
            ("auto", None) => Ok(Device::Auto),
            ("cuda", i) => Ok(Device::Cuda(i.unwrap_or(0))),
            ("tensorrt" | "trt", i) => Ok(Device::TensorRt(i.unwrap_or(0))),
            _ => Err(EngineError::InvalidOption(format!(
                "unknown device `{s}`; use cpu, cuda, cuda:N, tensorrt, tensorrt:N or auto"
            ))),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::TensorRt(i) => write!(f, "tensorrt:{i}"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

/// ONNX Runtime graph optimisation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Optimization {
    Disable,
    Basic,
    Extended,
    /// All optimisations, including layout ones (ONNX Runtime's level 3).
    #[default]
    All,
}

impl Optimization {
    fn level(self) -> GraphOptimizationLevel {
        match self {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::Level3,
        }
    }
}

/// Numeric precision the model runs in.
///
/// - [`Precision::Fp32`]: the float model as exported.
/// - [`Precision::Int8`]: a statically quantized (QDQ) model. On the CPU the model file must be
///   the quantized one ([`crate::convert::quantize`] makes it; the CLI's `--precision int8`
///   quantizes once and caches it); ONNX Runtime fuses its QDQ pairs into int8 kernels. On
///   TensorRT the same QDQ file runs with TensorRT's INT8 flag (explicit quantization: the
///   calibrated scales are in the graph, so no separate calibration table is needed).
/// - [`Precision::Fp16`]: half precision where the provider does it from a float model: TensorRT's
///   FP16 flag. The CPU and plain CUDA have no fp16 path here (an fp16 export would be needed), so
///   asking for it there is an [`EngineError::InvalidOption`] rather than a silent fp32 run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    Int8,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Precision::Fp32 => f.write_str("fp32"),
            Precision::Fp16 => f.write_str("fp16"),
            Precision::Int8 => f.write_str("int8"),
        }
    }
}

impl FromStr for Precision {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "float" => Ok(Precision::Fp32),
            "fp16" | "float16" | "half" => Ok(Precision::Fp16),
            "int8" => Ok(Precision::Int8),
            other => Err(EngineError::InvalidOption(format!("unknown precision `{other}`; use fp32, int8 or fp16"))),
        }
    }
}

/// A tensor shape for messages: `[1,3,?,?]` (dynamic axes as `?`).
pub(crate) fn fmt_dims(d: &[i64]) -> String {
    let v: Vec<String> = d.iter().map(|&x| if x < 0 { "?".to_string() } else { x.to_string() }).collect();
    format!("[{}]", v.join(","))
}

/// Intra-op threads for each of `workers` sessions that run side by side: the machine's cores
/// shared out among them (at least one each), so that the workers do not oversubscribe the CPU.
pub fn threads_per_worker(workers: usize) -> usize {
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    (cores / workers.max(1)).max(1)
}

/// How to build an inference session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineConfig {
    pub device: Device,
    /// ONNX Runtime intra-op threads (`None`: ONNX Runtime's choice).
    pub intra_threads: Option<usize>,
    pub optimization: Optimization,
    pub precision: Precision,
    /// Path to `libonnxruntime.so` (`None`: found by [`crate::runtime::locate`]).
    pub ort_lib: Option<PathBuf>,
}

impl EngineConfig {
    /// A configuration running on `device` with every other setting at its default.
    pub fn with_device(device: Device) -> Self {
        EngineConfig { device, ..EngineConfig::default() }
    }

    pub fn validate(&self) -> Result<(), EngineError> {
        if self.intra_threads == Some(0) {
            return Err(EngineError::InvalidOption("threads must be at least 1".into()));
        }
        if self.precision == Precision::Fp16 && !matches!(self.device, Device::TensorRt(_)) {
            return Err(EngineError::InvalidOption(format!(
                "precision fp16 needs --device tensorrt (TensorRT's FP16 mode); on {} use fp32, or int8 on the CPU",
                self.device
            )));
        }
        Ok(())
    }
}

/// The model's metadata (ONNX `metadata_props` and producer), copied out of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMetadata {
    pub producer: Option<String>,
    pub custom: BTreeMap<String, String>,
}

impl ModelMetadata {
    pub fn custom(&self, key: &str) -> Option<&str> {
        self.custom.get(key).map(String::as_str)
    }
}

/// A loaded ONNX Runtime session with the provider it runs on.
pub struct Engine {
    pub session: Session,
    path: PathBuf,
    provider: String,
    metadata: ModelMetadata,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.path)
            .field("provider", &self.provider)
            .field("config", &self.config)
            .finish()
    }
}

impl Engine {
    /// Build a session for the ONNX model at `path`.
    pub fn load(path: &Path, config: &EngineConfig) -> Result<Engine, EngineError> {
        config.validate()?;
        let env = crate::runtime::environment(config.ort_lib.as_deref())?;
        // read errors (missing file, permissions) get their own message
        std::fs::File::open(path).map_err(|source| EngineError::Read { path: path.to_path_buf(), source })?;
        let invalid = |message: String| EngineError::InvalidOnnx { path: path.to_path_buf(), message };
        let mut builder = Session::builder(&env)
            .map_err(|e| invalid(e.to_string()))?
            .with_optimization_level(config.optimization.level())
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(n) = config.intra_threads {
            builder = builder.with_intra_threads(n).map_err(|e| invalid(e.to_string()))?;
        }
        let provider = register_device_with(&mut builder, config.device, config.precision)?;
        let session = builder.commit_from_file(path).map_err(|e| invalid(e.to_string()))?;
        let metadata = match session.metadata() {
            Ok(m) => ModelMetadata {
                producer: m.producer(),
                custom: m
                    .custom_keys()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|k| m.custom(&k).map(|v| (k, v)))
                    .collect(),
            },
            Err(e) => {
                tracing::debug!(model = %path.display(), "no model metadata: {e}");
                ModelMetadata::default()
            }
        };
        if config.precision == Precision::Int8 && !metadata.custom.contains_key(crate::convert::quantize::METADATA_KEY)
        {
            tracing::warn!(
                "--precision int8 with {}, which fastsam-track did not quantize: it runs as it is",
                path.display()
            );
        }
        tracing::debug!(model = %path.display(), provider, precision = %config.precision, "created inference session");
        Ok(Engine { session, path: path.to_path_buf(), provider, metadata, config: config.clone() })
    }

    /// The execution provider in use ("cpu", "cuda:0", "tensorrt:0").
    pub fn provider(&self) -> &str {
        &self.provider
    }
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Register the execution provider for `device`; returns the provider's name. Explicit GPU devices
/// use `error_on_failure` semantics (ort would otherwise fall back to the CPU silently).
pub fn register_device(builder: &mut SessionBuilder, device: Device) -> Result<String, EngineError> {
    register_device_with(builder, device, Precision::Fp32)
}

/// [`register_device`] with a precision: TensorRT gets its FP16 or INT8 flag (INT8 expects a QDQ
/// model, whose scales TensorRT reads from the graph).
pub fn register_device_with(
    builder: &mut SessionBuilder,
    device: Device,
    precision: Precision,
) -> Result<String, EngineError> {
    use ort::ep;
    let fail = |e: ort::Error| EngineError::Provider {
        device: device.to_string(),
        message: format!(
            "{e}. The CUDA/TensorRT providers need the GPU build of ONNX Runtime (onnxruntime-gpu) with CUDA 13 and cuDNN 9; use --device cpu to run on the CPU"
        ),
    };
    match device {
        Device::Cpu => Ok("cpu".into()),
        Device::Cuda(i) => {
            ep::CUDA::default().with_device_id(i as i32).register(builder).map_err(fail)?;
            Ok(format!("cuda:{i}"))
        }
        Device::TensorRt(i) => {
            ep::TensorRT::default()
                .with_device_id(i as i32)
                .with_fp16(precision == Precision::Fp16)
                .with_int8(precision == Precision::Int8)
                .register(builder)
                .map_err(fail)?;
            // CUDA runs the nodes TensorRT does not take
            ep::CUDA::default().with_device_id(i as i32).register(builder).map_err(fail)?;
            Ok(format!("tensorrt:{i}"))
        }
        Device::Auto => match ep::CUDA::default().register(builder) {
            Ok(()) => {
                tracing::info!("device auto: using CUDA");
                Ok("cuda:0".into())
            }
            Err(e) => {
                tracing::info!("device auto: CUDA unavailable ({e}); falling back to CPU");
                Ok("cpu".into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_round_trips_through_text() {
        for d in [Device::Cpu, Device::Cuda(0), Device::Cuda(3), Device::TensorRt(1), Device::Auto] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
        assert_eq!("trt:2".parse::<Device>().unwrap(), Device::TensorRt(2));
        assert_eq!(" CPU ".parse::<Device>().unwrap(), Device::Cpu);
        assert!(matches!("gpu".parse::<Device>(), Err(EngineError::InvalidOption(_))));
        assert!(matches!("cuda:x".parse::<Device>(), Err(EngineError::InvalidOption(_))));
        assert!("cpu:0".parse::<Device>().is_err());
    }

    #[test]
    fn precision_round_trips_and_fp16_needs_tensorrt() {
        for p in [Precision::Fp32, Precision::Fp16, Precision::Int8] {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
        }
        assert!("int4".parse::<Precision>().is_err());
        let fp16 = |device| EngineConfig { device, precision: Precision::Fp16, ..EngineConfig::default() };
        assert!(matches!(fp16(Device::Cpu).validate(), Err(EngineError::InvalidOption(_))));
        assert!(matches!(fp16(Device::Cuda(0)).validate(), Err(EngineError::InvalidOption(_))));
        assert!(fp16(Device::TensorRt(0)).validate().is_ok());
        let int8 = EngineConfig { device: Device::Cpu, precision: Precision::Int8, ..EngineConfig::default() };
        assert!(int8.validate().is_ok());
    }

    #[test]
    fn zero_threads_is_refused() {
        let c = EngineConfig { intra_threads: Some(0), ..EngineConfig::default() };
        assert!(matches!(c.validate(), Err(EngineError::InvalidOption(_))));
        assert!(EngineConfig::with_device(Device::Cpu).validate().is_ok());
    }
}
