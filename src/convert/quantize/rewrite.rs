//! Exact float-graph rewrites done before planning, so that more of the graph runs on int8 kernels.
//!
//! [`conv_transpose_as_conv`]: a `ConvTranspose` whose kernel equals its stride (K x K, stride K,
//! no padding, one group: FastSAM's 2x2 stride-2 prototype upsampling) has no overlapping taps,
//! so every output pixel `(K*i + a, K*j + b)` of channel `co` is one dot product of the input pixel
//! `(i, j)` with the weights `W[:, co, a, b]`. That is exactly a 1x1 `Conv` to `K*K*C_out`
//! channels followed by `DepthToSpace(blocksize K, mode DCR)`, with the conv's output channel
//! `(a*K + b)*C_out + co` holding `W[:, co, a, b]` and the bias `B[co]`. ONNX Runtime's CPU
//! provider does not fuse `DQ -> ConvTranspose -> Q` into an int8 kernel, but it does fuse the
//! 1x1 `Conv` into `QLinearConv` and runs `DepthToSpace` (a pure permutation) on uint8.
//!
//! [`stem_as_space_to_depth`]: the stem, a 3x3 stride-2 `Conv` (padding 1) reading the image with
//! 3 channels, makes ONNX Runtime's int8 convolution gather 27-value patches for 0.4% of the
//! model's multiply-adds at 9% of its int8 convolution time. Output pixel `(i, j)` reads input rows
//! `2i-1..2i+1` and columns `2j-1..2j+1`, which are phases `(r mod 2)` of the 2x2 blocks `i-1..i`
//! (and `j-1..j`): so it is exactly `SpaceToDepth(blocksize 2)` (channel `(bh*2 + bw)*C + c` at
//! `(i, j)` holds `x[c, 2i+bh, 2j+bw]`) followed by a 2x2 stride-1 `Conv` with padding 1 at the
//! top and left only, tap `(th, tw)` of channel `(bh*2 + bw)*C + c` holding `W[:, c, kh, kw]` for
//! `kh - 1 = 2(th - 1) + bh` (and alike for columns), zero elsewhere. The input's height and width
//! must be even (FastSAM's are multiples of 32).

use std::collections::HashSet;

