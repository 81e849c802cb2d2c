//! The video pipeline end to end (decode → segment → track → draw → encode + track files), driven
//! through the library: scripted detections on a synthetic clip and on real footage, live input,
//! bounded memory, and real ONNX models.

#[path = "../support/mod.rs"]
mod support;

mod live;
mod memory;
mod model;
mod real_footage;
mod scripted;
mod stream_core;
mod tune;
