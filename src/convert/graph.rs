//! Builds the ONNX graph of a YOLOv8-seg (FastSAM) model from a checkpoint's module tree.
//!
//! The architecture is read from the checkpoint itself: `model.model` is the layer list, and each
//! layer carries Ultralytics' `f` (input indices) attribute; layer types come from the module
//! classes (`Conv`, `C2f`, `SPPF`, `Upsample`, `Concat`, `Segment`) and channel counts from the
//! weight shapes, so every YOLOv8-seg scale (n/s/m/l/x; FastSAM-s = s, FastSAM-x = x) converts.
//!
//! Like Ultralytics' exporter, BatchNorm is folded into the preceding convolution
//! (`w * gamma / sqrt(var + eps)`, `(b - mean) * gamma / sqrt(var + eps) + beta`) and initializers keep
//! the state-dict names (`model.0.conv.weight`, ...). The head reproduces Ultralytics' export-mode
//! `Segment` forward: DFL (softmax over `reg_max` bins, then a 1x1 conv with `arange` weights),
//! `dist2bbox` to centre-xywh times the stride, sigmoid class scores and the 32 mask coefficients in
//! `output0 [N, 4+nc+nm, A]`, and the prototype masks in `output1 [N, nm, H/4, W/4]`. With a fixed
//! `imgsz` the anchors are constants; with dynamic shapes they are computed in the graph.

use std::path::Path;

use prost::Message;

use super::ConvertError;
use super::checkpoint::{Checkpoint, ModuleRef, Tensor};
use super::onnx_proto::*;

/// Version of the conversion logic; part of the cache key of converted models.
pub const CONVERTER_VERSION: &str = "1";

/// Conversion options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Fixed input size (height, width), multiples of 32; `None` for dynamic batch/height/width.
    pub imgsz: Option<(u32, u32)>,
}

/// Summary of a conversion.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    pub layers: usize,
    pub initializers: usize,
    pub nodes: usize,
    pub nc: usize,
    pub nm: usize,
    pub strides: Vec<f32>,
    pub scale: Option<String>,
}

struct Builder<'a> {
    path: &'a Path,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    counter: usize,
}

fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::INT, i, ..Default::default() }
}
fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::INTS, ints: v.to_vec(), ..Default::default() }
}
fn attr_s(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::STRING, s: s.as_bytes().to_vec(), ..Default::default() }
}
fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::FLOAT, f, ..Default::default() }
}

impl<'a> Builder<'a> {
    fn err(&self, msg: impl Into<String>) -> ConvertError {
        ConvertError::Unsupported { path: self.path.to_path_buf(), msg: msg.into() }
    }

    /// Adds a node with a single output named after `scope`/`op`; returns the output name.
    fn op(&mut self, scope: &str, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.counter += 1;
        let out = format!("/{scope}/{op}_{}_output_0", self.counter);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("/{scope}/{op}_{}", self.counter),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    fn init_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) -> String {
        self.inits.push(TensorProto::from_f32(name, dims, data));
        name.to_string()
    }

    fn const_i64(&mut self, scope: &str, data: &[i64]) -> String {
        self.counter += 1;
        let name = format!("/{scope}/Constant_{}_output_0", self.counter);
        self.inits.push(TensorProto::from_i64(&name, &[data.len() as i64], data));
        name
    }

    fn const_f32_scalar(&mut self, scope: &str, v: f32) -> String {
        self.counter += 1;
        let name = format!("/{scope}/Constant_{}_output_0", self.counter);
        self.inits.push(TensorProto::from_f32(&name, &[], &[v]));
        name
    }

    fn silu(&mut self, scope: &str, x: &str) -> String {
        let s = self.op(scope, "Sigmoid", &[x], vec![]);
        self.op(scope, "Mul", &[x, &s], vec![])
    }

