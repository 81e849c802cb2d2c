//! Writing the QDQ graph from a float graph, a [`Plan`] and calibrated ranges.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::{METADATA_KEY, Plan, QUANTIZER_VERSION, QuantizeError};
use crate::convert::onnx_proto::{
    AttributeProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto, attr_type,
};

/// What the quantizer did.
#[derive(Debug, Clone, Default)]
pub struct QuantizeSummary {
    /// Quantized nodes by operator type.
    pub quantized: BTreeMap<String, usize>,
    /// Nodes kept in float (the tail) by operator type.
    pub float_tail: BTreeMap<String, usize>,
    /// Names of the float tail's convolutions (the boundary).
    pub float_convs: Vec<String>,
    /// Other nodes of quantizable types left in float, with the reason.
    pub skipped: Vec<String>,
    /// Activation tensors with a Q/DQ pair.
    pub activations: usize,
    /// Convolution weights stored as int8.
    pub weights: usize,
    /// Nodes in the float model and in the quantized one.
    pub nodes_before: usize,
    pub nodes_after: usize,
}

impl QuantizeSummary {
    pub fn total_quantized(&self) -> usize {
        self.quantized.values().sum()
    }
    pub fn total_float(&self) -> usize {
        self.float_tail.values().sum()
    }
}

/// Scale and zero point of a uint8 asymmetric activation covering `(lo, hi)` (and 0, exactly).
pub fn activation_params(lo: f32, hi: f32) -> (f32, u8) {
    let lo = lo.min(0.0);
    let hi = hi.max(0.0);
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zp = (-lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zp)
}

/// Per-output-channel symmetric int8 quantization of a `[O, ...]` weight: `(values, scales)`.
pub fn quantize_weights(w: &[f32], out_channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / out_channels.max(1);
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(out_channels);
    for c in w.chunks(per.max(1)) {
        let m = c.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        scales.push(s);
        q.extend(c.iter().map(|v| (v / s).round().clamp(-127.0, 127.0) as i8));
    }
    (q, scales)
}

fn node(name: String, op: &str, inputs: Vec<String>, outputs: Vec<String>, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto { input: inputs, output: outputs, name, op_type: op.into(), attribute: attrs, ..Default::default() }
}

