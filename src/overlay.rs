//! Overlay drawing (placeholder).