    fn conv_node(
        &mut self,
        scope: &str,
        x: &str,
        w_name: &str,
        b_name: Option<&str>,
        w: &Tensor,
        m: &ModuleRef<'_>,
    ) -> Result<String, ConvertError> {
        if w.shape.len() != 4 {
            return Err(self.err(format!("{scope}: conv weight must be 4-D, found {:?}", w.shape)));
        }
        let k = [w.shape[2] as i64, w.shape[3] as i64];
        let stride = m.ints("stride").unwrap_or(vec![1, 1]);
        let pad = m.ints("padding").unwrap_or(vec![0, 0]);
        let dil = m.ints("dilation").unwrap_or(vec![1, 1]);
        let groups = m.int("groups").unwrap_or(1);
        let two = |v: Vec<i64>| if v.len() == 1 { vec![v[0], v[0]] } else { v };
        let (stride, pad, dil) = (two(stride), two(pad), two(dil));
        if stride.len() != 2 || pad.len() != 2 || dil.len() != 2 {
            return Err(self.err(format!("{scope}: unexpected conv attributes")));
        }
        if let Some(mode) = m.string("padding_mode")
            && mode != "zeros"
        {
            return Err(self.err(format!("{scope}: padding_mode {mode} is not supported")));
        }
        let mut inputs = vec![x, w_name];
        if let Some(b) = b_name {
            inputs.push(b);
        }
        Ok(self.op(
            scope,
            "Conv",
            &inputs,
            vec![
                attr_ints("dilations", &dil),
                attr_i("group", groups),
                attr_ints("kernel_shape", &k),
                attr_ints("pads", &[pad[0], pad[1], pad[0], pad[1]]),
                attr_ints("strides", &stride),
            ],
        ))
    }

    /// A plain `nn.Conv2d` (with bias), named `{path}.weight` / `{path}.bias`.
    fn conv2d(&mut self, m: &ModuleRef<'_>, path: &str, x: &str) -> Result<String, ConvertError> {
        let w = m.tensor("weight")?;
        let b = m.tensor_opt("bias")?;
        let wn = self.init_f32(&format!("{path}.weight"), &dims(&w), &w.data);
        let bn = b.as_ref().map(|b| self.init_f32(&format!("{path}.bias"), &dims(b), &b.data));
        let scope = path.replace('.', "/");
        self.conv_node(&scope, x, &wn, bn.as_deref(), &w, m)
    }

    /// An Ultralytics `Conv` block (Conv2d + BatchNorm + SiLU) with BN folded.
    fn conv_block(&mut self, m: &ModuleRef<'_>, path: &str, x: &str) -> Result<String, ConvertError> {
        if m.kind() != "Conv" {
            return Err(self.err(format!("{path}: expected a Conv block, found {}", m.class())));
        }
        let conv = m.child("conv")?;
        let mut w = conv.tensor("weight")?;
        let cout = w.shape.first().copied().unwrap_or(0);
        let mut bias = conv.tensor_opt("bias")?.map(|t| t.data).unwrap_or_else(|| vec![0.0; cout]);
        if bias.len() != cout {
            return Err(self.err(format!("{path}: conv bias has {} values for {cout} channels", bias.len())));
        }
        if let Some(bn) = m.child_opt("bn") {
            let gamma = bn.tensor("weight")?.data;
            let beta = bn.tensor("bias")?.data;
            let mean = bn.tensor("running_mean")?.data;
            let var = bn.tensor("running_var")?.data;
            let eps = bn.float("eps").unwrap_or(1e-5) as f32;
            if [gamma.len(), beta.len(), mean.len(), var.len()].iter().any(|&n| n != cout) {
                return Err(self.err(format!("{path}: BatchNorm size does not match the conv's {cout} channels")));
            }
            let per = w.numel() / cout.max(1);
            for c in 0..cout {
                let rs = 1.0 / (var[c] + eps).sqrt();
                let s = gamma[c] * rs;
                for v in &mut w.data[c * per..(c + 1) * per] {
                    *v *= s;
                }
                bias[c] = (bias[c] - mean[c]) * rs * gamma[c] + beta[c];
            }
        }
        let wn = self.init_f32(&format!("{path}.conv.weight"), &dims(&w), &w.data);
        let bn = self.init_f32(&format!("{path}.conv.bias"), &[cout as i64], &bias);
        let scope = format!("{}/conv", path.replace('.', "/"));
        let y = self.conv_node(&scope, x, &wn, Some(&bn), &w, &conv)?;
        match m.child_opt("act").map(|a| a.kind()) {
            Some("SiLU") => Ok(self.silu(&path.replace('.', "/"), &y)),
            Some("Identity") | None => Ok(y),
            Some(other) => Err(self.err(format!("{path}: activation {other} is not supported (only SiLU)"))),
        }
    }

