//! Activation statistics: the float graph, with the planned activation tensors as extra outputs,
//! runs through ONNX Runtime on calibration frames letterboxed exactly like inference.
//!
//! Per tensor, [`TensorStats`] keeps the exact minimum and maximum and a histogram on a symmetric
//! range `[-R, R]` that doubles (merging bin pairs, exactly) whenever a value falls outside, so a
//! percentile can be read at the end without keeping the values.

use std::collections::{BTreeMap, HashMap};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::{CalibMethod, Plan, QuantizeError, QuantizeOptions};
use crate::convert::onnx_proto::{DimValue, ModelProto, TypeProto, TypeProtoTensor, ValueInfoProto, data_type};
use crate::model::{Letterbox, Preprocessor};
use crate::types::ImageView;

/// Histogram bins (even: pairs merge when the range doubles).
const BINS: usize = 4096;

/// Statistics of one activation tensor.
#[derive(Debug, Clone)]
pub struct TensorStats {
    pub min: f32,
    pub max: f32,
    /// Half-width of the histogram's range (`[-range, range]`); 0 before the first value.
    range: f32,
    hist: Vec<u64>,
    pub count: u64,
}

impl Default for TensorStats {
    fn default() -> Self {
        TensorStats { min: f32::INFINITY, max: f32::NEG_INFINITY, range: 0.0, hist: vec![0; BINS], count: 0 }
    }
}

impl TensorStats {
    /// Adds values (NaNs are ignored).
    pub fn update(&mut self, values: &[f32]) {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in values {
            if v < lo {
                lo = v;
            }
            if v > hi {
                hi = v;
            }
        }
        if !lo.is_finite() && !hi.is_finite() {
            return;
        }
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        let need = lo.abs().max(hi.abs()).min(f32::MAX / 4.0);
        if self.range == 0.0 {
            // a power of two at least `need` (and not zero)
            self.range = 2f32.powi(need.max(1e-6).log2().ceil() as i32);
        }
        while need > self.range {
            self.grow();
        }
        let scale = BINS as f32 / (2.0 * self.range);
        for &v in values {
            if v.is_nan() {
                continue;
            }
            let b = ((v + self.range) * scale) as usize;
            self.hist[b.min(BINS - 1)] += 1;
        }
        self.count += values.len() as u64;
    }

    /// Doubles the range: old bins `2k, 2k+1` become new bin `BINS/4 + k`.
    fn grow(&mut self) {
        let mut h = vec![0u64; BINS];
        for k in 0..BINS / 2 {
            h[BINS / 4 + k] = self.hist[2 * k] + self.hist[2 * k + 1];
        }
        self.hist = h;
        self.range *= 2.0;
    }

    /// The value below which a fraction `q` of the values lie (bin-edge resolution).
    fn quantile(&self, q: f64, upper_edge: bool) -> f32 {
        let target = (q * self.count as f64).ceil().max(1.0) as u64;
        let width = 2.0 * self.range / BINS as f32;
        let mut acc = 0u64;
        for (i, &c) in self.hist.iter().enumerate() {
            acc += c;
            if acc >= target {
                let edge = if upper_edge { i + 1 } else { i };
                return -self.range + edge as f32 * width;
            }
        }
        self.range
    }

    /// The range `(lo, hi)` for `method`.
    pub fn range(&self, method: CalibMethod) -> (f32, f32) {
        if self.count == 0 {
            return (0.0, 0.0);
        }
        match method {
            CalibMethod::MinMax => (self.min, self.max),
            CalibMethod::Percentile(p) => self.percentile_range(p),
            CalibMethod::Mse => {
                // candidates: min/max, then tails of 10^-7 .. 10^-2 (percentiles 99.99999 .. 99)
                let mut best = ((self.min, self.max), self.quantization_mse(self.min, self.max));
                for k in 0..=40 {
                    let tail = 10f64.powf(-7.0 + 5.0 * k as f64 / 40.0);
                    let r = self.percentile_range(100.0 * (1.0 - tail));
                    let e = self.quantization_mse(r.0, r.1);
                    if e < best.1 {
                        best = (r, e);
                    }
                }
                best.0
            }
        }
    }

