//! Downloads (placeholder).
