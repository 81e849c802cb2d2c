//! Model acquisition: reading checkpoints, `.pt` → ONNX equivalence with Ultralytics' exports,
//! fuzzing the pickle reader, and downloading/resolving models against a loopback server.

#[path = "../support/mod.rs"]
mod support;

mod checkpoint;
mod download_loopback;
mod download_resolve;
mod equivalence;
mod pickle_fuzz;
#[cfg(feature = "video")]
mod quantize;
