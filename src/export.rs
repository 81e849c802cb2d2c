//! Track file export (placeholder).
