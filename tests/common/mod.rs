//! Helpers shared by the integration tests (and the tracker bench).
pub mod scenes;
