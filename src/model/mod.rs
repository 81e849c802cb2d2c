//! FastSAM inference: ONNX model loading and signature checks ([`FastSam::load`]), Ultralytics-exact
//! letterbox preprocessing ([`letterbox`]), postprocessing ([`postprocess`], [`masks`]) and prompts
//! ([`prompt`]). Sessions come from the engine layer ([`crate::engine`]): `FastSam` holds an
//! [`Engine`] but does not build it.
//!
//! A FastSAM ONNX export (Ultralytics, YOLOv8-seg with one class) maps `images[N,3,H,W]` to
//! `output0[N,4+nc+32,A]` (boxes, scores, mask coefficients) and `output1[N,32,H/4,W/4]` (mask
//! prototypes); static or dynamic spatial size, batch 1 or dynamic.
//!
//! **Batches** ([`Segmenter::segment_batch`], [`FastSam::infer_batch`]): on a model with a dynamic
//! batch axis, up to [`Segmenter::max_batch`] frames run in ONE `session.run`, then each image is
//! postprocessed on its own (its masks hold an `Arc` of its own prototypes). The batch uses one
//! letterbox shape: frames of the same size get exactly the geometry of a single run (so results
//! equal single runs); frames of different sizes are all letterboxed into the full
//! `imgsz x imgsz` target (no minimal-rectangle padding), as Ultralytics does when the shapes in a
//! batch differ. A model with a fixed batch of 1 runs a batch as sequential single runs.

pub mod letterbox;
pub mod masks;
mod nms;
pub mod postprocess;
pub mod prompt;
pub mod resize;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ort::session::Session;
use ort::value::{TensorRef, ValueType};

pub use crate::engine::{Device, Engine, EngineConfig, EngineError, Optimization, Precision};
pub use letterbox::{Letterbox, Preprocessor};
pub use masks::{ProtoMask, Protos};
pub use postprocess::{PostConfig, Postprocessor, RawDetection};
pub use prompt::Prompt;
pub use resize::LinearResizer;

use crate::types::{Detection, ImageView, SegmentTimings, Segmenter};

/// Errors of the model stage.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Session creation failed (ONNX Runtime missing, unreadable or invalid file, provider).
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "{path} is not a FastSAM segmentation model: expected images[N,3,H,W] -> output0[N,37,A], output1[N,32,H/4,W/4], found {found}{hint}"
    )]
    Signature { path: PathBuf, found: String, hint: String },
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

impl From<crate::runtime::RuntimeError> for ModelError {
    fn from(e: crate::runtime::RuntimeError) -> Self {
        ModelError::Engine(EngineError::Runtime(e))
    }
}

/// Model options (defaults: Ultralytics' everything-prompt values). The engine settings
/// (`device`, `intra_threads`, `optimization`, `precision`, `ort_lib`) become an [`EngineConfig`]
/// ([`ModelOptions::engine_config`]).
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
    pub optimization: Optimization,
    pub precision: Precision,
    pub ort_lib: Option<PathBuf>,
    /// Most frames in one `session.run` on a model with a dynamic batch axis (fixed-batch models: 1).
    pub max_batch: usize,
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
            optimization: Optimization::All,
            precision: Precision::Fp32,
            ort_lib: None,
            max_batch: 8,
        }
    }
}

impl ModelOptions {
    /// The engine settings of these options.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            device: self.device,
            intra_threads: self.intra_threads,
            optimization: self.optimization,
            precision: self.precision,
            ort_lib: self.ort_lib.clone(),
        }
    }

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
        if self.max_batch == 0 {
            return Err(ModelError::InvalidOption("max_batch must be at least 1".into()));
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
    /// Fixed batch size (1) of the input, `None` when the batch axis is dynamic.
    pub fixed_batch: Option<u32>,
    /// Number of mask coefficients / prototypes (32).
    pub num_masks: u32,
}

