//! Text prompts with CLIP: "segment and track the yellow dog".
//!
//! - [`tokenizer`]: CLIP's BPE tokenizer (open_clip parity);
//! - [`preprocess`]: CLIP's image preprocessing (bicubic short-side resize to 224 as PIL does it,
//!   centre crop, mean/std), pure Rust;
//! - [`encoder`]: the image and text encoders, two ONNX models run through [`crate::engine`], with
//!   strict signature checks;
//! - [`select`]: the prompt logic (masked crops, tiny masks skipped, batched encoding, cosine
//!   similarity, best mask or every mask above a threshold, text embeddings cached per prompt).

pub mod preprocess;
pub mod tokenizer;

pub use preprocess::{CLIP_MEAN, CLIP_SIZE, CLIP_STD, RgbImage};
pub use tokenizer::{Tokenizer, TokenizerError, Tokens};
