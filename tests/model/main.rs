//! The model: segmentation parity with Ultralytics' goldens (raw tensors and end to end), batched
//! inference equal to single runs, model loading errors, and the `segment` command.

#[path = "../support/mod.rs"]
mod support;

mod batch;
#[cfg(feature = "cli")]
mod cli;
mod clip;
mod e2e;
mod errors;
mod parity;
mod val;