use crate::convert::onnx_proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, attr_type, data_type,
};

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// The kernel size `K` when `n` is a `ConvTranspose` that [`conv_transpose_as_conv`] can rewrite
/// (K x K kernel of the float initializer `w`, stride K, no padding / output padding / dilation,
/// one group), else `None`.
fn rewritable(n: &NodeProto, w: &TensorProto) -> Option<usize> {
    if n.op_type != "ConvTranspose" || !n.domain.is_empty() || w.data_type != data_type::FLOAT || w.dims.len() != 4 {
        return None;
    }
    let k = w.dims[2];
    if k < 1 || w.dims[3] != k || w.dims[0] < 1 || w.dims[1] < 1 {
        return None;
    }
    let all = |name: &str, v: i64, default_ok: bool| match attr(n, name) {
        None => default_ok,
        Some(a) => a.ints.iter().all(|&x| x == v),
    };
    let auto_pad_ok = attr(n, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET" || a.s == b"VALID");
    let group_ok = attr(n, "group").is_none_or(|a| a.i == 1);
    // the stride must be given (its default, 1, overlaps the taps)
    (all("strides", k, false)
        && attr(n, "strides").is_some_and(|a| a.ints.len() == 2)
        && attr(n, "kernel_shape").is_none_or(|a| a.ints == [k, k])
        && all("pads", 0, true)
        && all("output_padding", 0, true)
        && all("dilations", 1, true)
        && attr(n, "output_shape").is_none()
        && auto_pad_ok
        && group_ok)
        .then_some(k as usize)
}

/// Rewrites every non-overlapping `ConvTranspose` (see the module docs) as a 1x1 `Conv` +
/// `DepthToSpace(DCR)`, in place; returns the names of the rewritten nodes. The graph computes
/// the same function (up to float summation order): test `conv_transpose_rewrite_is_exact`.
pub fn conv_transpose_as_conv(model: &mut ModelProto) -> Vec<String> {
    let Some(g) = model.graph.as_mut() else { return Vec::new() };
    let mut done = Vec::new();
    let mut new_inits: Vec<TensorProto> = Vec::new();
    let mut nodes = Vec::with_capacity(g.node.len() + 4);
    for (i, n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        let w = n.input.get(1).and_then(|w| g.initializer.iter().find(|t| &t.name == w));
        let bias = match n.input.get(2).filter(|b| !b.is_empty()) {
            None => Some(None),
            Some(b) => g.initializer.iter().find(|t| &t.name == b).and_then(|t| t.to_f32()).map(Some),
        };
        let (Some(w), Some(bias)) = (w, bias) else {
            nodes.push(n);
            continue;
        };
        let (Some(k), Some(wv)) = (rewritable(&n, w), w.to_f32()) else {
            nodes.push(n);
            continue;
        };
        let (ci, co) = (w.dims[0] as usize, w.dims[1] as usize);
        if wv.len() != ci * co * k * k || bias.as_ref().is_some_and(|b| b.len() != co) || n.output.len() != 1 {
            nodes.push(n);
            continue;
        }
        // W'[(a*K + b)*C_out + c, ci, 0, 0] = W[ci, c, a, b]
        let oc = k * k * co;
        let mut w2 = vec![0f32; oc * ci];
        for x in 0..ci {
            for c in 0..co {
                for a in 0..k {
                    for b in 0..k {
                        w2[((a * k + b) * co + c) * ci + x] = wv[((x * co + c) * k + a) * k + b];
                    }
                }
            }
        }
        let tag = if n.name.is_empty() { format!("convtranspose{i}") } else { n.name.clone() };
        let (wn, bn, mid) = (format!("{tag}_as_conv_W"), format!("{tag}_as_conv_B"), format!("{tag}_as_conv_Output"));
        new_inits.push(TensorProto::from_f32(&wn, &[oc as i64, ci as i64, 1, 1], &w2));
        let mut inputs = vec![n.input[0].clone(), wn];
        if let Some(b) = bias {
            let b2: Vec<f32> = (0..oc).map(|j| b[j % co]).collect();
            new_inits.push(TensorProto::from_f32(&bn, &[oc as i64], &b2));
            inputs.push(bn);
        }
        let ints = |name: &str, v: Vec<i64>| AttributeProto {
            name: name.into(),
            r#type: attr_type::INTS,
            ints: v,
            ..Default::default()
        };
        nodes.push(NodeProto {
            name: format!("{tag}_as_conv"),
            op_type: "Conv".into(),
            input: inputs,
            output: vec![mid.clone()],
            attribute: vec![ints("kernel_shape", vec![1, 1]), ints("strides", vec![1, 1])],
            ..Default::default()
        });
        nodes.push(NodeProto {
            name: format!("{tag}_as_depth_to_space"),
            op_type: "DepthToSpace".into(),
            input: vec![mid],
            output: n.output.clone(),
            attribute: vec![
                AttributeProto { name: "blocksize".into(), r#type: attr_type::INT, i: k as i64, ..Default::default() },
                AttributeProto {
                    name: "mode".into(),
                    r#type: attr_type::STRING,
                    s: b"DCR".to_vec(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        done.push(n.name.clone());
    }
    g.node = nodes;
    if !done.is_empty() {
        add_and_prune_initializers(g, new_inits);
    }
    done
}

/// Rewrites every 3x3 stride-2 `Conv` with symmetric padding 1, no dilation, one group, at most 4
/// input channels, that reads a graph input (the stem; see the module docs) as `SpaceToDepth(2)`
/// followed by a 2x2 `Conv`, in place; returns the names of the rewritten nodes. The same function
/// up to float summation order: test `stem_space_to_depth_rewrite_is_exact_on_the_real_model`.
pub fn stem_as_space_to_depth(model: &mut ModelProto) -> Vec<String> {
    let Some(g) = model.graph.as_mut() else { return Vec::new() };
    let graph_inputs: HashSet<String> = g.input.iter().map(|v| v.name.clone()).collect();
    let mut done = Vec::new();
    let mut new_inits: Vec<TensorProto> = Vec::new();
    let mut nodes = Vec::with_capacity(g.node.len() + 1);
    for (i, mut n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        let w = n.input.get(1).and_then(|w| g.initializer.iter().find(|t| &t.name == w));
        let Some((w, wv)) = w.filter(|_| stem_rewritable(&n, &graph_inputs)).and_then(|w| w.to_f32().map(|v| (w, v)))
        else {
            nodes.push(n);
            continue;
        };
        let (o, c) = (w.dims[0] as usize, w.dims[1] as usize);
        if w.dims.len() != 4 || w.dims[2] != 3 || w.dims[3] != 3 || c > 4 || wv.len() != o * c * 9 {
            nodes.push(n);
            continue;
        }
        // W2[o, (bh*2 + bw)*C + c, th, tw] = W[o, c, kh, kw] with kh - 1 = 2 (th - 1) + bh
        let c4 = 4 * c;
        let mut w2 = vec![0f32; o * c4 * 4];
        for oo in 0..o {
            for cc in 0..c {
                for kh in 0..3usize {
                    for kw in 0..3usize {
                        let (r, q) = (kh as i64 - 1, kw as i64 - 1);
                        let (bh, bw) = (r.rem_euclid(2), q.rem_euclid(2));
                        let (th, tw) = ((r - bh) / 2 + 1, (q - bw) / 2 + 1);
                        let ch = (bh * 2 + bw) as usize * c + cc;
                        w2[((oo * c4 + ch) * 2 + th as usize) * 2 + tw as usize] =
                            wv[((oo * c + cc) * 3 + kh) * 3 + kw];
                    }
                }
            }
        }
        let tag = if n.name.is_empty() { format!("conv{i}") } else { n.name.clone() };
        let (wn, mid) = (format!("{tag}_s2d_W"), format!("{tag}_s2d_Output"));
        new_inits.push(TensorProto::from_f32(&wn, &[o as i64, c4 as i64, 2, 2], &w2));
        nodes.push(NodeProto {
            name: format!("{tag}_space_to_depth"),
            op_type: "SpaceToDepth".into(),
            input: vec![n.input[0].clone()],
            output: vec![mid.clone()],
            attribute: vec![AttributeProto {
                name: "blocksize".into(),
                r#type: attr_type::INT,
                i: 2,
                ..Default::default()
            }],
            ..Default::default()
        });
        let ints = |name: &str, v: Vec<i64>| AttributeProto {
            name: name.into(),
            r#type: attr_type::INTS,
            ints: v,
            ..Default::default()
        };
        n.input[0] = mid;
        n.input[1] = wn;
        n.attribute = vec![
            ints("kernel_shape", vec![2, 2]),
            ints("strides", vec![1, 1]),
            ints("pads", vec![1, 1, 0, 0]),
            ints("dilations", vec![1, 1]),
        ];
        done.push(n.name.clone());
        nodes.push(n);
    }
    g.node = nodes;
    if !done.is_empty() {
        add_and_prune_initializers(g, new_inits);
    }
    done
}

/// Whether `n` is a stem convolution [`stem_as_space_to_depth`] rewrites (its weight's shape is
/// checked there).
fn stem_rewritable(n: &NodeProto, graph_inputs: &HashSet<String>) -> bool {
    let ints_are = |name: &str, v: &[i64], default_ok: bool| match attr(n, name) {
        None => default_ok,
        Some(a) => a.ints == v,
    };
    n.op_type == "Conv"
        && n.domain.is_empty()
        && n.input.first().is_some_and(|x| graph_inputs.contains(x))
        && ints_are("strides", &[2, 2], false)
        && ints_are("pads", &[1, 1, 1, 1], false)
        && ints_are("kernel_shape", &[3, 3], true)
        && ints_are("dilations", &[1, 1], true)
        && attr(n, "group").is_none_or(|a| a.i == 1)
        && attr(n, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET")
}

/// Adds a rewrite's new initializers and drops those no node reads any more (the replaced
/// weights), keeping any that is also a graph input.
fn add_and_prune_initializers(g: &mut GraphProto, new_inits: Vec<TensorProto>) {
    g.initializer.extend(new_inits);
    let used: HashSet<String> = g.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    let inputs: HashSet<String> = g.input.iter().map(|v| v.name.clone()).collect();
    g.initializer.retain(|t| used.contains(&t.name) || inputs.contains(&t.name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            name: "up".into(),
            op_type: "ConvTranspose".into(),
            input: vec!["x".into(), "w".into(), "b".into()],
            output: vec!["y".into()],
            attribute: attrs,
            ..Default::default()
        }
    }
    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: attr_type::INTS, ints: v.to_vec(), ..Default::default() }
    }

    #[test]
    fn only_non_overlapping_conv_transposes_are_rewritten() {
        let w = TensorProto::from_f32("w", &[3, 2, 2, 2], &[0.0; 24]);
        assert_eq!(rewritable(&ct(vec![ints("strides", &[2, 2]), ints("kernel_shape", &[2, 2])]), &w), Some(2));
        assert_eq!(rewritable(&ct(vec![ints("strides", &[2, 2]), ints("pads", &[0, 0, 0, 0])]), &w), Some(2));
        // default stride 1: overlapping taps
        assert_eq!(rewritable(&ct(vec![]), &w), None);
        assert_eq!(rewritable(&ct(vec![ints("strides", &[1, 1])]), &w), None);
        assert_eq!(rewritable(&ct(vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])]), &w), None);
        assert_eq!(rewritable(&ct(vec![ints("strides", &[2, 2]), ints("output_padding", &[1, 1])]), &w), None);
        let w3 = TensorProto::from_f32("w", &[3, 2, 3, 3], &[0.0; 54]);
        assert_eq!(rewritable(&ct(vec![ints("strides", &[2, 2])]), &w3), None);
        assert_eq!(rewritable(&ct(vec![ints("strides", &[3, 3])]), &w3), Some(3));
    }

    #[test]
    fn the_rewritten_weights_put_tap_a_b_of_channel_c_at_dcr_channel_a_k_plus_b_times_cout_plus_c() {
        // W[ci, co, a, b] = 1000 ci + 100 co + 10 a + b
        let (ci, co, k) = (3usize, 2usize, 2usize);
        let wv: Vec<f32> = (0..ci * co * k * k)
            .map(|i| {
                let (x, c, a, b) = (i / (co * k * k), i / (k * k) % co, i / k % k, i % k);
                (1000 * x + 100 * c + 10 * a + b) as f32
            })
            .collect();
        let mut m = ModelProto {
            graph: Some(GraphProto {
                node: vec![ct(vec![ints("strides", &[2, 2])])],
                initializer: vec![
                    TensorProto::from_f32("w", &[3, 2, 2, 2], &wv),
                    TensorProto::from_f32("b", &[2], &[0.5, -0.5]),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(conv_transpose_as_conv(&mut m), vec!["up".to_string()]);
        let g = m.graph.unwrap();
        assert_eq!(g.node.iter().map(|n| n.op_type.as_str()).collect::<Vec<_>>(), ["Conv", "DepthToSpace"]);
        assert_eq!(g.node[1].output, ["y"]);
        let w2 = g.initializer.iter().find(|t| t.name == "up_as_conv_W").unwrap();
        assert_eq!(w2.dims, [8, 3, 1, 1]);
        let w2 = w2.to_f32().unwrap();
        for a in 0..k {
            for b in 0..k {
                for c in 0..co {
                    for x in 0..ci {
                        assert_eq!(w2[((a * k + b) * co + c) * ci + x], (1000 * x + 100 * c + 10 * a + b) as f32);
                    }
                }
            }
        }
        let b2 = g.initializer.iter().find(|t| t.name == "up_as_conv_B").unwrap().to_f32().unwrap();
        assert_eq!(b2, [0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, -0.5]);
        assert!(!g.initializer.iter().any(|t| t.name == "w"), "the old weight is dropped");
    }
}
