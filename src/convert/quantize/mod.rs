//! Static INT8 quantization of a FastSAM ONNX model, in Rust (QDQ format), for fast CPU inference.
//!
//! Three steps, each its own module, after an exact float rewrite ([`rewrite`]: the prototype
//! upsampling's 2x2 stride-2 `ConvTranspose` as a 1x1 `Conv` + `DepthToSpace`, so that it runs as
//! `QLinearConv`):
//! 1. [`plan`]: reads the float graph and decides which nodes run in int8 and which stay in float
//!    (the **float/int8 boundary**, below), and which activation tensors need a range.
//! 2. [`calibrate`]: a copy of the float graph whose extra outputs are those activation tensors
//!    runs through ONNX Runtime on calibration frames letterboxed exactly like inference
//!    ([`crate::model::Preprocessor`]); per tensor it keeps the exact min/max and a histogram, from
//!    which [`CalibMethod::MinMax`], [`CalibMethod::Percentile`] or [`CalibMethod::Mse`] ranges
//!    are read.
//! 3. [`qdq`]: writes the QDQ graph with the project's own ONNX writer: weights as per-channel
//!    symmetric int8 initializers (axis 0) with a `DequantizeLinear`, biases as int32 with scale
//!    `x_scale * w_scale`, and a `QuantizeLinear -> DequantizeLinear` pair (uint8, asymmetric) on
//!    every activation a quantized node reads or writes. ONNX Runtime's CPU provider fuses
//!    `DQ -> Conv -> Q` into `QLinearConv` (u8 x s8, VNNI on AVX-512), `DQ -> Sigmoid -> Q` into
//!    `QLinearSigmoid`, `Mul`/`Add` into `QLinearMul`/`QLinearAdd`, `Concat` into
//!    `QLinearConcat`, and runs `MaxPool`/`Resize`/`Split`/`DepthToSpace` directly on uint8 (their
//!    outputs share their input's scale for that reason).
//!
//! # The float/int8 boundary
//!
//! Quantizing a YOLOv8 head's tail (the DFL, the box decode, the class sigmoid, the output
//! concatenations) drives the confidences to zero (onnxruntime issue 14233), so the tail stays in
//! float. [`plan::float_tail`] finds it from the graph's topology, not from node names: walking
//! back from each graph output, every node met is in the tail, and the walk stops (inclusively) at
//! the first **learned convolution** on each path, i.e. a `Conv` that does not read a `Softmax`
//! (through `Reshape`/`Transpose`) — the DFL's fixed 1x1 convolution is passed through. `Shape`
//! nodes (dynamic anchors) are in the tail but their input is not followed. On a FastSAM /
//! YOLOv8-seg graph this is exactly:
//! - the final 1x1 convolution of every head branch (box distribution `cv2.*.2`, class logit
//!   `cv3.*.2`, mask coefficients `cv4.*.2`) and of the prototype branch (`proto.cv3`, with its
//!   SiLU), whose outputs are the raw head values;
//! - the DFL (reshape, transpose, softmax, fixed conv), the box decode (slices, anchors, strides),
//!   the class sigmoid, every reshape and concatenation that assembles `output0`, and `output1`.
//!
//! **Quantizer v3** moves that boundary one step ([`QuantizeOptions::quantize_head_convs`], on by
//! default): the final box-distribution, mask-coefficient and prototype convolutions run in int8
//! too; only the **class-logit convolutions** ([`QuantizeOptions::class_logits_float`]) and the
//! rest of the tail stay in float. The class-score branch (the conv + SiLU blocks feeding each
//! class logit, [`plan::class_branch`]) runs in int8 with **headroom**
//! ([`QuantizeOptions::class_headroom`], x1.5 on the top of its ranges): its strongest
//! activations are the evidence of objects, which a percentile clips and calibration footage
//! under-represents. v2 kept that branch in float instead ([`QuantizeOptions::class_branch_float`]),
//! ~20% slower on FastSAM-s for no better match (docs/int8.md has the figures).
//!
//! Quantized operators: `Conv`, `Sigmoid`, `Mul`, `Add`, `Concat`, `MaxPool`, `Resize`, `Split`,
//! `DepthToSpace` ([`QUANTIZED_OPS`]).

pub mod calibrate;
pub mod plan;
pub mod qdq;
pub mod rewrite;
#[cfg(feature = "video")]
pub mod source;

use std::path::{Path, PathBuf};