fn describe_outlet(name: &str, t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => format!("{name}{} {ty:?}", crate::engine::fmt_dims(shape)),
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
        fixed_batch: (idims[0] > 0).then_some(idims[0] as u32),
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

/// Prototype buffers kept for reuse: enough for the frames a pipeline keeps in flight (at least
/// four batches' worth).
const PROTO_POOL_MAX: usize = 16;

/// Output dimensions of the last call.
#[derive(Debug, Clone, Copy, Default)]
struct OutDims {
    anchors: usize,
    rows: usize,
    nm: usize,
    mh: usize,
    mw: usize,
}

/// A loaded FastSAM model with reusable pre/postprocessing buffers.
pub struct FastSam {
    engine: Engine,
    path: PathBuf,
    sig: ModelSignature,
    opts: ModelOptions,
    /// Letterbox target `(h, w)`.
    target_hw: (u32, u32),
    stride: u32,
    pre: Preprocessor,
    post: Postprocessor,
    /// The network input of the last run, `[n,3,h,w]` (reused).
    input: Vec<f32>,
    /// `output0` of every image of the last call, back to back (`rows * anchors` values each).
    out0: Vec<f32>,
    /// The prototypes of every image of the last call, one buffer per image (shared with its masks).
    protos: Vec<Arc<Vec<f32>>>,
    /// Earlier prototype buffers, reused once no mask holds them any more (bounded).
    proto_pool: Vec<Arc<Vec<f32>>>,
    proto_allocations: u64,
    last_dims: OutDims,
    timings: SegmentTimings,
    sequential_logged: bool,
    session_runs: u64,
}

impl std::fmt::Debug for FastSam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastSam").field("path", &self.path).field("sig", &self.sig).finish()
    }
}

/// A buffer holding `data`: a pooled one that no mask holds any more, else a new one.
fn pooled_copy(pool: &mut Vec<Arc<Vec<f32>>>, allocations: &mut u64, data: &[f32]) -> Arc<Vec<f32>> {
    let free = pool.iter_mut().position(|a| Arc::get_mut(a).is_some());
    let reused = free.map(|i| pool.swap_remove(i)).and_then(|mut a| {
        let v = Arc::get_mut(&mut a)?;
        v.clear();
        v.extend_from_slice(data);
        Some(a)
    });
    reused.unwrap_or_else(|| {
        *allocations += 1;
        Arc::new(data.to_vec())
    })
}

impl FastSam {
    /// Load and validate a FastSAM ONNX model (the session comes from [`Engine::load`]).
    pub fn load(path: &Path, opts: ModelOptions) -> Result<FastSam, ModelError> {
        opts.validate()?;
        let engine = Engine::load(path, &opts.engine_config())?;
        Self::from_engine(engine, opts)
    }

    /// Wrap a session made by the engine layer (validates its signature).
    pub fn from_engine(engine: Engine, opts: ModelOptions) -> Result<FastSam, ModelError> {
        opts.validate()?;
        let path = engine.path().to_path_buf();
        let sig = check_signature(&path, &engine.session)?;
        let meta = engine.metadata();
        let meta_imgsz = meta.custom("imgsz").and_then(parse_imgsz);
        let stride = meta.custom("stride").and_then(|s| s.trim().parse::<u32>().ok()).filter(|&s| s > 0).unwrap_or(32);
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
        tracing::debug!(model = %path.display(), ?target_hw, stride, provider = engine.provider(), batch = ?sig.fixed_batch, "loaded FastSAM model");
        Ok(FastSam {
            engine,
            path,
            sig,
            opts,
            target_hw,
            stride,
            pre: Preprocessor::new(),
            post: Postprocessor::new(),
            input: Vec::new(),
            out0: Vec::new(),
            protos: Vec::new(),
            // one initial (empty) buffer, as a model that has run once would have
            proto_pool: vec![Arc::default()],
            proto_allocations: 0,
            last_dims: OutDims::default(),
            timings: SegmentTimings::default(),
            sequential_logged: false,
            session_runs: 0,
        })
    }

