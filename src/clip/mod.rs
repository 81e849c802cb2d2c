//! Text prompts with CLIP: "segment and track the yellow dog".
//!
//! - [`tokenizer`]: CLIP's BPE tokenizer (open_clip parity);
//! - [`preprocess`]: CLIP's image preprocessing (bicubic short-side resize to 224 as Pillow does it,
//!   centre crop, mean/std), pure Rust;
//! - [`encoder`]: the image and text encoders, two ONNX models run through [`crate::engine`], with
//!   strict signature checks;
//! - [`select`]: the prompt logic (masked crops, tiny masks skipped, batched encoding, cosine
//!   similarity, best mask or every mask above a threshold) and the [`select::TextSelector`] that
//!   the stream core calls.
//!
//! [`ClipModel`] ties the two encoders and the tokenizer together and caches text embeddings per
//! prompt.

pub mod encoder;
pub mod preprocess;
pub mod select;
pub mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use encoder::{Encoder, EncoderKind, EncoderSignature, l2_normalize};
pub use preprocess::{CLIP_MEAN, CLIP_SIZE, CLIP_STD, RgbImage};
pub use select::{CropScorer, TextPromptConfig, TextSelector};
pub use tokenizer::{Tokenizer, TokenizerError, Tokens};

use crate::engine::{EngineConfig, EngineError};

/// File name of CLIP's BPE vocabulary, looked for beside the text encoder when no path is given.
pub const VOCAB_FILE: &str = "bpe_simple_vocab_16e6.txt.gz";

/// Errors of the CLIP text-prompt stage.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// Session creation failed (ONNX Runtime missing, unreadable or invalid file, provider).
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(
        "{path} is not a CLIP {which} encoder: expected {expected}, found {found}{hint}. Export the pair with scripts/export-clip.py (docs/clip.md)"
    )]
    Signature { path: PathBuf, which: &'static str, expected: &'static str, found: String, hint: String },
    #[error(
        "the CLIP encoders are not a pair: the image encoder {image} gives {image_dim}-dimensional embeddings, the text encoder {text} gives {text_dim}; export both from the same CLIP model (scripts/export-clip.py)"
    )]
    Mismatch { image: PathBuf, image_dim: usize, text: PathBuf, text_dim: usize },
    #[error("empty text prompt{0}: give a description such as \"a photo of a dog\"")]
    EmptyPrompt(String),
    #[error("CLIP inference failed: {0}")]
    Inference(String),
    #[error("unexpected CLIP output: {0}")]
    Output(String),
    #[error("invalid text-prompt option: {0}")]
    InvalidOption(String),
}

impl From<ClipError> for crate::model::ModelError {
    fn from(e: ClipError) -> Self {
        crate::model::ModelError::Prompt(format!("text prompt: {e}"))
    }
}

/// Where the CLIP files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipPaths {
    pub image: PathBuf,
    pub text: PathBuf,
    /// `bpe_simple_vocab_16e6.txt.gz`; `None`: [`VOCAB_FILE`] beside the text encoder.
    pub vocab: Option<PathBuf>,
}

impl ClipPaths {
    /// The vocabulary file these paths use.
    pub fn vocab_path(&self) -> PathBuf {
        self.vocab.clone().unwrap_or_else(|| self.text.parent().unwrap_or(Path::new(".")).join(VOCAB_FILE))
    }
}

/// The CLIP image and text encoders, the tokenizer and the per-prompt text-embedding cache.
pub struct ClipModel {
    image: Encoder,
    text: Encoder,
    tokenizer: Tokenizer,
    /// Normalised text embedding per prompt string.
    cache: HashMap<String, Vec<f32>>,
    text_runs: u64,
    /// Reused `[n,3,224,224]` input.
    input: Vec<f32>,
}

impl std::fmt::Debug for ClipModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipModel").field("image", &self.image).field("text", &self.text).finish_non_exhaustive()
    }
}

/// Most crops in one image-encoder run (a `[32,3,224,224]` input is 19 MB).
pub const DEFAULT_MAX_BATCH: usize = 32;

impl ClipModel {
    /// Load both encoders through the engine layer, check their signatures and that their
    /// embedding sizes match, and load the tokenizer.
    pub fn load(paths: &ClipPaths, config: &EngineConfig) -> Result<ClipModel, ClipError> {
        let vocab = paths.vocab_path();
        // the cheap checks first: the vocabulary, then each model
        let tokenizer = Tokenizer::from_gz_file(&vocab)?;
        let image = Encoder::load(&paths.image, EncoderKind::Image, config, DEFAULT_MAX_BATCH)?;
        let text = Encoder::load(&paths.text, EncoderKind::Text, config, DEFAULT_MAX_BATCH)?;
        Self::from_parts(image, text, tokenizer)
    }

