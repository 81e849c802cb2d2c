//! Transitional path: the video test helpers live in `tests/support/video.rs`. This file only
//! re-includes them for test files not yet folded into an area binary; delete it once none
//! include `video_support/mod.rs`.
#![allow(dead_code, unused_imports)]

#[path = "../support/video.rs"]
mod video;

pub use video::*;
