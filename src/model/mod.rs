//! FastSAM inference: ONNX model loading and signature checks ([`FastSam::load`]), execution
//! provider selection ([`Device`]), Ultralytics-exact letterbox preprocessing ([`letterbox`]),
//! postprocessing ([`postprocess`], [`masks`]) and prompts ([`prompt`]).
//!
//! A FastSAM ONNX export (Ultralytics, YOLOv8-seg with one class) maps `images[N,3,H,W]` to
//! `output0[N,4+nc+32,A]` (boxes, scores, mask coefficients) and `output1[N,32,H/4,W/4]` (mask
//! prototypes); static or dynamic spatial size.

pub mod letterbox;
pub mod masks;
pub mod npy;
pub mod postprocess;
pub mod prompt;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorRef, ValueType};

pub use letterbox::{Letterbox, Preprocessor};
pub use masks::{ProtoMask, Protos};
pub use postprocess::{PostConfig, Postprocessor, RawDetection};
pub use prompt::Prompt;

use crate::types::{Detection, ImageView, SegmentTimings, Segmenter};

/// Errors of the model stage.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
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
    #[error(
        "{path} is not a FastSAM segmentation model: expected images[N,3,H,W] -> output0[N,37,A], output1[N,32,H/4,W/4], found {found}{hint}"
    )]
    Signature { path: PathBuf, found: String, hint: String },
    #[error("execution provider for device `{device}` could not be registered: {message}")]
    Provider { device: String, message: String },
    #[error("invalid model option: {0}")]
    InvalidOption(String),
    #[error("preprocessing failed: {0}")]
    Preprocess(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("unexpected model output: {0}")]
    Output(String),
    #[error("invalid prompt: {0}")]
    Prompt(String),
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
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (name, idx) = match s.split_once(':') {
            Some((n, i)) => {
                let i = i.parse::<u32>().map_err(|_| {
                    ModelError::InvalidOption(format!("device index in `{s}` is not a number (use e.g. cuda:0)"))
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
            _ => Err(ModelError::InvalidOption(format!(
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

/// Model options (defaults: Ultralytics' everything-prompt values).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// Requested input size (long side); `None` = the model's metadata or fixed shape, else 640.
    pub imgsz: Option<u32>,
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    pub retina_masks: bool,
    pub device: Device,
    pub intra_threads: Option<usize>,
    pub ort_lib: Option<PathBuf>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            imgsz: None,
            conf: 0.4,
            iou: 0.9,
            max_det: 300,
            retina_masks: true,
            device: Device::Auto,
            intra_threads: None,
            ort_lib: None,
        }
    }
}

impl ModelOptions {
    fn validate(&self) -> Result<(), ModelError> {
        if !(0.0..=1.0).contains(&self.conf) {
            return Err(ModelError::InvalidOption(format!("conf {} must be in [0, 1]", self.conf)));
        }
        if !(0.0..=1.0).contains(&self.iou) {
            return Err(ModelError::InvalidOption(format!("iou {} must be in [0, 1]", self.iou)));
        }
        if self.max_det == 0 {
            return Err(ModelError::InvalidOption("max_det must be at least 1".into()));
        }
        if let Some(s) = self.imgsz
            && !(32..=8192).contains(&s)
        {
            return Err(ModelError::InvalidOption(format!("imgsz {s} must be between 32 and 8192")));
        }
        if self.intra_threads == Some(0) {
            return Err(ModelError::InvalidOption("threads must be at least 1".into()));
        }
        Ok(())
    }
}

/// The model's input/output signature, as validated at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSignature {
    pub input_name: String,
    pub output0_name: String,
    pub output1_name: String,
    /// Fixed `(height, width)` of the input, `None` when dynamic.
    pub fixed_hw: Option<(u32, u32)>,
    /// Number of mask coefficients / prototypes (32).
    pub num_masks: u32,
}

fn fmt_dims(d: &[i64]) -> String {
    let v: Vec<String> = d.iter().map(|&x| if x < 0 { "?".to_string() } else { x.to_string() }).collect();
    format!("[{}]", v.join(","))
}

fn describe_outlet(name: &str, t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => format!("{name}{} {ty:?}", fmt_dims(shape)),
        other => format!("{name} ({other:?})"),
    }
}

/// Validate the signature of a loaded session (see the module docs).
pub fn check_signature(path: &Path, session: &Session) -> Result<ModelSignature, ModelError> {
    let ins: Vec<(String, ValueType)> =
        session.inputs().iter().map(|o| (o.name().to_string(), o.dtype().clone())).collect();
    let outs: Vec<(String, ValueType)> =
        session.outputs().iter().map(|o| (o.name().to_string(), o.dtype().clone())).collect();
    let found = format!(
        "{} -> {}",
        ins.iter().map(|(n, t)| describe_outlet(n, t)).collect::<Vec<_>>().join(", "),
        outs.iter().map(|(n, t)| describe_outlet(n, t)).collect::<Vec<_>>().join(", ")
    );
    let fail =
        |hint: &str| ModelError::Signature { path: path.to_path_buf(), found: found.clone(), hint: hint.to_string() };
    let float_dims = |t: &ValueType| -> Option<Vec<i64>> {
        match t {
            ValueType::Tensor { ty: ort::value::TensorElementType::Float32, shape, .. } => Some(shape.to_vec()),
            _ => None,
        }
    };
    if ins.len() != 1 {
        return Err(fail(" (a FastSAM model has exactly one image input)"));
    }
    let idims = float_dims(&ins[0].1).ok_or_else(|| fail(" (the input must be a float32 tensor)"))?;
    if idims.len() != 4 || !(idims[1] == 3 || idims[1] < 0) {
        return Err(fail(" (the input must be an NCHW image tensor with 3 channels)"));
    }
    if idims[0] > 1 {
        return Err(fail(" (the batch dimension must be 1 or dynamic; re-export with batch=1)"));
    }
    if outs.len() != 2 {
        let hint = if outs.len() == 1 {
            match float_dims(&outs[0].1).map(|d| d.len()) {
                Some(3) => " (this looks like a detection-only YOLO model: it has no mask prototype output)",
                Some(2) => " (this looks like a classification model)",
                _ => " (a FastSAM model has exactly two outputs)",
            }
        } else {
            " (a FastSAM model has exactly two outputs)"
        };
        return Err(fail(hint));
    }
    let d0 = float_dims(&outs[0].1);
    let d1 = float_dims(&outs[1].1);
    let (Some(d0), Some(d1)) = (d0, d1) else {
        return Err(fail(" (outputs must be float32 tensors)"));
    };
    let (i0, i1) = match (d0.len(), d1.len()) {
        (3, 4) => (0, 1),
        (4, 3) => (1, 0),
        _ => return Err(fail(" (expected one rank-3 detection output and one rank-4 prototype output)")),
    };
    let (det, pro) = if i0 == 0 { (&d0, &d1) } else { (&d1, &d0) };
    let nm = pro[1];
    if nm <= 0 {
        return Err(fail(" (the prototype output must have a fixed channel count)"));
    }
    if det[1] >= 0 && det[1] < 5 + nm {
        return Err(fail(" (output0 must hold 4 box rows, at least one class row and one row per mask prototype)"));
    }
    let fixed_hw = (idims[2] > 0 && idims[3] > 0).then_some((idims[2] as u32, idims[3] as u32));
    if let Some((h, w)) = fixed_hw {
        if !h.is_multiple_of(32) || !w.is_multiple_of(32) {
            return Err(fail(" (the input size must be a multiple of 32)"));
        }
        if (pro[2] > 0 && pro[2] != h as i64 / 4) || (pro[3] > 0 && pro[3] != w as i64 / 4) {
            return Err(fail(" (prototypes must be a quarter of the input size)"));
        }
        let anchors: i64 = [8, 16, 32].iter().map(|s| (h as i64 / s) * (w as i64 / s)).sum();
        if det[2] > 0 && det[2] != anchors {
            return Err(fail(" (the anchor count does not match strides 8/16/32)"));
        }
    }
    Ok(ModelSignature {
        input_name: ins[0].0.clone(),
        output0_name: outs[i0].0.clone(),
        output1_name: outs[i1].0.clone(),
        fixed_hw,
        num_masks: nm as u32,
    })
}

/// Parse Ultralytics' `imgsz` metadata (`"[640, 640]"` or `"640"`) into `(h, w)`.
pub fn parse_imgsz(s: &str) -> Option<(u32, u32)> {
    let v: Vec<u32> = s
        .trim_matches(|c: char| c == '[' || c == ']' || c == '(' || c == ')' || c.is_whitespace())
        .split(',')
        .map(|t| t.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .ok()?;
    match v.as_slice() {
        [s] => Some((*s, *s)),
        [h, w] => Some((*h, *w)),
        _ => None,
    }
}

/// Prototype buffers kept for reuse: enough for the frames a pipeline keeps in flight.
const PROTO_POOL_MAX: usize = 16;

/// A loaded FastSAM model with reusable pre/postprocessing buffers.
pub struct FastSam {
    session: Session,
    path: PathBuf,
    sig: ModelSignature,
    opts: ModelOptions,
    /// Letterbox target `(h, w)`.
    target_hw: (u32, u32),
    stride: u32,
    provider: String,
    pre: Preprocessor,
    post: Postprocessor,
    out0: Vec<f32>,
    protos: std::sync::Arc<Vec<f32>>,
    /// Earlier prototype buffers, reused once no mask holds them any more (bounded).
    proto_pool: Vec<std::sync::Arc<Vec<f32>>>,
    proto_allocations: u64,
    last_dims: (usize, usize, usize, usize),
    timings: SegmentTimings,
}

impl std::fmt::Debug for FastSam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastSam").field("path", &self.path).field("sig", &self.sig).finish()
    }
}

fn ort_err<R>(e: ort::Error<R>) -> String {
    e.to_string()
}

impl FastSam {
    /// Load and validate a FastSAM ONNX model.
    pub fn load(path: &Path, opts: ModelOptions) -> Result<FastSam, ModelError> {
        opts.validate()?;
        let env = crate::runtime::environment(opts.ort_lib.as_deref())?;
        // read errors (missing file, permissions) get their own message
        std::fs::File::open(path).map_err(|source| ModelError::Read { path: path.to_path_buf(), source })?;
        let builder_err = |e: String| ModelError::InvalidOnnx { path: path.to_path_buf(), message: e };
        let mut builder = Session::builder(&env)
            .map_err(|e| builder_err(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| builder_err(ort_err(e)))?;
        if let Some(n) = opts.intra_threads {
            builder = builder.with_intra_threads(n).map_err(|e| builder_err(ort_err(e)))?;
        }
        let provider = register_device(&mut builder, opts.device)?;
        let session = builder.commit_from_file(path).map_err(|e| builder_err(e.to_string()))?;
        let sig = check_signature(path, &session)?;

        let meta = session.metadata().ok();
        let meta_imgsz = meta.as_ref().and_then(|m| m.custom("imgsz")).and_then(|s| parse_imgsz(&s));
        let stride = meta
            .as_ref()
            .and_then(|m| m.custom("stride"))
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|&s| s > 0)
            .unwrap_or(32);
        drop(meta);
        let target_hw = match (sig.fixed_hw, opts.imgsz) {
            (Some(hw), None) => hw,
            (Some((h, w)), Some(req)) => {
                if req != h.max(w) {
                    return Err(ModelError::InvalidOption(format!(
                        "{} has a fixed {h}x{w} input; --imgsz {req} needs a dynamic-shape export (or omit --imgsz)",
                        path.display()
                    )));
                }
                (h, w)
            }
            (None, Some(req)) => {
                let s = req.div_ceil(stride) * stride;
                if s != req {
                    tracing::warn!("imgsz {req} is not a multiple of stride {stride}; using {s}");
                }
                (s, s)
            }
            (None, None) => meta_imgsz.unwrap_or((640, 640)),
        };
        tracing::debug!(model = %path.display(), ?target_hw, stride, provider, "loaded FastSAM model");
        Ok(FastSam {
            session,
            path: path.to_path_buf(),
            sig,
            opts,
            target_hw,
            stride,
            provider,
            pre: Preprocessor::new(),
            post: Postprocessor::new(),
            out0: Vec::new(),
            protos: Default::default(),
            proto_pool: Vec::new(),
            proto_allocations: 0,
            last_dims: (0, 0, 0, 0),
            timings: SegmentTimings::default(),
        })
    }

    pub fn signature(&self) -> &ModelSignature {
        &self.sig
    }
    pub fn options(&self) -> &ModelOptions {
        &self.opts
    }
    /// The execution provider in use ("cpu", "cuda:0", ...).
    pub fn provider(&self) -> &str {
        &self.provider
    }
    /// The letterbox target `(h, w)` and whether padding is minimal (dynamic models).
    pub fn target(&self) -> ((u32, u32), bool) {
        (self.target_hw, self.sig.fixed_hw.is_none())
    }

    /// The letterbox geometry this model uses for a `w x h` image.
    pub fn letterbox_for(&self, w: u32, h: u32) -> Letterbox {
        let (th, tw) = self.target_hw;
        Letterbox::new(w, h, tw, th, self.sig.fixed_hw.is_none(), self.stride)
    }

    /// Change the postprocessing thresholds without reloading.
    pub fn set_post_config(&mut self, conf: f32, iou: f32, max_det: usize, retina_masks: bool) {
        self.opts.conf = conf;
        self.opts.iou = iou;
        self.opts.max_det = max_det.max(1);
        self.opts.retina_masks = retina_masks;
    }

    /// Preprocess and run the network; the outputs are then available from [`FastSam::raw_outputs`].
    pub fn infer(&mut self, image: &ImageView<'_>) -> Result<Letterbox, ModelError> {
        let lb = self.letterbox_for(image.width, image.height);
        self.infer_with(image, &lb)?;
        Ok(lb)
    }

    /// Like [`FastSam::infer`] with an explicit letterbox geometry (e.g. full-square padding on a
    /// dynamic-shape model, as Ultralytics does for static exports).
    pub fn infer_with(&mut self, image: &ImageView<'_>, lb: &Letterbox) -> Result<(), ModelError> {
        if let Some((h, w)) = self.sig.fixed_hw
            && (lb.input_h, lb.input_w) != (h, w)
        {
            return Err(ModelError::InvalidOption(format!(
                "letterbox input {}x{} does not fit the model's fixed {w}x{h} input",
                lb.input_w, lb.input_h
            )));
        }
        if !lb.input_h.is_multiple_of(self.stride) || !lb.input_w.is_multiple_of(self.stride) {
            return Err(ModelError::InvalidOption(format!(
                "letterbox input {}x{} is not a multiple of the stride {}",
                lb.input_w, lb.input_h, self.stride
            )));
        }
        let t0 = Instant::now();
        let lb = *lb;
        self.pre.run(image, &lb)?;
        let t1 = Instant::now();
        let (h, w) = (lb.input_h as usize, lb.input_w as usize);
        let input = TensorRef::from_array_view(([1usize, 3, h, w], &self.pre.tensor[..]))
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.sig.input_name.as_str() => input])
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let (s0, d0) = outputs[self.sig.output0_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Output(e.to_string()))?;
        let (s1, d1) = outputs[self.sig.output1_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Output(e.to_string()))?;
        if s0.len() != 3 || s1.len() != 4 || s0[0] != 1 || s1[0] != 1 {
            return Err(ModelError::Output(format!("unexpected output shapes {s0:?} and {s1:?}")));
        }
        let anchors = s0[2] as usize;
        let (nm, mh, mw) = (s1[1] as usize, s1[2] as usize, s1[3] as usize);
        if mh * 4 != h || mw * 4 != w {
            return Err(ModelError::Output(format!("prototypes {mh}x{mw} are not a quarter of the input {h}x{w}")));
        }
        self.out0.clear();
        self.out0.extend_from_slice(d0);
        // Masks of earlier frames may still hold their prototypes (frames in flight in the
        // pipeline): take a pooled buffer that nothing holds any more, allocate only if none is free.
        self.proto_pool.push(std::mem::take(&mut self.protos));
        let free = self.proto_pool.iter_mut().position(|a| std::sync::Arc::get_mut(a).is_some());
        let reused = free.map(|i| self.proto_pool.swap_remove(i)).and_then(|mut a| {
            let v = std::sync::Arc::get_mut(&mut a)?;
            v.clear();
            v.extend_from_slice(d1);
            Some(a)
        });
        self.protos = match reused {
            Some(a) => a,
            None => {
                self.proto_allocations += 1;
                std::sync::Arc::new(d1.to_vec())
            }
        };
        if self.proto_pool.len() > PROTO_POOL_MAX {
            self.proto_pool.remove(0);
        }
        drop(outputs);
        self.last_dims = (anchors, nm, mh, mw);
        let t2 = Instant::now();
        self.timings = SegmentTimings { pre: t1 - t0, infer: t2 - t1, post: Default::default() };
        Ok(())
    }

    /// How many prototype buffers were allocated so far (steady state reuses them).
    pub fn proto_allocations(&self) -> u64 {
        self.proto_allocations
    }

    /// The raw outputs of the last [`FastSam::infer`] call.
    pub fn raw_outputs(&self) -> RawOutputs<'_> {
        let (anchors, nm, mh, mw) = self.last_dims;
        RawOutputs { out0: &self.out0, anchors, protos: Protos { nm, mh, mw, data: self.protos.clone() } }
    }

    /// Segment one image and keep the intermediate values of each detection.
    pub fn segment_raw(&mut self, image: &ImageView<'_>) -> Result<(Letterbox, Vec<RawDetection>), ModelError> {
        let lb = self.letterbox_for(image.width, image.height);
        let dets = self.segment_raw_with(image, &lb)?;
        Ok((lb, dets))
    }

    /// [`FastSam::segment_raw`] with an explicit letterbox geometry.
    pub fn segment_raw_with(&mut self, image: &ImageView<'_>, lb: &Letterbox) -> Result<Vec<RawDetection>, ModelError> {
        let cfg = PostConfig {
            conf: self.opts.conf,
            iou: self.opts.iou,
            max_det: self.opts.max_det,
            retina_masks: self.opts.retina_masks,
        };
        self.infer_with(image, lb)?;
        let t = Instant::now();
        let (anchors, nm, mh, mw) = self.last_dims;
        let protos = Protos { nm, mh, mw, data: self.protos.clone() };
        let dets = self.post.run(&self.out0, anchors, &protos, lb, &cfg)?;
        self.timings.post = t.elapsed();
        Ok(dets)
    }
}

