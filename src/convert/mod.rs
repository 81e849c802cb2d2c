//! Placeholder: to be implemented.

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{0}")]
    Other(String),
}