    fn c2f(&mut self, m: &ModuleRef<'_>, path: &str, x: &str) -> Result<String, ConvertError> {
        let scope = path.replace('.', "/");
        let y0 = self.conv_block(&m.child("cv1")?, &format!("{path}.cv1"), x)?;
        let cv1_out = m.child("cv1")?.child("conv")?.tensor("weight")?.shape.first().copied().unwrap_or(0) as i64;
        let c = m.int("c").unwrap_or(cv1_out / 2);
        if c * 2 != cv1_out {
            return Err(self.err(format!("{path}: C2f hidden width {c} does not match cv1 ({cv1_out})")));
        }
        let split = self.const_i64(&scope, &[c, c]);
        self.counter += 1;
        let (a, b) =
            (format!("/{scope}/Split_{}_output_0", self.counter), format!("/{scope}/Split_{}_output_1", self.counter));
        self.nodes.push(NodeProto {
            input: vec![y0, split],
            output: vec![a.clone(), b.clone()],
            name: format!("/{scope}/Split_{}", self.counter),
            op_type: "Split".into(),
            attribute: vec![attr_i("axis", 1)],
            ..Default::default()
        });
        let mut ys = vec![a, b];
        for (name, bott) in m.child("m")?.children() {
            if bott.kind() != "Bottleneck" {
                return Err(self.err(format!("{path}.m.{name}: expected Bottleneck, found {}", bott.class())));
            }
            let bp = format!("{path}.m.{name}");
            let last = ys.last().cloned().unwrap_or_default();
            let t = self.conv_block(&bott.child("cv1")?, &format!("{bp}.cv1"), &last)?;
            let t = self.conv_block(&bott.child("cv2")?, &format!("{bp}.cv2"), &t)?;
            let t = if bott.bool("add").unwrap_or(false) {
                self.op(&bp.replace('.', "/"), "Add", &[&last, &t], vec![])
            } else {
                t
            };
            ys.push(t);
        }
        let refs: Vec<&str> = ys.iter().map(String::as_str).collect();
        let cat = self.op(&scope, "Concat", &refs, vec![attr_i("axis", 1)]);
        self.conv_block(&m.child("cv2")?, &format!("{path}.cv2"), &cat)
    }

    fn sppf(&mut self, m: &ModuleRef<'_>, path: &str, x: &str) -> Result<String, ConvertError> {
        let scope = path.replace('.', "/");
        let y = self.conv_block(&m.child("cv1")?, &format!("{path}.cv1"), x)?;
        let pool = m.child("m")?;
        let k = pool.int("kernel_size").unwrap_or(5);
        let p = k / 2;
        let mut ys = vec![y];
        for _ in 0..3 {
            let last = ys.last().cloned().unwrap_or_default();
            let o = self.op(
                &scope,
                "MaxPool",
                &[&last],
                vec![
                    attr_i("ceil_mode", 0),
                    attr_ints("dilations", &[1, 1]),
                    attr_ints("kernel_shape", &[k, k]),
                    attr_ints("pads", &[p, p, p, p]),
                    attr_ints("strides", &[1, 1]),
                ],
            );
            ys.push(o);
        }
        let refs: Vec<&str> = ys.iter().map(String::as_str).collect();
        let cat = self.op(&scope, "Concat", &refs, vec![attr_i("axis", 1)]);
        self.conv_block(&m.child("cv2")?, &format!("{path}.cv2"), &cat)
    }

    fn upsample(&mut self, m: &ModuleRef<'_>, path: &str, x: &str) -> Result<String, ConvertError> {
        let scope = path.replace('.', "/");
        let mode = m.string("mode").unwrap_or_else(|| "nearest".into());
        if mode != "nearest" {
            return Err(self.err(format!("{path}: Upsample mode {mode} is not supported")));
        }
        let s = m.float("scale_factor").ok_or_else(|| self.err(format!("{path}: Upsample without scale_factor")))?;
        self.counter += 1;
        let scales = format!("/{scope}/Constant_{}_output_0", self.counter);
        self.inits.push(TensorProto::from_f32(&scales, &[4], &[1.0, 1.0, s as f32, s as f32]));
        Ok(self.op(
            &scope,
            "Resize",
            &[x, "", &scales],
            vec![
                attr_s("coordinate_transformation_mode", "asymmetric"),
                attr_f("cubic_coeff_a", -0.75),
                attr_s("mode", "nearest"),
                attr_s("nearest_mode", "floor"),
            ],
        ))
    }