pub use calibrate::{Calibration, Calibrator, TensorStats};
pub use plan::Plan;
pub use qdq::QuantizeSummary;

use super::onnx_proto::ModelProto;

/// Version of the quantizer; part of the cache key of quantized models, so that any change of the
/// algorithm gives a new file.
pub const QUANTIZER_VERSION: u32 = 3;

/// [`QuantizeOptions::class_headroom`]'s default (docs/int8.md has the sweep: 1.25 fell under
/// the 95% detection match, 2.0 under the tracking bar on clip d, 1.5 and 1.75 passed both).
pub const DEFAULT_CLASS_HEADROOM: f32 = 1.5;

/// The class logits' quantization range always covers `[-LOGIT_RANGE, LOGIT_RANGE]`, scores
/// from 0.001 to 0.999 (ln 999 = 6.907), whatever the calibration frames held: calibration
/// footage with few confident objects of some size would otherwise clip those scores (one
/// stride's logits calibrated on clip a top out at 0: every detection there would score <= 0.5).
pub const LOGIT_RANGE: f32 = 6.907_755;

/// Metadata key written into a quantized model (its value describes the calibration).
pub const METADATA_KEY: &str = "fastsam_track.quantization";

/// Operator types that run in int8 outside the float tail.
pub const QUANTIZED_OPS: &[&str] =
    &["Conv", "Sigmoid", "Mul", "Add", "Concat", "MaxPool", "Resize", "Split", "DepthToSpace", "SpaceToDepth"];

/// Operators whose presence means a model is already quantized.
pub const QUANTIZED_MARKERS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "ConvInteger",
    "MatMulInteger",
    "QLinearMatMul",
];

/// Errors of the quantizer.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid ONNX model ({msg}); expected a float FastSAM / YOLOv8-seg export")]
    InvalidModel { path: PathBuf, msg: String },
    #[error(
        "{path} is already quantized (it contains {found}): quantize the float model instead \
         (the .onnx or .pt it came from), or run this one as it is"
    )]
    AlreadyQuantized { path: PathBuf, found: String },
    #[error("{path}: {msg}")]
    Unsupported { path: PathBuf, msg: String },
    #[error("calibration source {source_name}: {msg}")]
    CalibrationSource { source_name: String, msg: String },
    #[error("calibration failed: {0}")]
    Calibration(String),
    #[error("no calibration frames: {0}")]
    NoFrames(String),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Convert(Box<super::ConvertError>),
    #[error(transparent)]
    Output(Box<crate::outputs::OutputError>),
}

impl QuantizeError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        QuantizeError::Io { path: path.to_path_buf(), source }
    }
}

impl From<super::ConvertError> for QuantizeError {
    fn from(e: super::ConvertError) -> Self {
        QuantizeError::Convert(Box::new(e))
    }
}

impl From<crate::outputs::OutputError> for QuantizeError {
    fn from(e: crate::outputs::OutputError) -> Self {
        QuantizeError::Output(Box::new(e))
    }
}

/// How activation ranges are read from the calibration statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalibMethod {
    /// The exact minimum and maximum seen.
    MinMax,
    /// Clip each tail of the histogram at this percentile (e.g. 99.999: the top and bottom
    /// 0.001% of the values saturate).
    Percentile(f64),
    /// Per tensor, the range (among the percentile ranges from 99 to 100, on a log grid of the
    /// clipped tail) whose uint8 quantization has the least mean squared error over the
    /// calibration histogram: rounding error `step^2 / 12` inside, clipping error outside.
    Mse,
}

/// The default: percentile 99.999. With quantizer v3's defaults it gives 95.4% detection match
/// on FastSAM-n-synth and tracking within 1.5 points at 64 calibration frames (docs/int8.md);
/// under v2, `Mse` matched the detections slightly better but cost 2.1 MOTA points on clip d.
impl Default for CalibMethod {
    fn default() -> Self {
        CalibMethod::Percentile(99.999)
    }
}

impl std::fmt::Display for CalibMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CalibMethod::MinMax => f.write_str("minmax"),
            CalibMethod::Percentile(p) => write!(f, "percentile:{p}"),
            CalibMethod::Mse => f.write_str("mse"),
        }
    }
}

