//! The CLIP image and text encoders: two ONNX models run through the engine layer
//! ([`crate::engine::Engine`]), their signatures checked as strictly as FastSAM's.
//!
//! - image encoder: one input `float32 [N|?, 3, 224|?, 224|?]` → one output `float32 [N|?, D]`;
//! - text encoder: one input `int64 [N|?, 77|?]` → one output `float32 [N|?, D]`;
//! - `D` fixed and equal for the pair (checked by [`super::ClipModel::load`]).
//!
//! Input names are not prescribed (open_clip exports through `scripts/export-clip.py` use
//! `images` / `tokens`; other exporters use `pixel_values` / `input_ids`): the dtype and shape
//! decide, so a FastSAM model, a swapped pair or an encoder with extra inputs (an attention mask)
//! is refused with what was expected and what was found. Embeddings come back unnormalised, as
//! the model computes them; [`l2_normalize`] makes them unit vectors for cosine similarity.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::ClipError;
use super::preprocess::CLIP_SIZE;
use super::tokenizer::CONTEXT_LENGTH;
use crate::engine::{Engine, EngineConfig};

/// Which encoder a signature belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    Image,
    Text,
}

impl EncoderKind {
    fn name(self) -> &'static str {
        match self {
            EncoderKind::Image => "image",
            EncoderKind::Text => "text",
        }
    }
    fn expected(self) -> &'static str {
        match self {
            EncoderKind::Image => "images float32 [N,3,224,224] -> one float32 [N,D] output",
            EncoderKind::Text => "tokens int64 [N,77] -> one float32 [N,D] output",
        }
    }
}

/// A validated encoder signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSignature {
    pub input_name: String,
    pub output_name: String,
    /// Fixed batch size (1), `None` when the batch axis is dynamic.
    pub fixed_batch: Option<usize>,
    /// Embedding size.
    pub dim: usize,
}

fn describe(name: &str, t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => format!("{name} {ty:?} {}", crate::engine::fmt_dims(shape)),
        other => format!("{name} ({other:?})"),
    }
}