    /// A Sequential of [Conv, Conv, Conv2d] as in Detect.cv2/cv3/cv4.
    fn head_branch(&mut self, seq: &ModuleRef<'_>, path: &str, x: &str) -> Result<String, ConvertError> {
        let mut y = x.to_string();
        for (name, sub) in seq.children() {
            let p = format!("{path}.{name}");
            y = match sub.kind() {
                "Conv" => self.conv_block(&sub, &p, &y)?,
                "Conv2d" => self.conv2d(&sub, &p, &y)?,
                other => return Err(self.err(format!("{p}: unsupported head module {other}"))),
            };
        }
        Ok(y)
    }

    fn segment(
        &mut self,
        m: &ModuleRef<'_>,
        path: &str,
        xs: &[String],
        imgsz: Option<(u32, u32)>,
    ) -> Result<(String, String, usize, usize, Vec<f32>), ConvertError> {
        let scope = path.replace('.', "/");
        let cv2 = m.child("cv2")?.children();
        let cv3 = m.child("cv3")?.children();
        let cv4 = m.child("cv4")?.children();
        let nl = cv2.len();
        if nl == 0 || cv3.len() != nl || cv4.len() != nl || xs.len() != nl {
            return Err(self.err(format!("{path}: inconsistent Segment head ({nl} levels, {} inputs)", xs.len())));
        }
        let strides = m.tensor("stride")?.data;
        if strides.len() != nl || strides.iter().any(|&s| !s.is_finite() || s < 1.0) {
            return Err(self.err(format!("{path}: Segment.stride {strides:?} does not match {nl} levels")));
        }
        let dfl = m.child("dfl")?;
        let dfl_w = dfl.child("conv")?.tensor("weight")?;
        let reg_max = dfl_w.shape.get(1).copied().unwrap_or(0) as i64;
        if reg_max < 1 {
            return Err(self.err(format!("{path}: bad DFL weight shape {:?}", dfl_w.shape)));
        }
        let nc = m.int("nc").ok_or_else(|| self.err(format!("{path}: Segment.nc missing")))?;
        let nm = m.int("nm").unwrap_or(32);
        let mut boxes = Vec::new();
        let mut clss = Vec::new();
        let mut mcs = Vec::new();
        let shp_box = self.const_i64(&scope, &[0, 4 * reg_max, -1]);
        let shp_cls = self.const_i64(&scope, &[0, nc, -1]);
        let shp_mc = self.const_i64(&scope, &[0, nm, -1]);
        // Mask prototypes first (as Ultralytics does).
        let proto = m.child("proto")?;
        let pp = format!("{path}.proto");
        let p1 = self.conv_block(&proto.child("cv1")?, &format!("{pp}.cv1"), &xs[0])?;
        let up = proto.child("upsample")?;
        if up.kind() != "ConvTranspose2d" {
            return Err(self.err(format!("{pp}.upsample: expected ConvTranspose2d, found {}", up.class())));
        }
        let uw = up.tensor("weight")?;
        let ub = up.tensor_opt("bias")?;
        let uwn = self.init_f32(&format!("{pp}.upsample.weight"), &dims(&uw), &uw.data);
        if uw.shape.len() != 4 {
            return Err(self.err(format!("{pp}.upsample: weight must be 4-D, found {:?}", uw.shape)));
        }
        let k = [uw.shape[2] as i64, uw.shape[3] as i64];
        let us = up.ints("stride").unwrap_or(vec![2, 2]);
        let upad = up.ints("padding").unwrap_or(vec![0, 0]);
        let us = if us.len() == 1 { vec![us[0], us[0]] } else { us };
        let upad = if upad.len() == 1 { vec![upad[0], upad[0]] } else { upad };
        if us.len() != 2 || upad.len() != 2 {
            return Err(self.err(format!("{pp}.upsample: unexpected stride/padding")));
        }
        let mut uin = vec![p1.clone(), uwn];
        if let Some(b) = &ub {
            uin.push(self.init_f32(&format!("{pp}.upsample.bias"), &dims(b), &b.data));
        }
        let uin_ref: Vec<&str> = uin.iter().map(String::as_str).collect();
        let p2 = self.op(
            &format!("{scope}/proto/upsample"),
            "ConvTranspose",
            &uin_ref,
            vec![
                attr_ints("dilations", &[1, 1]),
                attr_i("group", 1),
                attr_ints("kernel_shape", &k),
                attr_ints("pads", &[upad[0], upad[1], upad[0], upad[1]]),
                attr_ints("strides", &us),
            ],
        );
        let p3 = self.conv_block(&proto.child("cv2")?, &format!("{pp}.cv2"), &p2)?;
        let p4 = self.conv_block(&proto.child("cv3")?, &format!("{pp}.cv3"), &p3)?;
        for i in 0..nl {
            let b = self.head_branch(&cv2[i].1, &format!("{path}.cv2.{}", cv2[i].0), &xs[i])?;
            let c = self.head_branch(&cv3[i].1, &format!("{path}.cv3.{}", cv3[i].0), &xs[i])?;
            let mc = self.head_branch(&cv4[i].1, &format!("{path}.cv4.{}", cv4[i].0), &xs[i])?;
            boxes.push(self.op(&scope, "Reshape", &[&b, &shp_box], vec![]));
            clss.push(self.op(&scope, "Reshape", &[&c, &shp_cls], vec![]));
            mcs.push(self.op(&scope, "Reshape", &[&mc, &shp_mc], vec![]));
        }
        let cat = |b: &mut Self, v: &[String]| {
            let r: Vec<&str> = v.iter().map(String::as_str).collect();
            b.op(&scope, "Concat", &r, vec![attr_i("axis", 2)])
        };
        let box_all = cat(self, &boxes);
        let cls_all = cat(self, &clss);
        let mc_all = cat(self, &mcs);
        // DFL.
        let dscope = format!("{scope}/dfl");
        let shp = self.const_i64(&dscope, &[0, 4, reg_max, -1]);
        let r = self.op(&dscope, "Reshape", &[&box_all, &shp], vec![]);
        let t = self.op(&dscope, "Transpose", &[&r], vec![attr_ints("perm", &[0, 2, 1, 3])]);
        let sm = self.op(&dscope, "Softmax", &[&t], vec![attr_i("axis", 1)]);
        let dfl_wn = self.init_f32(&format!("{path}.dfl.conv.weight"), &dims(&dfl_w), &dfl_w.data);
        let dc = self.op(
            &format!("{dscope}/conv"),
            "Conv",
            &[&sm, &dfl_wn],
            vec![
                attr_ints("dilations", &[1, 1]),
                attr_i("group", 1),
                attr_ints("kernel_shape", &[1, 1]),
                attr_ints("pads", &[0, 0, 0, 0]),
                attr_ints("strides", &[1, 1]),
            ],
        );
        let shp4 = self.const_i64(&dscope, &[0, 4, -1]);
        let dist = self.op(&dscope, "Reshape", &[&dc, &shp4], vec![]);
        // Anchors [2, A] and strides [1, A].
        let (anchors, stride_row) = match imgsz {
            Some((h, w)) => {
                let mut ax = Vec::new();
                let mut ay = Vec::new();
                let mut st = Vec::new();
                for &s in &strides {
                    let (fh, fw) = ((h as f32 / s).ceil() as usize, (w as f32 / s).ceil() as usize);
                    for yy in 0..fh {
                        for xx in 0..fw {
                            ax.push(xx as f32 + 0.5);
                            ay.push(yy as f32 + 0.5);
                            st.push(s);
                        }
                    }
                }
                let a = ax.len() as i64;
                ax.extend_from_slice(&ay);
                let an = self.init_f32(&format!("/{scope}/anchors"), &[2, a], &ax);
                let sn = self.init_f32(&format!("/{scope}/strides"), &[1, a], &st);
                (an, sn)
            }
            None => self.dynamic_anchors(&scope, xs, &strides),
        };
        let a_axes = self.const_i64(&scope, &[1]);
        let s0 = self.const_i64(&scope, &[0]);
        let s2 = self.const_i64(&scope, &[2]);
        let s4 = self.const_i64(&scope, &[4]);
        let lt = self.op(&scope, "Slice", &[&dist, &s0, &s2, &a_axes], vec![]);
        let rb = self.op(&scope, "Slice", &[&dist, &s2, &s4, &a_axes], vec![]);
        let x1y1 = self.op(&scope, "Sub", &[&anchors, &lt], vec![]);
        let x2y2 = self.op(&scope, "Add", &[&anchors, &rb], vec![]);
        let sum = self.op(&scope, "Add", &[&x1y1, &x2y2], vec![]);
        let two = self.const_f32_scalar(&scope, 2.0);
        let cxy = self.op(&scope, "Div", &[&sum, &two], vec![]);
        let wh = self.op(&scope, "Sub", &[&x2y2, &x1y1], vec![]);
        let xywh = self.op(&scope, "Concat", &[&cxy, &wh], vec![attr_i("axis", 1)]);
        let dbox = self.op(&scope, "Mul", &[&xywh, &stride_row], vec![]);
        let sig = self.op(&scope, "Sigmoid", &[&cls_all], vec![]);
        // Final outputs, renamed to output0/output1.
        self.nodes.push(NodeProto {
            input: vec![dbox, sig, mc_all],
            output: vec!["output0".into()],
            name: format!("/{scope}/Concat_out"),
            op_type: "Concat".into(),
            attribute: vec![attr_i("axis", 1)],
            ..Default::default()
        });
        rename_output(&mut self.nodes, &p4, "output1");
        Ok(("output0".into(), "output1".into(), nc as usize, nm as usize, strides))
    }