impl std::str::FromStr for CalibMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "minmax" | "min-max" => Ok(CalibMethod::MinMax),
            "percentile" => Ok(CalibMethod::Percentile(99.999)),
            "mse" => Ok(CalibMethod::Mse),
            _ => match s.strip_prefix("percentile:").map(|p| p.parse::<f64>()) {
                Some(Ok(p)) if p > 50.0 && p <= 100.0 => Ok(CalibMethod::Percentile(p)),
                Some(_) => Err(format!("`{s}`: the percentile must be a number in (50, 100], e.g. percentile:99.99")),
                None => Err(format!("unknown calibration method `{s}`; use minmax, percentile, percentile:P or mse")),
            },
        }
    }
}

/// Quantizer settings (defaults: what `fastsam-track quantize` uses).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeOptions {
    /// Calibration frames, spread over the source.
    pub calib_frames: usize,
    pub method: CalibMethod,
    /// Quantize the final 1x1 convolution of each head branch too (box distribution, mask
    /// coefficients, prototype output; the class logits follow `class_logits_float`): moves the
    /// float boundary by one step. On by default since quantizer v3.
    pub quantize_head_convs: bool,
    /// Rewrite non-overlapping `ConvTranspose` (the prototype upsampling) as a 1x1 `Conv` +
    /// `DepthToSpace` before planning ([`rewrite::conv_transpose_as_conv`]: exact), so that it
    /// runs as `QLinearConv`. On by default.
    pub conv_transpose_as_conv: bool,
    /// Rewrite the stem (3x3 stride-2 convolution of the image) as `SpaceToDepth` + a 2x2
    /// convolution before planning ([`rewrite::stem_as_space_to_depth`]: exact in float), which
    /// ONNX Runtime's int8 kernels run ~3 ms faster at 640. Off by default: the calibrated ranges
    /// move by float rounding and that alone moved clip c's int8 MOTA by 2 points (docs/int8.md).
    pub stem_space_to_depth: bool,
    /// Operator types kept in float everywhere (on top of the float tail), e.g. `["Sigmoid",
    /// "Mul"]` to keep the SiLUs in float. Empty by default.
    pub float_ops: Vec<String>,
    /// Keep the class-score branch of the head (the 3x3 convolutions before each class-logit
    /// convolution, [`plan::class_branch`]) in float: quantizer v2's mixed precision, ~20%
    /// slower on FastSAM-s. Off by default since v3, which quantizes the branch with
    /// `class_headroom` instead (docs/int8.md).
    pub class_branch_float: bool,
    /// Calibration method for the activations written by the class-score branch and the
    /// class-logit convolutions when they run in int8; `None` (default): `method` like every
    /// other tensor.
    pub class_branch_method: Option<CalibMethod>,
    /// Nodes (by name) kept in float on top of the float tail: mixed precision, e.g. the layers
    /// a sensitivity analysis found most costly to quantize. Empty by default.
    pub float_nodes: Vec<String>,
    /// With the class branch in int8: the top of each of its activation ranges is the calibrated
    /// one times this factor. The branch's strongest activations are the evidence of objects,
    /// the rare ones a percentile clips and the ones calibration footage under-represents
    /// (clip a's stride-16 branch tops out at 3.5, clips c and d reach 6.8); default 1.5
    /// ([`DEFAULT_CLASS_HEADROOM`]), 1: as calibrated.
    pub class_headroom: f32,
    /// With `quantize_head_convs`: keep the class-logit convolutions in float anyway (3 convs of
    /// one output channel: no measurable speed, and the logits near the tracker's low threshold
    /// keep fp32's values). On by default.
    pub class_logits_float: bool,
    /// `Some(r)`: a quantized `Concat`'s inputs whose calibrated range is at least `r` times the
    /// output's take the output's scale and zero point, so that ONNX Runtime copies them instead
    /// of requantizing ([`Plan::share_concat_scales`]; their ranges widen to the union). `None`:
    /// every input keeps its own parameters (the default: on FastSAM-n-synth sharing cost 0.7–1.4
    /// points of detection match for ~4% speed, docs/int8.md).
    pub share_concat_scales: Option<f32>,
    /// Inference size used for calibration (long side); `None`: the model's fixed size, else its
    /// `imgsz` metadata, else 640. Use the size you will run at.
    pub imgsz: Option<u32>,
    /// ONNX Runtime intra-op threads for calibration (`None`: ONNX Runtime's choice).
    pub intra_threads: Option<usize>,
    /// Path to `libonnxruntime.so` (`None`: found automatically).
    pub ort_lib: Option<PathBuf>,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            calib_frames: 64,
            method: CalibMethod::default(),
            quantize_head_convs: true,
            conv_transpose_as_conv: true,
            stem_space_to_depth: false,
            class_branch_float: false,
            class_branch_method: None,
            float_ops: Vec::new(),
            float_nodes: Vec::new(),
            class_headroom: DEFAULT_CLASS_HEADROOM,
            class_logits_float: true,
            share_concat_scales: None,
            imgsz: None,
            intra_threads: None,
            ort_lib: None,
        }
    }
}

