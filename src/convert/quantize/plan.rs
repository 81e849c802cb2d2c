//! Which nodes of a float graph run in int8, which stay in float, and which activation tensors need
//! a calibrated range (see the boundary rules in [`super`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use super::{QUANTIZED_OPS, QuantizeError, QuantizeOptions};
use crate::convert::onnx_proto::{GraphProto, ModelProto, NodeProto, data_type};

/// The quantization plan of a graph.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Indices (in the graph's node list) of the nodes that run in int8.
    pub quantized: BTreeSet<usize>,
    /// Indices of the nodes of the float tail (the documented boundary).
    pub tail: BTreeSet<usize>,
    /// Activation tensors that get a `QuantizeLinear -> DequantizeLinear` pair, in graph order.
    pub activations: Vec<String>,
    /// Activation tensors whose quantization parameters are those of another tensor (the outputs
    /// of `MaxPool`, `Resize`, `Split`: they take their input's, so that ONNX Runtime runs these
    /// operators on uint8 directly).
    pub shared: BTreeMap<String, String>,
    /// Quantizable nodes (by type) left in float outside the tail, with the reason.
    pub skipped: Vec<(usize, String)>,
    /// Activation tensors written by the class-score branch or the class-logit convolutions
    /// ([`class_branch`] and the class-logit convolutions) when they run in int8: their ranges use
    /// [`QuantizeOptions::class_branch_method`] when it is set.
    pub class_tensors: BTreeSet<String>,
    /// [`QuantizeOptions::class_branch_method`].
    pub class_method: Option<super::CalibMethod>,
    /// The class-logit tensors (outputs of the class-logit convolutions) when those run in int8
    /// ([`QuantizeOptions::quantize_head_convs`]): their range always covers
    /// [`super::LOGIT_RANGE`], whatever the calibration saw.
    pub class_logits: BTreeSet<String>,
    /// [`QuantizeOptions::class_headroom`].
    pub class_headroom: f32,
    /// [`QuantizeOptions::share_concat_scales`].
    pub share_concat: Option<f32>,
    /// Outputs of the quantized `Sigmoid`s (bounded by 1: headroom never widens them past it).
    pub sigmoid_outputs: BTreeSet<String>,
}