    /// Anchor centres (grid cell + 0.5, x fastest) and per-anchor strides computed from the feature maps' shapes.
    fn dynamic_anchors(&mut self, scope: &str, xs: &[String], strides: &[f32]) -> (String, String) {
        let zero = self.const_f32_scalar(scope, 0.0);
        let half = self.const_f32_scalar(scope, 0.5);
        let i_start = self.counter_scalar_i64(scope, 0);
        let i_one = self.counter_scalar_i64(scope, 1);
        let idx_h = self.counter_scalar_i64(scope, 2);
        let idx_w = self.counter_scalar_i64(scope, 3);
        let row = self.const_i64(scope, &[1, -1]);
        let col = self.const_i64(scope, &[-1, 1]);
        let mut anchors = Vec::new();
        let mut srows = Vec::new();
        for (x, &s) in xs.iter().zip(strides) {
            let shape = self.op(scope, "Shape", &[x], vec![]);
            let h = self.op(scope, "Gather", &[&shape, &idx_h], vec![attr_i("axis", 0)]);
            let w = self.op(scope, "Gather", &[&shape, &idx_w], vec![attr_i("axis", 0)]);
            let rx = self.op(scope, "Range", &[&i_start, &w, &i_one], vec![]);
            let ry = self.op(scope, "Range", &[&i_start, &h, &i_one], vec![]);
            let fx = self.op(scope, "Cast", &[&rx], vec![attr_i("to", data_type::FLOAT as i64)]);
            let fy = self.op(scope, "Cast", &[&ry], vec![attr_i("to", data_type::FLOAT as i64)]);
            let sx = self.op(scope, "Add", &[&fx, &half], vec![]);
            let sy = self.op(scope, "Add", &[&fy, &half], vec![]);
            let sx_row = self.op(scope, "Reshape", &[&sx, &row], vec![]);
            let sy_col = self.op(scope, "Reshape", &[&sy, &col], vec![]);
            let zx = self.op(scope, "Mul", &[&sx_row, &zero], vec![]);
            let zy = self.op(scope, "Mul", &[&sy_col, &zero], vec![]);
            let gx = self.op(scope, "Add", &[&sx_row, &zy], vec![]);
            let gy = self.op(scope, "Add", &[&sy_col, &zx], vec![]);
            let gx = self.op(scope, "Reshape", &[&gx, &row], vec![]);
            let gy = self.op(scope, "Reshape", &[&gy, &row], vec![]);
            anchors.push(self.op(scope, "Concat", &[&gx, &gy], vec![attr_i("axis", 0)]));
            let sv = self.const_f32_scalar(scope, s);
            let z = self.op(scope, "Mul", &[&gx, &zero], vec![]);
            srows.push(self.op(scope, "Add", &[&z, &sv], vec![]));
        }
        let ar: Vec<&str> = anchors.iter().map(String::as_str).collect();
        let sr: Vec<&str> = srows.iter().map(String::as_str).collect();
        let a = self.op(scope, "Concat", &ar, vec![attr_i("axis", 1)]);
        let s = self.op(scope, "Concat", &sr, vec![attr_i("axis", 1)]);
        (a, s)
    }