/// Reads and decodes an ONNX file.
pub fn read_model(path: &Path) -> Result<ModelProto, QuantizeError> {
    let bytes = std::fs::read(path).map_err(|e| QuantizeError::io(path, e))?;
    let m = ModelProto::decode_bytes(&bytes)
        .map_err(|e| QuantizeError::InvalidModel { path: path.to_path_buf(), msg: e.to_string() })?;
    if m.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        return Err(QuantizeError::InvalidModel { path: path.to_path_buf(), msg: "it has no graph".into() });
    }
    Ok(m)
}

/// `Err(AlreadyQuantized)` when the model contains quantization operators or 8-bit initializers.
pub fn check_not_quantized(path: &Path, model: &ModelProto) -> Result<(), QuantizeError> {
    let Some(g) = model.graph.as_ref() else { return Ok(()) };
    if let Some(n) = g.node.iter().find(|n| QUANTIZED_MARKERS.contains(&n.op_type.as_str())) {
        return Err(QuantizeError::AlreadyQuantized {
            path: path.to_path_buf(),
            found: format!("a {} node ({})", n.op_type, n.name),
        });
    }
    use super::onnx_proto::data_type;
    if let Some(t) = g.initializer.iter().find(|t| matches!(t.data_type, data_type::INT8 | data_type::UINT8)) {
        return Err(QuantizeError::AlreadyQuantized {
            path: path.to_path_buf(),
            found: format!("the 8-bit initializer {}", t.name),
        });
    }
    if model.metadata_props.iter().any(|p| p.key == METADATA_KEY) {
        return Err(QuantizeError::AlreadyQuantized {
            path: path.to_path_buf(),
            found: format!("the metadata entry {METADATA_KEY}"),
        });
    }
    Ok(())
}

/// The quantization metadata of a model file (`None` for a float model or an unreadable file).
pub fn quantization_info(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let m = ModelProto::decode_bytes(&bytes).ok()?;
    m.metadata_props.into_iter().find(|p| p.key == METADATA_KEY).map(|p| p.value)
}

/// Writes `model` to `out` atomically.
pub fn write_model(model: &ModelProto, out: &Path) -> Result<(), QuantizeError> {
    use prost::Message;
    let bytes = model.encode_to_vec();
    crate::outputs::AtomicFile::write_all_to(out, &bytes)?;
    Ok(())
}

/// A quantization in progress: the float model, its plan and the calibration session.
///
/// ```no_run
/// # fn frames() -> Vec<(u32, u32, Vec<u8>)> { vec![] }
/// use fastsam_track::convert::quantize::{QuantizeOptions, Quantizer};
/// use fastsam_track::types::{ImageView, PixelFormat};
/// let mut q = Quantizer::open("FastSAM-s.onnx".as_ref(), &QuantizeOptions::default())?;
/// for (w, h, bgr) in frames() {
///     q.observe(&ImageView::packed(w, h, PixelFormat::Bgr8, &bgr).unwrap())?;
/// }
/// let summary = q.finish("FastSAM-s.int8.onnx".as_ref(), "calibrated on my frames")?;
/// println!("{} nodes in int8", summary.total_quantized());
/// # Ok::<(), fastsam_track::convert::quantize::QuantizeError>(())
/// ```
pub struct Quantizer {
    path: PathBuf,
    model: ModelProto,
    plan: Plan,
    calibrator: Calibrator,
    opts: QuantizeOptions,
}

impl std::fmt::Debug for Quantizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quantizer").field("path", &self.path).field("calibrator", &self.calibrator).finish()
    }
}

