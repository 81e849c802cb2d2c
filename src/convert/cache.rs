//! Model cache (placeholder).
use super::ConvertError;
use std::path::PathBuf;
pub fn cache_dir() -> Result<PathBuf, ConvertError> {
    Err(ConvertError::NoCacheDir)
}
pub fn convert_cached() {}
pub fn resolve_model(_spec: Option<&str>) -> Result<PathBuf, ConvertError> {
    Err(ConvertError::NoCacheDir)
}