impl Plan {
    /// Plans the quantization of `model` (read from `path`, for messages).
    pub fn new(path: &Path, model: &ModelProto, opts: &QuantizeOptions) -> Result<Plan, QuantizeError> {
        let g = model
            .graph
            .as_ref()
            .ok_or_else(|| QuantizeError::InvalidModel { path: path.to_path_buf(), msg: "it has no graph".into() })?;
        let opset = model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map(|o| o.version);
        if opset.is_some_and(|v| v < 13) {
            return Err(QuantizeError::Unsupported {
                path: path.to_path_buf(),
                msg: format!(
                    "opset {} is too old for per-channel DequantizeLinear (needs 13+): re-export with opset 17",
                    opset.unwrap_or(0)
                ),
            });
        }
        let ix = GraphIndex::new(g);
        let mut tail = float_tail(g, &ix);
        // found on the whole float tail, before the boundary moves
        let (class_blocks, logit_convs) = class_branch_parts(g, &ix, &tail);
        let mut class_nodes = class_blocks.clone();
        class_nodes.extend(logit_convs.iter().copied());
        if opts.quantize_head_convs {
            // move the boundary one step: the learned convolutions that stop the walk run in int8
            let stops: Vec<usize> =
                tail.iter().copied().filter(|&n| g.node[n].op_type == "Conv" && !is_dfl_conv(g, &ix, n)).collect();
            for n in stops {
                // their SiLU (proto.cv3) stays in the tail; the convolution leaves it
                if !(opts.class_logits_float && logit_convs.contains(&n)) {
                    tail.remove(&n);
                }
            }
        }
        if opts.class_branch_float {
            tail.extend(class_blocks);
        }
        let mut plan = Plan {
            tail,
            class_method: opts.class_branch_method,
            class_headroom: opts.class_headroom,
            share_concat: opts.share_concat_scales,
            ..Plan::default()
        };
        let mut acts: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut push = |t: &str, acts: &mut Vec<String>| {
            if seen.insert(t.to_string()) {
                acts.push(t.to_string());
            }
        };
        for (i, n) in g.node.iter().enumerate() {
            if plan.tail.contains(&i)
                || !QUANTIZED_OPS.contains(&n.op_type.as_str())
                || !n.domain.is_empty()
                || opts.float_ops.iter().any(|o| o == &n.op_type)
                || opts.float_nodes.iter().any(|o| o == &n.name)
            {
                continue;
            }
            let data_inputs: Vec<&str> = match n.op_type.as_str() {
                "Conv" => {
                    match conv_weights_ok(g, &ix, n) {
                        Ok(()) => {}
                        Err(why) => {
                            plan.skipped.push((i, why));
                            continue;
                        }
                    }
                    vec![n.input[0].as_str()]
                }
                "Resize" | "Split" | "MaxPool" | "DepthToSpace" | "SpaceToDepth" | "Sigmoid" => {
                    vec![n.input[0].as_str()]
                }
                _ => n.input.iter().map(String::as_str).filter(|s| !s.is_empty()).collect(),
            };
            if let Some(bad) = data_inputs.iter().find(|t| !ix.is_activation(t)) {
                plan.skipped.push((i, format!("input {bad} is a constant, not an activation")));
                continue;
            }
            if n.op_type == "MaxPool" && n.output.len() > 1 {
                plan.skipped.push((i, "MaxPool with an indices output".into()));
                continue;
            }
            plan.quantized.insert(i);
            if class_nodes.contains(&i) {
                plan.class_tensors.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
            }
            if n.op_type == "Sigmoid" {
                plan.sigmoid_outputs.extend(n.output.iter().cloned());
            }
            if logit_convs.contains(&i) {
                plan.class_logits.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
            }
            for t in &data_inputs {
                push(t, &mut acts);
            }
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                push(o, &mut acts);
                if matches!(n.op_type.as_str(), "Resize" | "Split" | "MaxPool" | "DepthToSpace" | "SpaceToDepth") {
                    plan.shared.insert(o.clone(), n.input[0].clone());
                }
            }
        }
        // graph outputs keep their float producers: never a Q/DQ on them
        let outs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
        acts.retain(|t| !outs.contains(t.as_str()));
        plan.activations = acts;
        Ok(plan)
    }

    /// Each quantized `Concat`'s inputs take its output's parameters
    /// ([`QuantizeOptions::share_concat_scales`]) where their own calibrated range is at least
    /// `min_ratio` of the output's: the output's range is the union of the inputs' (the
    /// concatenation holds all their values), and with equal scales and zero points ONNX
    /// Runtime's `QLinearConcat` copies bytes instead of requantizing every input through a
    /// lookup table. An input's parameters are those of the tensor at the end of its sharing chain
    /// (e.g. a `Split` output's are its input's); that tensor joins the first concatenation that
    /// reads it, and never a graph input or a chain that would loop back. Returns how many
    /// tensors now share a concatenation's parameters.
    pub fn share_concat_scales(
        &mut self,
        g: &GraphProto,
        ranges: &HashMap<String, (f32, f32)>,
        min_ratio: f32,
    ) -> usize {
        let inputs: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
        let width = |t: &str| ranges.get(t).map(|&(lo, hi)| hi.max(0.0) - lo.min(0.0));
        let mut claimed: HashSet<String> = HashSet::new();
        let concats: Vec<usize> = self.quantized.iter().copied().filter(|&i| g.node[i].op_type == "Concat").collect();
        for i in concats {
            let n = &g.node[i];
            let Some(o) = n.output.first().filter(|o| !o.is_empty()) else { continue };
            let Some(wo) = width(self.param_source(o)) else { continue };
            for inp in n.input.iter().filter(|s| !s.is_empty()) {
                let root = self.param_source(inp).to_string();
                if root == *o
                    || inputs.contains(root.as_str())
                    || self.param_source(o) == root
                    || width(&root).is_none_or(|w| w < min_ratio * wo)
                    || !claimed.insert(root.clone())
                {
                    continue;
                }
                self.shared.insert(root, o.clone());
            }
        }
        claimed.len()
    }

    /// The tensor whose parameters `t` uses (itself unless shared), following chains.
    pub fn param_source<'a>(&'a self, mut t: &'a str) -> &'a str {
        for _ in 0..64 {
            match self.shared.get(t) {
                Some(s) => t = s.as_str(),
                None => break,
            }
        }
        t
    }

    /// Counts of quantized nodes by operator type.
    pub fn quantized_by_type(&self, g: &GraphProto) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for &i in &self.quantized {
            *m.entry(g.node[i].op_type.clone()).or_insert(0) += 1;
        }
        m
    }

    /// Counts of float-tail nodes by operator type.
    pub fn tail_by_type(&self, g: &GraphProto) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for &i in &self.tail {
            *m.entry(g.node[i].op_type.clone()).or_insert(0) += 1;
        }
        m
    }
}