    fn percentile_range(&self, p: f64) -> (f32, f32) {
        let tail = (1.0 - p / 100.0).clamp(0.0, 0.5);
        let lo = self.quantile(tail, false).max(self.min);
        let hi = self.quantile(1.0 - tail, true).min(self.max);
        (lo.min(hi), hi.max(lo))
    }

    /// Mean squared error of uint8 quantization on `[lo, hi]` (widened to hold 0, as
    /// [`super::qdq::activation_params`] does) over the histogram (values at bin centres).
    pub fn quantization_mse(&self, lo: f32, hi: f32) -> f64 {
        let (lo, hi) = (lo.min(0.0) as f64, hi.max(0.0) as f64);
        let step = ((hi - lo) / 255.0).max(1e-12);
        let width = 2.0 * self.range as f64 / BINS as f64;
        let mut sum = 0f64;
        for (i, &c) in self.hist.iter().enumerate().filter(|(_, c)| **c > 0) {
            let v = -(self.range as f64) + (i as f64 + 0.5) * width;
            let e = if v > hi {
                (v - hi) * (v - hi)
            } else if v < lo {
                (lo - v) * (lo - v)
            } else {
                step * step / 12.0
            };
            sum += c as f64 * e;
        }
        sum / self.count.max(1) as f64
    }
}

/// The statistics of a calibration run.
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    pub stats: BTreeMap<String, TensorStats>,
    pub frames: usize,
    /// Network input size `(h, w)` of the frames (the last one).
    pub input_hw: (u32, u32),
}

impl Calibration {
    /// Ranges of every tensor for `method`.
    pub fn ranges(&self, method: CalibMethod) -> HashMap<String, (f32, f32)> {
        self.stats.iter().map(|(k, s)| (k.clone(), s.range(method))).collect()
    }
}

/// Runs calibration frames through the float graph and collects activation statistics.
pub struct Calibrator {
    session: Session,
    input_name: String,
    tensors: Vec<String>,
    calib: Calibration,
    pre: Preprocessor,
    input: Vec<f32>,
    target_hw: (u32, u32),
    dynamic: bool,
    stride: u32,
}

impl std::fmt::Debug for Calibrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calibrator").field("tensors", &self.tensors.len()).field("target_hw", &self.target_hw).finish()
    }
}