    fn counter_scalar_i64(&mut self, scope: &str, v: i64) -> String {
        self.counter += 1;
        let name = format!("/{scope}/Constant_{}_output_0", self.counter);
        self.inits.push(TensorProto::from_i64(&name, &[], &[v]));
        name
    }
}

fn rename_output(nodes: &mut [NodeProto], from: &str, to: &str) {
    for n in nodes.iter_mut() {
        for o in n.output.iter_mut().chain(n.input.iter_mut()) {
            if o == from {
                *o = to.to_string();
            }
        }
    }
}

fn dims(t: &Tensor) -> Vec<i64> {
    t.shape.iter().map(|&d| d as i64).collect()
}

fn tensor_type(dims: &[DimValue]) -> Option<TypeProto> {
    Some(TypeProto {
        tensor_type: Some(TypeProtoTensor {
            elem_type: data_type::FLOAT,
            shape: Some(TensorShapeProto {
                dim: dims.iter().map(|d| Dimension { value: Some(d.clone()), denotation: String::new() }).collect(),
            }),
        }),
        denotation: String::new(),
    })
}

/// Builds the ONNX model for a loaded checkpoint.
pub fn build_model(ck: &Checkpoint, opts: &ConvertOptions) -> Result<(ModelProto, ConvertSummary), ConvertError> {
    let path = ck.path.as_path();
    if let Some((h, w)) = opts.imgsz
        && (h == 0 || w == 0 || h % 32 != 0 || w % 32 != 0)
    {
        return Err(ConvertError::Unsupported {
            path: path.to_path_buf(),
            msg: format!("imgsz {h}x{w} must be positive multiples of 32"),
        });
    }
    let model = ck.model()?;
    let layers = model.child("model")?.children();
    let mut b = Builder { path, nodes: Vec::new(), inits: Vec::new(), counter: 0 };
    let mut outs: Vec<String> = Vec::new();
    let mut head = None;
    for (idx, (name, m)) in layers.iter().enumerate() {
        let p = format!("model.{name}");
        let from: Vec<i64> = m.ints("f").unwrap_or(vec![-1]);
        let resolve = |f: i64| -> Result<String, ConvertError> {
            if f == -1 && idx == 0 {
                return Ok("images".into());
            }
            let j = if f < 0 { idx as i64 + f } else { f };
            outs.get(j as usize).cloned().filter(|_| j >= 0).ok_or_else(|| ConvertError::Unsupported {
                path: path.to_path_buf(),
                msg: format!("{p}: input index {f} out of range"),
            })
        };
        let inputs: Vec<String> = from.iter().map(|&f| resolve(f)).collect::<Result<_, _>>()?;
        let single = || inputs.first().cloned().unwrap_or_default();
        let y = match m.kind() {
            "Conv" => b.conv_block(m, &p, &single())?,
            "C2f" => b.c2f(m, &p, &single())?,
            "SPPF" => b.sppf(m, &p, &single())?,
            "Upsample" => b.upsample(m, &p, &single())?,
            "Concat" => {
                let d = m.int("d").unwrap_or(1);
                let r: Vec<&str> = inputs.iter().map(String::as_str).collect();
                b.op(&p.replace('.', "/"), "Concat", &r, vec![attr_i("axis", d)])
            }
            "Segment" => {
                if idx + 1 != layers.len() {
                    return Err(b.err(format!("{p}: Segment head must be the last layer")));
                }
                head = Some(b.segment(m, &p, &inputs, opts.imgsz)?);
                String::new()
            }
            "Detect" => {
                return Err(b.err(
                    "this is a detection-only model (Detect head); FastSAM needs a segmentation model (Segment head)",
                ));
            }
            other => {
                return Err(b.err(format!(
                    "{p}: layer type {other} is not supported (the converter handles YOLOv8-seg / FastSAM: Conv, C2f, SPPF, Upsample, Concat, Segment)"
                )));
            }
        };
        outs.push(y);
    }
    let (_, _, nc, nm, strides) = head.ok_or_else(|| b.err("the model has no Segment head"))?;
    let no = 4 + nc + nm;
    let (inp, o0, o1) = match opts.imgsz {
        Some((h, w)) => {
            let a: i64 = strides.iter().map(|&s| ((h as f32 / s).ceil() * (w as f32 / s).ceil()) as i64).sum();
            (
                vec![
                    DimValue::DimValue(1),
                    DimValue::DimValue(3),
                    DimValue::DimValue(h as i64),
                    DimValue::DimValue(w as i64),
                ],
                vec![DimValue::DimValue(1), DimValue::DimValue(no as i64), DimValue::DimValue(a)],
                vec![
                    DimValue::DimValue(1),
                    DimValue::DimValue(nm as i64),
                    DimValue::DimValue(h as i64 / 4),
                    DimValue::DimValue(w as i64 / 4),
                ],
            )
        }
        None => {
            let p = |s: &str| DimValue::DimParam(s.into());
            (
                vec![p("batch"), DimValue::DimValue(3), p("height"), p("width")],
                vec![p("batch"), DimValue::DimValue(no as i64), p("anchors")],
                vec![p("batch"), DimValue::DimValue(nm as i64), p("mask_height"), p("mask_width")],
            )
        }
    };
    let scale = model.yaml_str("scale");
    let yaml_file = model.yaml_str("yaml_file").unwrap_or_default();
    let names = model.names();
    let names_str = if names.is_empty() {
        (0..nc).map(|i| format!("{i}: 'class{i}'")).collect::<Vec<_>>().join(", ")
    } else {
        names.iter().map(|(i, n)| format!("{i}: '{}'", n.replace('\'', "\\'"))).collect::<Vec<_>>().join(", ")
    };
    let max_stride = strides.iter().cloned().fold(0.0f32, f32::max) as i64;
    let imgsz = opts.imgsz.unwrap_or((640, 640));
    let src = path.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let meta = [
        ("description", format!("FastSAM / YOLOv8-seg ({yaml_file}) converted from {src} by fastsam-track")),
        ("author", "fastsam-track converter (weights: Ultralytics checkpoint)".into()),
        ("version", ck.meta_str("version").unwrap_or_default()),
        ("license", ck.meta_str("license").unwrap_or_default()),
        ("stride", max_stride.to_string()),
        ("task", "segment".into()),
        ("head", "Segment".into()),
        ("batch", "1".into()),
        ("imgsz", format!("[{}, {}]", imgsz.0, imgsz.1)),
        ("names", format!("{{{names_str}}}")),
        ("args", format!("{{'dynamic': {}, 'opset': 17}}", if opts.imgsz.is_none() { "True" } else { "False" })),
        ("channels", "3".into()),
        ("end2end", "False".into()),
        ("converter", format!("fastsam-track {} (converter v{CONVERTER_VERSION})", env!("CARGO_PKG_VERSION"))),
    ];
    let summary = ConvertSummary {
        layers: layers.len(),
        initializers: b.inits.len(),
        nodes: b.nodes.len() + 1,
        nc,
        nm,
        strides,
        scale,
    };
    let graph = GraphProto {
        node: b.nodes,
        name: "main_graph".into(),
        initializer: b.inits,
        input: vec![ValueInfoProto { name: "images".into(), r#type: tensor_type(&inp), doc_string: String::new() }],
        output: vec![
            ValueInfoProto { name: "output0".into(), r#type: tensor_type(&o0), doc_string: String::new() },
            ValueInfoProto { name: "output1".into(), r#type: tensor_type(&o1), doc_string: String::new() },
        ],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "fastsam-track".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: meta.into_iter().map(|(k, v)| StringStringEntryProto { key: k.into(), value: v }).collect(),
        ..Default::default()
    };
    Ok((model, summary))
}

/// Converts a `.pt` checkpoint to an ONNX file at `out`, written atomically
/// ([`crate::outputs::AtomicFile`]: `out.partial`, fsynced, renamed). `out` naming the checkpoint
/// itself (same file by path, symlink or hard link) is refused.
pub fn convert_checkpoint(pt: &Path, out: &Path, opts: &ConvertOptions) -> Result<ConvertSummary, ConvertError> {
    use crate::outputs::{AtomicFile, OutputCheck, Role};
    OutputCheck::new()
        .input(Role::Checkpoint, pt)
        .output(Role::ConvertedModel, out)
        .check()
        .map_err(ConvertError::from)?;
    let ck = Checkpoint::load(pt)?;
    let (model, summary) = build_model(&ck, opts)?;
    let bytes = model.encode_to_vec();
    AtomicFile::write_all_to(out, &bytes).map_err(ConvertError::from)?;
    Ok(summary)
}