/// Producers, consumers and constants of a graph.
pub struct GraphIndex<'g> {
    pub producer: HashMap<&'g str, usize>,
    pub initializers: HashMap<&'g str, usize>,
    pub inputs: HashSet<&'g str>,
    /// Outputs of `Constant` nodes (and of nodes computing only from constants).
    pub constants: HashSet<&'g str>,
}

impl<'g> GraphIndex<'g> {
    pub fn new(g: &'g GraphProto) -> Self {
        let initializers: HashMap<&str, usize> =
            g.initializer.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        let mut producer = HashMap::new();
        let mut constants: HashSet<&str> = HashSet::new();
        for (i, n) in g.node.iter().enumerate() {
            let all_const = n.op_type == "Constant"
                || (!n.input.is_empty()
                    && n.input.iter().all(|t| {
                        t.is_empty() || initializers.contains_key(t.as_str()) || constants.contains(t.as_str())
                    }));
            for o in &n.output {
                producer.insert(o.as_str(), i);
                if all_const {
                    constants.insert(o.as_str());
                }
            }
        }
        let inputs = g.input.iter().map(|v| v.name.as_str()).filter(|n| !initializers.contains_key(n)).collect();
        GraphIndex { producer, initializers, inputs, constants }
    }

    /// A tensor computed from the graph's input (not an initializer or a constant).
    pub fn is_activation(&self, t: &str) -> bool {
        !t.is_empty()
            && !self.initializers.contains_key(t)
            && !self.constants.contains(t)
            && (self.inputs.contains(t) || self.producer.contains_key(t))
    }
}

/// A `Conv` reading a `Softmax` through `Reshape`/`Transpose`: the DFL's fixed convolution.
pub fn is_dfl_conv(g: &GraphProto, ix: &GraphIndex<'_>, n: usize) -> bool {
    let mut t = g.node[n].input.first().map(String::as_str).unwrap_or("");
    for _ in 0..8 {
        let Some(&p) = ix.producer.get(t) else { return false };
        match g.node[p].op_type.as_str() {
            "Softmax" => return true,
            "Reshape" | "Transpose" => t = g.node[p].input.first().map(String::as_str).unwrap_or(""),
            _ => return false,
        }
    }
    false
}

/// The float tail: walking back from every graph output, each node met, stopping (inclusively)
/// at learned convolutions and not following the input of `Shape` (see [`super`]).
pub fn float_tail(g: &GraphProto, ix: &GraphIndex<'_>) -> BTreeSet<usize> {
    let mut tail = BTreeSet::new();
    let mut stack: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    while let Some(t) = stack.pop() {
        let Some(&n) = ix.producer.get(t) else { continue };
        if !tail.insert(n) {
            continue;
        }
        let node = &g.node[n];
        match node.op_type.as_str() {
            "Shape" => continue,
            "Conv" if !is_dfl_conv(g, ix, n) => continue,
            _ => stack.extend(node.input.iter().map(String::as_str).filter(|s| !s.is_empty())),
        }
    }
    tail
}

/// Output channels of a `Conv` (from its weight initializer).
fn conv_out_channels(g: &GraphProto, ix: &GraphIndex<'_>, n: usize) -> Option<i64> {
    let w = g.node[n].input.get(1)?;
    g.initializer.get(*ix.initializers.get(w.as_str())?)?.dims.first().copied()
}