fn axis0() -> AttributeProto {
    AttributeProto { name: "axis".into(), r#type: attr_type::INT, i: 0, ..Default::default() }
}

/// Builds the QDQ model. `ranges` must hold every planned activation; `calib_desc` goes into the
/// model's metadata ([`METADATA_KEY`]).
pub fn quantize_model(
    path: &Path,
    model: &ModelProto,
    plan: &Plan,
    ranges: &HashMap<String, (f32, f32)>,
    calib_desc: &str,
) -> Result<(ModelProto, QuantizeSummary), QuantizeError> {
    let mut out = model.clone();
    let g = out
        .graph
        .as_mut()
        .ok_or_else(|| QuantizeError::InvalidModel { path: path.to_path_buf(), msg: "it has no graph".into() })?;
    let old_nodes = std::mem::take(&mut g.node);
    let mut summary = QuantizeSummary {
        quantized: BTreeMap::new(),
        nodes_before: old_nodes.len(),
        activations: plan.activations.len(),
        ..QuantizeSummary::default()
    };
    for &i in &plan.quantized {
        *summary.quantized.entry(old_nodes[i].op_type.clone()).or_insert(0) += 1;
    }
    for &i in &plan.tail {
        *summary.float_tail.entry(old_nodes[i].op_type.clone()).or_insert(0) += 1;
        if old_nodes[i].op_type == "Conv" {
            summary.float_convs.push(old_nodes[i].name.clone());
        }
    }
    summary.skipped = plan
        .skipped
        .iter()
        .map(|(i, why)| format!("{} ({}): {why}", old_nodes[*i].name, old_nodes[*i].op_type))
        .collect();

    // activation parameters
    let mut params: HashMap<&str, (f32, u8)> = HashMap::new();
    for t in &plan.activations {
        let src = plan.param_source(t);
        let &(lo, hi) = ranges
            .get(src)
            .ok_or_else(|| QuantizeError::Calibration(format!("no calibrated range for activation {src}")))?;
        params.insert(t.as_str(), activation_params(lo, hi));
    }
    let dq_name = |t: &str| format!("{t}_DequantizeLinear_Output");
    let mut new_inits: Vec<TensorProto> = Vec::new();
    let mut qdq_nodes_for: HashMap<&str, [NodeProto; 2]> = HashMap::new();
    for t in &plan.activations {
        let (scale, zp) = params[t.as_str()];
        let (sn, zn, qn) = (format!("{t}_scale"), format!("{t}_zero_point"), format!("{t}_QuantizeLinear_Output"));
        new_inits.push(TensorProto::from_f32(&sn, &[], &[scale]));
        new_inits.push(TensorProto::from_u8(&zn, &[], &[zp]));
        let q = node(
            format!("{t}_QuantizeLinear"),
            "QuantizeLinear",
            vec![t.clone(), sn.clone(), zn.clone()],
            vec![qn.clone()],
            vec![],
        );
        let dq = node(format!("{t}_DequantizeLinear"), "DequantizeLinear", vec![qn, sn, zn], vec![dq_name(t)], vec![]);
        qdq_nodes_for.insert(t.as_str(), [q, dq]);
    }

    // weights and biases of the quantized convolutions
    let init_ix: HashMap<String, usize> = g.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let mut weight_nodes: Vec<NodeProto> = Vec::new();
    let mut conv_inputs: HashMap<usize, (String, Option<String>)> = HashMap::new();
    for &i in &plan.quantized {
        let n = &old_nodes[i];
        if n.op_type != "Conv" {
            continue;
        }
        let wname = &n.input[1];
        let wt = &g.initializer[init_ix[wname]];
        let w = wt.to_f32().ok_or_else(|| QuantizeError::Unsupported {
            path: path.to_path_buf(),
            msg: format!("weight {wname} is not readable as float"),
        })?;
        let oc = wt.dims[0].max(1) as usize;
        if w.len() != wt.numel() || w.len() % oc != 0 {
            return Err(QuantizeError::Unsupported {
                path: path.to_path_buf(),
                msg: format!("weight {wname} has {} values for dims {:?}", w.len(), wt.dims),
            });
        }
        let (q, scales) = quantize_weights(&w, oc);
        let tag = if n.name.is_empty() { format!("conv{i}") } else { n.name.clone() };
        let (qn, sn, zn, on) = (
            format!("{tag}_W_quantized"),
            format!("{tag}_W_scale"),
            format!("{tag}_W_zero_point"),
            format!("{tag}_W_DequantizeLinear_Output"),
        );
        new_inits.push(TensorProto::from_i8(&qn, &wt.dims, &q));
        new_inits.push(TensorProto::from_f32(&sn, &[oc as i64], &scales));
        new_inits.push(TensorProto::from_i8(&zn, &[oc as i64], &vec![0i8; oc]));
        weight_nodes.push(node(
            format!("{tag}_W_DequantizeLinear"),
            "DequantizeLinear",
            vec![qn, sn, zn],
            vec![on.clone()],
            vec![axis0()],
        ));
        let bias = match n.input.get(2).filter(|b| !b.is_empty()) {
            None => None,
            Some(b) => {
                let bt = &g.initializer[init_ix[b]];
                let bv = bt.to_f32().filter(|v| v.len() == oc).ok_or_else(|| QuantizeError::Unsupported {
                    path: path.to_path_buf(),
                    msg: format!("bias {b} does not have {oc} float values"),
                })?;
                let (xs, _) = params[n.input[0].as_str()];
                let bscales: Vec<f32> = scales.iter().map(|s| s * xs).collect();
                let bq: Vec<i32> = bv
                    .iter()
                    .zip(&bscales)
                    .map(|(v, s)| (v / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
                    .collect();
                let (bqn, bsn, bzn, bon) = (
                    format!("{tag}_B_quantized"),
                    format!("{tag}_B_scale"),
                    format!("{tag}_B_zero_point"),
                    format!("{tag}_B_DequantizeLinear_Output"),
                );
                new_inits.push(TensorProto::from_i32(&bqn, &[oc as i64], &bq));
                new_inits.push(TensorProto::from_f32(&bsn, &[oc as i64], &bscales));
                new_inits.push(TensorProto::from_i32(&bzn, &[oc as i64], &vec![0i32; oc]));
                weight_nodes.push(node(
                    format!("{tag}_B_DequantizeLinear"),
                    "DequantizeLinear",
                    vec![bqn, bsn, bzn],
                    vec![bon.clone()],
                    vec![axis0()],
                ));
                Some(bon)
            }
        };
        summary.weights += 1;
        conv_inputs.insert(i, (on, bias));
    }

    // the new node list, in topological order: weight DQs, the graph inputs' Q/DQ, then each
    // node followed by the Q/DQ of its outputs
    let quantized_acts: HashSet<&str> = plan.activations.iter().map(String::as_str).collect();
    let mut nodes = weight_nodes;
    for v in &g.input {
        if let Some(pair) = qdq_nodes_for.remove(v.name.as_str()) {
            nodes.extend(pair);
        }
    }
    for (i, mut n) in old_nodes.into_iter().enumerate() {
        for inp in n.input.iter_mut() {
            if quantized_acts.contains(inp.as_str()) {
                *inp = dq_name(inp);
            }
        }
        if let Some((w, b)) = conv_inputs.remove(&i) {
            n.input[1] = w;
            if let Some(b) = b {
                n.input[2] = b;
            }
        }
        let outs = n.output.clone();
        nodes.push(n);
        for o in &outs {
            if let Some(pair) = qdq_nodes_for.remove(o.as_str()) {
                nodes.extend(pair);
            }
        }
    }
    if let Some(t) = qdq_nodes_for.keys().next() {
        return Err(QuantizeError::Unsupported {
            path: path.to_path_buf(),
            msg: format!("activation {t} has no producer in the graph"),
        });
    }
    summary.nodes_after = nodes.len();
    g.node = nodes;
    g.initializer.extend(new_inits);
    // drop the float initializers nothing reads any more (the quantized weights and biases)
    let used: HashSet<String> = g.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    g.initializer.retain(|t| used.contains(&t.name));
    out.metadata_props.retain(|p| p.key != METADATA_KEY);
    out.metadata_props.push(StringStringEntryProto {
        key: METADATA_KEY.into(),
        value: format!("int8 qdq, quantizer v{QUANTIZER_VERSION}, {calib_desc}"),
    });
    out.producer_name = "fastsam-track quantize".into();
    Ok((out, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_params_represent_zero_exactly_and_cover_the_range() {
        let (s, z) = activation_params(-0.278, 10.0);
        assert!((s - 10.278 / 255.0).abs() < 1e-6);
        // the ends of the range are within half a step of the codes 0 and 255
        assert!(((255 - z as i32) as f32 * s - 10.0).abs() <= s / 2.0 + 1e-5);
        assert!(((0 - z as i32) as f32 * s + 0.278).abs() <= s / 2.0 + 1e-5);
        // a non-negative range (the image input): zero point 0
        assert_eq!(activation_params(0.0, 1.0), (1.0 / 255.0, 0));
    }

    #[test]
    fn per_channel_weights_round_trip_within_half_a_step() {
        let w: Vec<f32> =
            (0..2 * 9).map(|i| if i < 9 { (i as f32 - 4.0) * 0.01 } else { (i as f32 - 13.0) * 3.0 }).collect();
        let (q, s) = quantize_weights(&w, 2);
        assert_eq!(s.len(), 2);
        assert!((s[0] - 0.04 / 127.0).abs() < 1e-9 && (s[1] - 12.0 / 127.0).abs() < 1e-6);
        for (i, (&v, &qv)) in w.iter().zip(&q).enumerate() {
            let sc = s[i / 9];
            assert!((qv as f32 * sc - v).abs() <= sc / 2.0 + 1e-7, "{i}: {v} vs {}", qv as f32 * sc);
        }
        assert_eq!(q.iter().map(|v| v.unsigned_abs()).max(), Some(127));
    }
}