impl Calibrator {
    /// Builds the calibration session for `model` and `plan`.
    pub fn new(model: &ModelProto, plan: &Plan, opts: &QuantizeOptions) -> Result<Calibrator, QuantizeError> {
        use prost::Message;
        let mut m = model.clone();
        let g = m.graph.as_mut().ok_or_else(|| QuantizeError::Calibration("the model has no graph".into()))?;
        let input = g
            .input
            .iter()
            .find(|v| !g.initializer.iter().any(|t| t.name == v.name))
            .cloned()
            .ok_or_else(|| QuantizeError::Calibration("the model has no input".into()))?;
        let existing: std::collections::HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
        for t in &plan.activations {
            if !existing.contains(t) {
                g.output.push(ValueInfoProto {
                    name: t.clone(),
                    r#type: Some(TypeProto {
                        tensor_type: Some(TypeProtoTensor { elem_type: data_type::FLOAT, shape: None }),
                        denotation: String::new(),
                    }),
                    doc_string: String::new(),
                });
            }
        }
        let bytes = m.encode_to_vec();
        let env = crate::runtime::environment(opts.ort_lib.as_deref())?;
        fn err(e: impl std::fmt::Display) -> QuantizeError {
            QuantizeError::Calibration(format!("cannot build the calibration session: {e}"))
        }
        let mut builder = Session::builder(&env).map_err(err)?;
        builder = builder.with_optimization_level(GraphOptimizationLevel::Level3).map_err(err)?;
        if let Some(n) = opts.intra_threads {
            builder = builder.with_intra_threads(n).map_err(err)?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(err)?;

        // the inference geometry, as crate::model::FastSam computes it
        let dims: Vec<Option<i64>> = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(DimValue::DimValue(v)) if v > 0 => Some(v),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let fixed = match dims.as_slice() {
            [_, _, Some(h), Some(w)] => Some((*h as u32, *w as u32)),
            _ => None,
        };
        let meta = |k: &str| model.metadata_props.iter().find(|p| p.key == k).map(|p| p.value.clone());
        let stride = meta("stride").and_then(|s| s.trim().parse::<u32>().ok()).filter(|&s| s > 0).unwrap_or(32);
        let target_hw = match (fixed, opts.imgsz) {
            (Some(hw), _) => hw,
            (None, Some(s)) => {
                let s = s.div_ceil(stride) * stride;
                (s, s)
            }
            (None, None) => meta("imgsz").and_then(|s| crate::model::parse_imgsz(&s)).unwrap_or((640, 640)),
        };
        let calib = Calibration {
            stats: plan.activations.iter().map(|t| (t.clone(), TensorStats::default())).collect(),
            ..Calibration::default()
        };
        Ok(Calibrator {
            session,
            input_name: input.name,
            tensors: plan.activations.clone(),
            calib,
            pre: Preprocessor::new(),
            input: Vec::new(),
            target_hw,
            dynamic: fixed.is_none(),
            stride,
        })
    }

    /// The letterbox target `(h, w)`.
    pub fn target_hw(&self) -> (u32, u32) {
        self.target_hw
    }

    /// Letterboxes one frame like inference and adds its activations to the statistics.
    pub fn observe(&mut self, image: &ImageView<'_>) -> Result<(), QuantizeError> {
        let (th, tw) = self.target_hw;
        let lb = Letterbox::new(image.width, image.height, tw, th, self.dynamic, self.stride);
        let (h, w) = (lb.input_h as usize, lb.input_w as usize);
        self.input.resize(3 * h * w, 0.0);
        self.pre.run_into(image, &lb, &mut self.input).map_err(|e| QuantizeError::Calibration(e.to_string()))?;
        let tensor = TensorRef::from_array_view(([1usize, 3, h, w], self.input.as_slice()))
            .map_err(|e| QuantizeError::Calibration(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| QuantizeError::Calibration(format!("inference failed: {e}")))?;
        for t in &self.tensors {
            let (_, data) = outputs[t.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| QuantizeError::Calibration(format!("activation {t}: {e}")))?;
            if let Some(s) = self.calib.stats.get_mut(t) {
                s.update(data);
            }
        }
        self.calib.frames += 1;
        self.calib.input_hw = (lb.input_h, lb.input_w);
        Ok(())
    }

    /// Frames observed so far.
    pub fn frames(&self) -> usize {
        self.calib.frames
    }

    /// The statistics.
    pub fn finish(self) -> Calibration {
        self.calib
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_growth_is_exact_and_percentiles_clip_outliers() {
        let mut s = TensorStats::default();
        // 10000 values uniform in [0, 1), then one outlier at 1000: the range grows 10 times
        let v: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        s.update(&v);
        s.update(&[1000.0]);
        assert_eq!(s.count, 10_001);
        assert_eq!(s.hist.iter().sum::<u64>(), 10_001);
        assert_eq!((s.min, s.max), (0.0, 1000.0));
        assert_eq!(s.range(CalibMethod::MinMax), (0.0, 1000.0));
        let (lo, hi) = s.range(CalibMethod::Percentile(99.9));
        assert_eq!(lo, 0.0);
        // the outlier is clipped; one bin is 2*1024/4096 = 0.5 wide
        assert!((0.99..=1.5).contains(&hi), "hi {hi}");
        // MSE: clipping the lone outlier costs (1000-1.5)^2/10001 ~ 100; keeping it costs a step
        // of 1000/255 on every value, ~1.3: the full range wins here ...
        assert_eq!(s.range(CalibMethod::Mse), (0.0, 1000.0));
        // ... but not when the outlier is one value in a million
        let mut t = TensorStats::default();
        for _ in 0..100 {
            t.update(&v);
        }
        t.update(&[3.0]);
        let (lo, hi) = t.range(CalibMethod::Mse);
        assert_eq!(lo, 0.0);
        assert!((0.99..=1.5).contains(&hi), "hi {hi}");
        assert!(t.quantization_mse(lo, hi) < t.quantization_mse(0.0, 3.0));
    }
}