    /// Assemble from loaded encoders (checks the pair).
    pub fn from_parts(image: Encoder, text: Encoder, tokenizer: Tokenizer) -> Result<ClipModel, ClipError> {
        if image.dim() != text.dim() {
            return Err(ClipError::Mismatch {
                image: image.path().to_path_buf(),
                image_dim: image.dim(),
                text: text.path().to_path_buf(),
                text_dim: text.dim(),
            });
        }
        Ok(ClipModel { image, text, tokenizer, cache: HashMap::new(), text_runs: 0, input: Vec::new() })
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.image.dim()
    }
    pub fn image_encoder(&self) -> &Encoder {
        &self.image
    }
    /// The image encoder, to run it directly on preprocessed input.
    pub fn image_encoder_mut(&mut self) -> &mut Encoder {
        &mut self.image
    }
    pub fn text_encoder(&self) -> &Encoder {
        &self.text
    }
    pub fn tokenizer(&mut self) -> &mut Tokenizer {
        &mut self.tokenizer
    }
    /// Text-encoder runs so far (cached prompts do not run it again).
    pub fn text_runs(&self) -> u64 {
        self.text_runs
    }
    /// Image-encoder `session.run` calls so far.
    pub fn image_runs(&self) -> u64 {
        self.image.session_runs()
    }
    pub fn describe(&self) -> String {
        format!(
            "CLIP {} + {} (D={}, {})",
            self.image.path().display(),
            self.text.path().display(),
            self.dim(),
            self.image.provider()
        )
    }

    /// Check a prompt before any model runs: it must hold at least one token after clean-up.
    /// Returns its tokens (a prompt over 77 tokens is truncated, with a warning).
    pub fn check_prompt(&mut self, prompt: &str) -> Result<Tokens, ClipError> {
        let t = self.tokenizer.tokenize(prompt);
        if t.bpe_len == 0 {
            let shown = if prompt.is_empty() { String::new() } else { format!(" ({prompt:?} has no words)") };
            return Err(ClipError::EmptyPrompt(shown));
        }
        if t.truncated {
            tracing::warn!(
                "text prompt {prompt:?} has {} tokens; CLIP reads at most 75: it is truncated (shorten it)",
                t.bpe_len
            );
        }
        Ok(t)
    }

    /// The normalised text embedding of `prompt` (computed once per prompt, then cached).
    pub fn text_embedding(&mut self, prompt: &str) -> Result<&[f32], ClipError> {
        if !self.cache.contains_key(prompt) {
            let t = self.check_prompt(prompt)?;
            let mut e = self.text.encode_tokens(&t.ids, 1)?;
            self.text_runs += 1;
            l2_normalize(&mut e, self.text.dim());
            self.cache.insert(prompt.to_string(), e);
        }
        Ok(self.cache.get(prompt).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// Normalised image embeddings (`n * D`) of `crops` (each CLIP-preprocessed, batched).
    pub fn image_embeddings(&mut self, crops: &[RgbImage]) -> Result<Vec<f32>, ClipError> {
        self.input.clear();
        for c in crops {
            if c.width == 0 || c.height == 0 {
                return Err(ClipError::Inference("an empty crop reached the image encoder".into()));
            }
            preprocess::preprocess_into(c, &mut self.input);
        }
        let mut e = self.image.encode_images(&self.input, crops.len())?;
        l2_normalize(&mut e, self.image.dim());
        Ok(e)
    }
}

impl CropScorer for ClipModel {
    fn similarities(&mut self, crops: &[RgbImage], prompts: &[String]) -> Result<Vec<Vec<f32>>, ClipError> {
        let d = self.dim();
        // text first: an empty prompt fails before the image encoder runs
        let texts: Vec<Vec<f32>> =
            prompts.iter().map(|p| self.text_embedding(p).map(<[f32]>::to_vec)).collect::<Result<_, _>>()?;
        if crops.is_empty() {
            return Ok(vec![Vec::new(); prompts.len()]);
        }
        let imgs = self.image_embeddings(crops)?;
        Ok(texts
            .iter()
            .map(|t| imgs.chunks_exact(d).map(|im| im.iter().zip(t).map(|(a, b)| a * b).sum()).collect())
            .collect())
    }

    fn check_prompts(&mut self, prompts: &[String]) -> Result<(), ClipError> {
        prompts.iter().try_for_each(|p| self.check_prompt(p).map(|_| ()))
    }
}
