//! The `fastsam-track` binary end to end: bad input, Ctrl-C, prompts, RTSP input, pipeline
//! templates, and the `track-detections` / `eval-mot` commands.

#[path = "../support/mod.rs"]
mod support;

mod run_bad_input;
mod run_ctrlc;
mod run_prompt;
mod run_rtsp;
mod run_templates;
mod tracker;