/// Raw network outputs of one image.
#[derive(Debug)]
pub struct RawOutputs<'a> {
    /// `output0` as `[rows, anchors]`.
    pub out0: &'a [f32],
    pub anchors: usize,
    pub protos: Protos,
}

/// Register the execution provider for `device`; returns the provider's name.
fn register_device(builder: &mut ort::session::builder::SessionBuilder, device: Device) -> Result<String, ModelError> {
    use ort::ep;
    let fail = |e: ort::Error| ModelError::Provider {
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
            ep::TensorRT::default().with_device_id(i as i32).register(builder).map_err(fail)?;
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

impl Segmenter for FastSam {
    fn segment(&mut self, image: ImageView<'_>) -> Result<Vec<Detection>, ModelError> {
        let (_, raw) = self.segment_raw(&image)?;
        Ok(raw.iter().map(RawDetection::to_detection).collect())
    }

    fn describe(&self) -> String {
        let (h, w) = self.target_hw;
        format!(
            "FastSAM {} on {} (input {}x{}{})",
            self.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            self.provider,
            w,
            h,
            if self.sig.fixed_hw.is_some() { ", static" } else { ", dynamic" }
        )
    }

    fn last_timings(&self) -> SegmentTimings {
        self.timings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imgsz_metadata_forms() {
        assert_eq!(parse_imgsz("[640, 640]"), Some((640, 640)));
        assert_eq!(parse_imgsz("[768, 1024]"), Some((768, 1024)));
        assert_eq!(parse_imgsz("320"), Some((320, 320)));
        assert_eq!(parse_imgsz("[a, 1]"), None);
        assert_eq!(parse_imgsz("[1, 2, 3]"), None);
    }

    #[test]
    fn device_round_trips_through_text() {
        for d in [Device::Cpu, Device::Cuda(0), Device::Cuda(3), Device::TensorRt(1), Device::Auto] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
    }
}