/// Check a session against the image or text encoder signature (see the module docs).
pub fn check_signature(path: &Path, session: &Session, kind: EncoderKind) -> Result<EncoderSignature, ClipError> {
    let ins: Vec<(String, ValueType)> =
        session.inputs().iter().map(|o| (o.name().to_string(), o.dtype().clone())).collect();
    let outs: Vec<(String, ValueType)> =
        session.outputs().iter().map(|o| (o.name().to_string(), o.dtype().clone())).collect();
    let found = format!(
        "{} -> {}",
        ins.iter().map(|(n, t)| describe(n, t)).collect::<Vec<_>>().join(", "),
        outs.iter().map(|(n, t)| describe(n, t)).collect::<Vec<_>>().join(", ")
    );
    let fail = |hint: &str| ClipError::Signature {
        path: path.to_path_buf(),
        which: kind.name(),
        expected: kind.expected(),
        found: found.clone(),
        hint: hint.to_string(),
    };
    let dims_of = |t: &ValueType, want: TensorElementType| -> Option<Vec<i64>> {
        match t {
            ValueType::Tensor { ty, shape, .. } if *ty == want => Some(shape.to_vec()),
            _ => None,
        }
    };
    let is_type = |t: &ValueType, want: TensorElementType| dims_of(t, want).is_some();
    if ins.len() != 1 {
        return Err(fail(match kind {
            EncoderKind::Image => " (a CLIP image encoder has exactly one input)",
            EncoderKind::Text => {
                " (a CLIP text encoder has exactly one input; exports with an attention mask are not supported)"
            }
        }));
    }
    let in_ty = match kind {
        EncoderKind::Image => TensorElementType::Float32,
        EncoderKind::Text => TensorElementType::Int64,
    };
    let Some(idims) = dims_of(&ins[0].1, in_ty) else {
        let swapped = match kind {
            EncoderKind::Image if is_type(&ins[0].1, TensorElementType::Int64) => {
                " (this looks like the text encoder: the pair is swapped)"
            }
            EncoderKind::Text if is_type(&ins[0].1, TensorElementType::Float32) => {
                " (this looks like an image encoder: the pair is swapped, or it is not a CLIP text encoder)"
            }
            EncoderKind::Image => " (the input must be float32)",
            EncoderKind::Text => " (the input must be int64 token ids)",
        };
        return Err(fail(swapped));
    };
    let batch = idims.first().copied().unwrap_or(0);
    match kind {
        EncoderKind::Image => {
            let s = CLIP_SIZE as i64;
            if idims.len() != 4 || !(idims[1] == 3 || idims[1] < 0) {
                return Err(fail(" (the input must be an NCHW image tensor with 3 channels)"));
            }
            if (idims[2] >= 0 && idims[2] != s) || (idims[3] >= 0 && idims[3] != s) {
                return Err(fail(" (the input must be 224x224: export a 224-pixel CLIP model such as ViT-B/32)"));
            }
        }
        EncoderKind::Text => {
            if idims.len() != 2 || (idims[1] >= 0 && idims[1] != CONTEXT_LENGTH as i64) {
                return Err(fail(" (the input must be [N,77] token ids)"));
            }
        }
    }
    if batch > 1 {
        return Err(fail(" (the batch dimension must be 1 or dynamic)"));
    }
    if outs.len() != 1 {
        return Err(fail(match outs.len() {
            2 if kind == EncoderKind::Image => {
                " (this looks like a FastSAM / segmentation model, not a CLIP image encoder)"
            }
            0 => " (the model has no output)",
            _ => " (a CLIP encoder has exactly one output, the embedding)",
        }));
    }
    let Some(odims) = dims_of(&outs[0].1, TensorElementType::Float32) else {
        return Err(fail(" (the output must be float32)"));
    };
    if odims.len() != 2 {
        return Err(fail(" (the output must be a [N,D] embedding)"));
    }
    if odims[1] <= 0 {
        return Err(fail(" (the embedding size D must be fixed in the model)"));
    }
    if odims[0] > 1 || (odims[0] == 1 && batch < 0) {
        return Err(fail(" (the output batch must follow the input batch)"));
    }
    let (want_in, want_out) = match kind {
        EncoderKind::Image => ("images", "image_embeds"),
        EncoderKind::Text => ("tokens", "text_embeds"),
    };
    if ins[0].0 != want_in || outs[0].0 != want_out {
        tracing::debug!(model = %path.display(), input = ins[0].0, output = outs[0].0, "CLIP {} encoder with non-standard names (expected {want_in} -> {want_out})", kind.name());
    }
    Ok(EncoderSignature {
        input_name: ins[0].0.clone(),
        output_name: outs[0].0.clone(),
        fixed_batch: (batch > 0).then_some(batch as usize),
        dim: odims[1] as usize,
    })
}

/// One CLIP encoder (image or text) on an engine session.
pub struct Encoder {
    engine: Engine,
    path: PathBuf,
    kind: EncoderKind,
    sig: EncoderSignature,
    max_batch: usize,
    runs: u64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("path", &self.path).field("kind", &self.kind).field("sig", &self.sig).finish()
    }
}

impl Encoder {
    /// Load `path` through [`Engine::load`] and check it is a `kind` encoder.
    pub fn load(path: &Path, kind: EncoderKind, config: &EngineConfig, max_batch: usize) -> Result<Encoder, ClipError> {
        let engine = Engine::load(path, config)?;
        Self::from_engine(engine, kind, max_batch)
    }

    /// Wrap a session made by the engine layer (validates its signature).
    pub fn from_engine(engine: Engine, kind: EncoderKind, max_batch: usize) -> Result<Encoder, ClipError> {
        let path = engine.path().to_path_buf();
        let sig = check_signature(&path, &engine.session, kind)?;
        let max_batch = sig.fixed_batch.unwrap_or(max_batch.max(1));
        Ok(Encoder { engine, path, kind, sig, max_batch, runs: 0 })
    }

