//! Placeholder: to be implemented.

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Other(String),
}
