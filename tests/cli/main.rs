//! The `fastsam-track` binary end to end: bad input, Ctrl-C, prompts, RTSP input, pipeline
//! templates, the `track-detections` / `eval-mot` commands, and data safety (no run destroys a
//! file it was not asked to replace).

#[path = "../support/mod.rs"]
mod support;

mod data_safety;
mod run_bad_input;
mod run_ctrlc;
mod run_prompt;
mod run_rtsp;
mod run_templates;
mod tracker;