    pub fn signature(&self) -> &EncoderSignature {
        &self.sig
    }
    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.sig.dim
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn provider(&self) -> &str {
        self.engine.provider()
    }
    /// Most inputs in one `session.run`.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }
    /// `session.run` calls so far.
    pub fn session_runs(&self) -> u64 {
        self.runs
    }

    /// Embeddings (unnormalised, `n * D` values) of `n` preprocessed images (`[n,3,224,224]`).
    pub fn encode_images(&mut self, images: &[f32], n: usize) -> Result<Vec<f32>, ClipError> {
        let per = 3 * (CLIP_SIZE * CLIP_SIZE) as usize;
        if self.kind != EncoderKind::Image || images.len() != n * per {
            return Err(ClipError::Inference(format!("{} values are not {n} CLIP images", images.len())));
        }
        let s = CLIP_SIZE as usize;
        self.run_batches(images, n, &[3, s, s])
    }

    /// Embeddings (unnormalised) of `n` token rows (`[n,77]`).
    pub fn encode_tokens(&mut self, tokens: &[i64], n: usize) -> Result<Vec<f32>, ClipError> {
        if self.kind != EncoderKind::Text || tokens.len() != n * CONTEXT_LENGTH {
            return Err(ClipError::Inference(format!("{} values are not {n} token rows", tokens.len())));
        }
        self.run_batches(tokens, n, &[CONTEXT_LENGTH])
    }

    /// Run `n` rows of shape `row` (concatenated in `data`) through the encoder, at most
    /// `max_batch` rows per call; the embeddings, `n * D` values.
    fn run_batches<T>(&mut self, data: &[T], n: usize, row: &[usize]) -> Result<Vec<f32>, ClipError>
    where
        T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
    {
        let per: usize = row.iter().product();
        let mut out = Vec::with_capacity(n * self.sig.dim);
        let mut shape = Vec::with_capacity(row.len() + 1);
        for chunk in data.chunks(self.max_batch * per) {
            let m = chunk.len() / per;
            shape.clear();
            shape.push(m);
            shape.extend_from_slice(row);
            let t =
                TensorRef::from_array_view((shape.clone(), chunk)).map_err(|e| ClipError::Inference(e.to_string()))?;
            let outputs = self
                .engine
                .session
                .run(ort::inputs![self.sig.input_name.as_str() => t])
                .map_err(|e| ClipError::Inference(e.to_string()))?;
            self.runs += 1;
            collect(&outputs, &self.sig, self.kind, &self.path, m, &mut out)?;
        }
        Ok(out)
    }
}

/// The `[m, D]` output of one run, appended to `out`.
fn collect(
    outputs: &ort::session::SessionOutputs<'_>,
    sig: &EncoderSignature,
    kind: EncoderKind,
    path: &Path,
    m: usize,
    out: &mut Vec<f32>,
) -> Result<(), ClipError> {
    let (shape, data) =
        outputs[sig.output_name.as_str()].try_extract_tensor::<f32>().map_err(|e| ClipError::Output(e.to_string()))?;
    if shape.len() != 2 || shape[0] as usize != m || shape[1] as usize != sig.dim || data.len() != m * sig.dim {
        return Err(ClipError::Output(format!(
            "{} encoder {} returned shape {shape:?} for a batch of {m}, expected [{m},{}]",
            kind.name(),
            path.display(),
            sig.dim
        )));
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err(ClipError::Output(format!(
            "{} encoder {} returned non-finite values",
            kind.name(),
            path.display()
        )));
    }
    out.extend_from_slice(data);
    Ok(())
}

/// Divide each `dim`-sized row by its L2 norm (open_clip's `F.normalize`, eps 1e-12).
pub fn l2_normalize(rows: &mut [f32], dim: usize) {
    for r in rows.chunks_exact_mut(dim) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        r.iter_mut().for_each(|v| *v /= n);
    }
}
