//! Transitional path: the synthetic tracking scenes live in `tests/support/scenes.rs`. This file
//! only re-includes them for test files not yet folded into an area binary; delete it once none
//! declare `mod common;`.
#![allow(dead_code)]

#[path = "../support/scenes.rs"]
pub mod scenes;
