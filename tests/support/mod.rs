//! The one support tree of the integration test binaries (`tests/{pipeline,cli,track,convert}`),
//! included by each as `#[path = "../support/mod.rs"] mod support;`.
//!
//! - [`assets`]: locating the shared test assets (`../shared`, `FASTSAM_ASSETS`);
//! - [`video`]: the synthetic clip with a frame code, the scripted segmenters, decoding and
//!   track-file checks, driving one pipeline job (feature `video`);
//! - [`scenes`]: synthetic tracking scenes (also used by the tracker bench);
//! - [`http`]: a loopback HTTP server for the download tests;
//! - [`rtsp`]: a loopback RTSP camera that can go down and come back (feature `video`).
#![allow(dead_code)]

pub mod assets;
pub mod http;
pub mod npy;
#[cfg(feature = "video")]
pub mod rtsp;
pub mod scenes;
#[cfg(feature = "overlay")]
pub mod seg;
#[cfg(feature = "video")]
pub mod video;