    pub fn signature(&self) -> &ModelSignature {
        &self.sig
    }
    pub fn options(&self) -> &ModelOptions {
        &self.opts
    }
    /// The inference engine (session, provider, metadata).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    /// The execution provider in use ("cpu", "cuda:0", ...).
    pub fn provider(&self) -> &str {
        self.engine.provider()
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

    /// The letterbox geometries of a batch: all images share one input shape. Images of one size
    /// get the single-image geometry ([`FastSam::letterbox_for`]); images of different sizes are
    /// letterboxed into the full target (`imgsz x imgsz`, no minimal-rectangle padding), as
    /// Ultralytics does when the shapes in a batch differ. The scale factor is the same as in a
    /// single run; only the padding differs.
    pub fn letterbox_batch(&self, images: &[ImageView<'_>]) -> Vec<Letterbox> {
        let same = images.windows(2).all(|p| (p[0].width, p[0].height) == (p[1].width, p[1].height));
        if same || self.sig.fixed_hw.is_some() {
            return images.iter().map(|im| self.letterbox_for(im.width, im.height)).collect();
        }
        let (th, tw) = self.target_hw;
        images.iter().map(|im| Letterbox::new(im.width, im.height, tw, th, false, self.stride)).collect()
    }

    /// Change the postprocessing thresholds without reloading.
    pub fn set_post_config(&mut self, conf: f32, iou: f32, max_det: usize, retina_masks: bool) {
        self.opts.conf = conf;
        self.opts.iou = iou;
        self.opts.max_det = max_det.max(1);
        self.opts.retina_masks = retina_masks;
    }

    fn post_config(&self) -> PostConfig {
        PostConfig {
            conf: self.opts.conf,
            iou: self.opts.iou,
            max_det: self.opts.max_det,
            retina_masks: self.opts.retina_masks,
        }
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
        self.infer_batch_with(std::slice::from_ref(image), std::slice::from_ref(lb))
    }

    /// Preprocess and run a batch ([`FastSam::letterbox_batch`] geometry); the outputs are then
    /// available from [`FastSam::raw_outputs_batch`].
    pub fn infer_batch(&mut self, images: &[ImageView<'_>]) -> Result<Vec<Letterbox>, ModelError> {
        let lbs = self.letterbox_batch(images);
        self.infer_batch_with(images, &lbs)?;
        Ok(lbs)
    }

    /// Run a batch with explicit geometries, which must all have the same input size. Up to
    /// [`Segmenter::max_batch`] images go through one `session.run`; a fixed-batch-1 model runs
    /// them one after the other.
    pub fn infer_batch_with(&mut self, images: &[ImageView<'_>], lbs: &[Letterbox]) -> Result<(), ModelError> {
        if images.len() != lbs.len() {
            return Err(ModelError::InvalidOption(format!(
                "{} images but {} letterbox geometries",
                images.len(),
                lbs.len()
            )));
        }
        let Some(first) = lbs.first() else {
            return Err(ModelError::InvalidOption("empty batch".into()));
        };
        for (im, lb) in images.iter().zip(lbs) {
            letterbox::check_input(im, lb)?;
        }
        let (ih, iw) = (first.input_h, first.input_w);
        if let Some(lb) = lbs.iter().find(|l| (l.input_h, l.input_w) != (ih, iw)) {
            return Err(ModelError::InvalidOption(format!(
                "all images of a batch need one input size: {iw}x{ih} and {}x{}",
                lb.input_w, lb.input_h
            )));
        }
        if let Some((h, w)) = self.sig.fixed_hw
            && (ih, iw) != (h, w)
        {
            return Err(ModelError::InvalidOption(format!(
                "letterbox input {iw}x{ih} does not fit the model's fixed {w}x{h} input"
            )));
        }
        if !ih.is_multiple_of(self.stride) || !iw.is_multiple_of(self.stride) {
            return Err(ModelError::InvalidOption(format!(
                "letterbox input {iw}x{ih} is not a multiple of the stride {}",
                self.stride
            )));
        }
        // Masks of earlier frames may still hold their prototypes (frames in flight in the
        // pipeline): the last call's buffers go back to the pool, and each image takes a pooled
        // buffer that nothing holds any more (allocating only if none is free).
        self.proto_pool.append(&mut self.protos);
        self.out0.clear();
        self.timings = SegmentTimings::default();
        let chunk = self.max_batch();
        if images.len() > 1 && self.sig.fixed_batch.is_some() && !self.sequential_logged {
            self.sequential_logged = true;
            tracing::debug!(
                model = %self.path.display(),
                "the model has a fixed batch of 1: batches run as sequential single runs (export with a dynamic batch axis to batch)"
            );
        }
        let mut result = Ok(());
        for (ims, ls) in images.chunks(chunk).zip(lbs.chunks(chunk)) {
            result = self.run_chunk(ims, ls);
            if result.is_err() {
                break;
            }
        }
        let cap = PROTO_POOL_MAX.max(4 * self.max_batch());
        if self.proto_pool.len() > cap {
            let excess = self.proto_pool.len() - cap;
            self.proto_pool.drain(..excess);
        }
        result
    }

    /// One `session.run` on `images` (at most the model's batch); appends the outputs.
    fn run_chunk(&mut self, images: &[ImageView<'_>], lbs: &[Letterbox]) -> Result<(), ModelError> {
        let t0 = Instant::now();
        let n = images.len();
        let (h, w) = (lbs[0].input_h as usize, lbs[0].input_w as usize);
        let per_image = 3 * h * w;
        let mut input = std::mem::take(&mut self.input);
        input.resize(n * per_image, 0.0);
        let pre = images
            .iter()
            .zip(lbs)
            .zip(input.chunks_exact_mut(per_image))
            .try_for_each(|((im, lb), out)| self.pre.run_into(im, lb, out));
        let t1 = Instant::now();
        let res = pre.and_then(|()| self.run_session(&input, n, h, w));
        self.input = input;
        let t2 = Instant::now();
        self.timings.pre += t1 - t0;
        self.timings.infer += t2 - t1;
        res
    }

    fn run_session(&mut self, input: &[f32], n: usize, h: usize, w: usize) -> Result<(), ModelError> {
        let tensor =
            TensorRef::from_array_view(([n, 3, h, w], input)).map_err(|e| ModelError::Inference(e.to_string()))?;
        let outputs = self
            .engine
            .session
            .run(ort::inputs![self.sig.input_name.as_str() => tensor])
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        self.session_runs += 1;
        let (s0, d0) = outputs[self.sig.output0_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Output(e.to_string()))?;
        let (s1, d1) = outputs[self.sig.output1_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Output(e.to_string()))?;
        if s0.len() != 3 || s1.len() != 4 || s0[0] as usize != n || s1[0] as usize != n {
            return Err(ModelError::Output(format!("unexpected output shapes {s0:?} and {s1:?} for a batch of {n}")));
        }
        let dims = OutDims {
            anchors: s0[2] as usize,
            rows: s0[1] as usize,
            nm: s1[1] as usize,
            mh: s1[2] as usize,
            mw: s1[3] as usize,
        };
        if dims.mh * 4 != h || dims.mw * 4 != w {
            return Err(ModelError::Output(format!(
                "prototypes {}x{} are not a quarter of the input {h}x{w}",
                dims.mh, dims.mw
            )));
        }
        let per_proto = dims.nm * dims.mh * dims.mw;
        if d0.len() != n * dims.rows * dims.anchors || d1.len() != n * per_proto {
            return Err(ModelError::Output(format!(
                "output sizes {} and {} do not match their shapes",
                d0.len(),
                d1.len()
            )));
        }
        self.out0.extend_from_slice(d0);
        for p in d1.chunks_exact(per_proto) {
            let buf = pooled_copy(&mut self.proto_pool, &mut self.proto_allocations, p);
            self.protos.push(buf);
        }
        drop(outputs);
        self.last_dims = dims;
        Ok(())
    }

    /// How many prototype buffers were allocated so far (steady state reuses them).
    pub fn proto_allocations(&self) -> u64 {
        self.proto_allocations
    }

    /// How many times `session.run` was called so far (a batch on a dynamic-batch model is one).
    pub fn session_runs(&self) -> u64 {
        self.session_runs
    }

    /// How many images the last call ran.
    pub fn last_batch_len(&self) -> usize {
        self.protos.len()
    }

    /// The raw outputs of the last [`FastSam::infer`] call (the first image of a batch).
    pub fn raw_outputs(&self) -> RawOutputs<'_> {
        self.raw_outputs_at(0).unwrap_or_else(|| {
            let d = self.last_dims;
            RawOutputs {
                out0: &[],
                anchors: d.anchors,
                protos: Protos { nm: d.nm, mh: d.mh, mw: d.mw, data: Arc::default() },
            }
        })
    }

    /// The raw outputs of image `i` of the last call.
    pub fn raw_outputs_at(&self, i: usize) -> Option<RawOutputs<'_>> {
        let d = self.last_dims;
        let per = d.rows * d.anchors;
        let data = self.protos.get(i)?.clone();
        Some(RawOutputs {
            out0: self.out0.get(i * per..(i + 1) * per)?,
            anchors: d.anchors,
            protos: Protos { nm: d.nm, mh: d.mh, mw: d.mw, data },
        })
    }

    /// The raw outputs of every image of the last [`FastSam::infer_batch`] call.
    pub fn raw_outputs_batch(&self) -> Vec<RawOutputs<'_>> {
        (0..self.protos.len()).filter_map(|i| self.raw_outputs_at(i)).collect()
    }

    /// Segment one image and keep the intermediate values of each detection.
    pub fn segment_raw(&mut self, image: &ImageView<'_>) -> Result<(Letterbox, Vec<RawDetection>), ModelError> {
        let lb = self.letterbox_for(image.width, image.height);
        let dets = self.segment_raw_with(image, &lb)?;
        Ok((lb, dets))
    }

    /// [`FastSam::segment_raw`] with an explicit letterbox geometry.
    pub fn segment_raw_with(&mut self, image: &ImageView<'_>, lb: &Letterbox) -> Result<Vec<RawDetection>, ModelError> {
        let mut v = self.segment_raw_batch_with(std::slice::from_ref(image), std::slice::from_ref(lb))?;
        v.pop().ok_or_else(|| ModelError::Output("no result for the image".into()))
    }

    /// Segment a batch ([`FastSam::letterbox_batch`] geometry), keeping the intermediate values.
    pub fn segment_raw_batch(
        &mut self,
        images: &[ImageView<'_>],
    ) -> Result<Vec<(Letterbox, Vec<RawDetection>)>, ModelError> {
        let lbs = self.letterbox_batch(images);
        let dets = self.segment_raw_batch_with(images, &lbs)?;
        Ok(lbs.into_iter().zip(dets).collect())
    }

    /// [`FastSam::segment_raw_batch`] with explicit geometries (one input size for all).
    pub fn segment_raw_batch_with(
        &mut self,
        images: &[ImageView<'_>],
        lbs: &[Letterbox],
    ) -> Result<Vec<Vec<RawDetection>>, ModelError> {
        self.infer_batch_with(images, lbs)?;
        let t = Instant::now();
        let cfg = self.post_config();
        let d = self.last_dims;
        let per = d.rows * d.anchors;
        let mut out = Vec::with_capacity(images.len());
        for (i, lb) in lbs.iter().enumerate() {
            let protos = Protos { nm: d.nm, mh: d.mh, mw: d.mw, data: self.protos[i].clone() };
            out.push(self.post.run(&self.out0[i * per..(i + 1) * per], d.anchors, &protos, lb, &cfg)?);
        }
        self.timings.post = t.elapsed();
        Ok(out)
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

impl Segmenter for FastSam {
    fn segment(&mut self, image: ImageView<'_>) -> Result<Vec<Detection>, ModelError> {
        let (_, raw) = self.segment_raw(&image)?;
        Ok(raw.iter().map(RawDetection::to_detection).collect())
    }

    /// One `session.run` per [`Segmenter::max_batch`] frames (see the module docs for the
    /// letterbox shape); [`Segmenter::last_timings`] then reports the whole batch.
    fn segment_batch(&mut self, images: &[ImageView<'_>]) -> Result<Vec<Vec<Detection>>, ModelError> {
        if images.is_empty() {
            self.timings = SegmentTimings::default();
            return Ok(Vec::new());
        }
        let raw = self.segment_raw_batch(images)?;
        Ok(raw.iter().map(|(_, dets)| dets.iter().map(RawDetection::to_detection).collect()).collect())
    }

    fn max_batch(&self) -> usize {
        if self.sig.fixed_batch.is_some() { 1 } else { self.opts.max_batch.max(1) }
    }

    fn describe(&self) -> String {
        let (h, w) = self.target_hw;
        format!(
            "FastSAM {} on {} (input {}x{}{})",
            self.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            self.provider(),
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
    fn model_options_produce_the_engine_config() {
        let o = ModelOptions { device: Device::Cpu, intra_threads: Some(2), ..ModelOptions::default() };
        let e = o.engine_config();
        assert_eq!(e.device, Device::Cpu);
        assert_eq!(e.intra_threads, Some(2));
        assert_eq!(e.optimization, Optimization::All);
        assert_eq!(e.precision, Precision::Fp32);
        assert!(ModelOptions { max_batch: 0, ..ModelOptions::default() }.validate().is_err());
    }

    #[test]
    fn pooled_copy_reuses_only_free_buffers() {
        let mut pool = vec![Arc::new(vec![1.0f32])];
        let mut n = 0;
        let held = pooled_copy(&mut pool, &mut n, &[2.0, 3.0]);
        assert_eq!((n, held.as_slice()), (0, &[2.0, 3.0][..]));
        pool.push(held.clone());
        let b = pooled_copy(&mut pool, &mut n, &[4.0]);
        assert_eq!((n, b.as_slice(), held.as_slice()), (1, &[4.0][..], &[2.0, 3.0][..]));
    }
}
