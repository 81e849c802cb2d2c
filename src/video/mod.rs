//! Placeholder: to be implemented.

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{0}")]
    Other(String),
}