/// The class-score branch of a YOLOv8 head, for mixed precision: the convolution blocks (`Conv`
/// and its SiLU) feeding each class-logit convolution, back to where the branch leaves the neck
/// (a tensor other nodes read too). The class-logit convolutions are the learned boundary
/// convolutions of `tail` whose output channels are neither the box distribution's (4 x the DFL
/// convolution's input channels) nor the mask coefficients' (those of the convolution that makes
/// the prototypes, the one graph output reached without a DFL); empty when that does not single
/// them out (e.g. a model with as many classes as mask coefficients).
pub fn class_branch(g: &GraphProto, ix: &GraphIndex<'_>, tail: &BTreeSet<usize>) -> BTreeSet<usize> {
    class_branch_parts(g, ix, tail).0
}

fn class_branch_parts(g: &GraphProto, ix: &GraphIndex<'_>, tail: &BTreeSet<usize>) -> (BTreeSet<usize>, Vec<usize>) {
    let mut out = BTreeSet::new();
    let mut logits = Vec::new();
    let learned: Vec<usize> =
        tail.iter().copied().filter(|&n| g.node[n].op_type == "Conv" && !is_dfl_conv(g, ix, n)).collect();
    let Some(dfl) = tail.iter().copied().find(|&n| g.node[n].op_type == "Conv" && is_dfl_conv(g, ix, n)) else {
        return (out, logits);
    };
    let Some(box_c) = g.node[dfl]
        .input
        .get(1)
        .and_then(|w| ix.initializers.get(w.as_str()))
        .and_then(|&i| g.initializer[i].dims.get(1).map(|c| 4 * c))
    else {
        return (out, logits);
    };
    // the prototype convolution: the learned boundary convolution met walking back from a graph
    // output whose walk meets no other learned convolution
    let mut proto_c = None;
    for o in &g.output {
        let mut met = Vec::new();
        let mut stack = vec![o.name.as_str()];
        let mut seen = HashSet::new();
        while let Some(t) = stack.pop() {
            let Some(&n) = ix.producer.get(t) else { continue };
            if !seen.insert(n) || !tail.contains(&n) || g.node[n].op_type == "Shape" {
                continue;
            }
            if learned.contains(&n) {
                met.push(n);
                continue;
            }
            stack.extend(g.node[n].input.iter().map(String::as_str).filter(|s| !s.is_empty()));
        }
        if let [one] = met.as_slice() {
            proto_c = conv_out_channels(g, ix, *one);
        }
    }
    let Some(mask_c) = proto_c else { return (out, logits) };
    if box_c == mask_c {
        return (out, logits);
    }
    let consumers = |t: &str| g.node.iter().filter(|n| n.input.iter().any(|i| i == t)).count();
    for &c in &learned {
        let Some(oc) = conv_out_channels(g, ix, c) else { continue };
        if oc == box_c || oc == mask_c {
            continue;
        }
        logits.push(c);
        // walk back over SiLU -> Conv blocks while the tensor feeds this branch only
        let mut t = g.node[c].input[0].as_str();
        for _ in 0..8 {
            let Some(&mul) = ix.producer.get(t) else { break };
            if g.node[mul].op_type != "Mul" {
                break;
            }
            let Some((&sig, x)) = g.node[mul].input.iter().find_map(|i| {
                ix.producer
                    .get(i.as_str())
                    .filter(|&&p| g.node[p].op_type == "Sigmoid")
                    .map(|p| (p, &g.node[*p].input[0]))
            }) else {
                break;
            };
            let Some(&conv) = ix.producer.get(x.as_str()) else { break };
            if g.node[conv].op_type != "Conv" || !g.node[mul].input.contains(x) {
                break;
            }
            out.extend([mul, sig, conv]);
            t = g.node[conv].input[0].as_str();
            if consumers(t) > 1 {
                break;
            }
        }
    }
    (out, logits)
}

fn conv_weights_ok(g: &GraphProto, ix: &GraphIndex<'_>, n: &NodeProto) -> Result<(), String> {
    let w = n.input.get(1).map(String::as_str).unwrap_or("");
    let Some(&wi) = ix.initializers.get(w) else {
        return Err(format!("weight {w} is not an initializer"));
    };
    let wt = &g.initializer[wi];
    if wt.data_type != data_type::FLOAT || wt.dims.len() != 4 {
        return Err(format!("weight {w} is not a 4-D float tensor"));
    }
    if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
        match ix.initializers.get(b.as_str()) {
            Some(&bi) if g.initializer[bi].data_type == data_type::FLOAT => {}
            _ => return Err(format!("bias {b} is not a float initializer")),
        }
    }
    Ok(())
}