impl Quantizer {
    /// Reads the float model at `path` (`.onnx`), refuses a quantized one, plans the quantization
    /// and builds the calibration session.
    pub fn open(path: &Path, opts: &QuantizeOptions) -> Result<Quantizer, QuantizeError> {
        let mut model = read_model(path)?;
        check_not_quantized(path, &model)?;
        if opts.conv_transpose_as_conv {
            let done = rewrite::conv_transpose_as_conv(&mut model);
            if !done.is_empty() {
                tracing::debug!("rewrote {done:?} as 1x1 Conv + DepthToSpace");
            }
        }
        if opts.stem_space_to_depth {
            let done = rewrite::stem_as_space_to_depth(&mut model);
            if !done.is_empty() {
                tracing::debug!("rewrote {done:?} as SpaceToDepth + 2x2 Conv");
            }
        }
        let plan = Plan::new(path, &model, opts)?;
        if plan.quantized.is_empty() {
            return Err(QuantizeError::Unsupported {
                path: path.to_path_buf(),
                msg: "no node can be quantized (expected a FastSAM / YOLOv8-seg graph of Conv/SiLU blocks)".into(),
            });
        }
        let calibrator = Calibrator::new(&model, &plan, opts)?;
        Ok(Quantizer { path: path.to_path_buf(), model, plan, calibrator, opts: opts.clone() })
    }

    /// The plan (what will be quantized, what stays in float).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The float model.
    pub fn model(&self) -> &ModelProto {
        &self.model
    }

    /// The calibration input size `(h, w)` (before minimal-rectangle padding on dynamic models).
    pub fn target_hw(&self) -> (u32, u32) {
        self.calibrator.target_hw()
    }

    /// Adds one calibration frame (any size; letterboxed like inference).
    pub fn observe(&mut self, image: &crate::types::ImageView<'_>) -> Result<(), QuantizeError> {
        self.calibrator.observe(image)
    }

    /// Frames observed so far.
    pub fn frames(&self) -> usize {
        self.calibrator.frames()
    }

    /// The statistics gathered so far, and the plan and model, e.g. to write several variants.
    pub fn into_parts(self) -> (PathBuf, ModelProto, Plan, Calibration) {
        (self.path, self.model, self.plan, self.calibrator.finish())
    }

    /// Writes the quantized model to `out` (atomically). `calib_desc` (the calibration source,
    /// frames) goes into the model's metadata.
    pub fn finish(self, out: &Path, calib_desc: &str) -> Result<QuantizeSummary, QuantizeError> {
        let method = self.opts.method;
        let (path, model, plan, calib) = self.into_parts();
        write_quantized(&path, &model, &plan, &calib, method, calib_desc, out)
    }
}

/// Builds the QDQ model from gathered statistics and writes it to `out`.
pub fn write_quantized(
    path: &Path,
    model: &ModelProto,
    plan: &Plan,
    calib: &Calibration,
    method: CalibMethod,
    calib_desc: &str,
    out: &Path,
) -> Result<QuantizeSummary, QuantizeError> {
    if calib.frames == 0 {
        return Err(QuantizeError::NoFrames("no calibration frame was observed".into()));
    }
    let mut ranges = calib.ranges(method);
    let mut desc =
        format!("{calib_desc}, {} frames at {}x{}, {method}", calib.frames, calib.input_hw.1, calib.input_hw.0);
    if let Some(cm) = plan.class_method.filter(|_| !plan.class_tensors.is_empty()) {
        for t in &plan.class_tensors {
            if let Some(s) = calib.stats.get(t) {
                ranges.insert(t.clone(), s.range(cm));
            }
        }
        desc.push_str(&format!(" ({cm} for the class branch)"));
    }
    if plan.class_headroom != 1.0 && !plan.class_tensors.is_empty() {
        desc.push_str(&format!(", class branch headroom x{}", plan.class_headroom));
        for t in &plan.class_tensors {
            if let Some(r) = ranges.get_mut(t) {
                let cap = if plan.sigmoid_outputs.contains(t) { 1.0 } else { f32::MAX };
                r.1 = (r.1 * plan.class_headroom).min(cap).max(r.1);
            }
        }
    }
    for t in &plan.class_logits {
        if let Some(r) = ranges.get_mut(t) {
            *r = (r.0.min(-LOGIT_RANGE), r.1.max(LOGIT_RANGE));
        }
    }
    let mut plan = plan.clone();
    if let (Some(r), Some(g)) = (plan.share_concat, model.graph.as_ref()) {
        let k = plan.share_concat_scales(g, &ranges, r);
        desc.push_str(&format!(", {k} tensors share a concatenation's parameters"));
    }
    let (q, summary) = qdq::quantize_model(path, model, &plan, &ranges, &desc)?;
    write_model(&q, out)?;
    Ok(summary)
}
