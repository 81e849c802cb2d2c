//! Placeholder: to be implemented.

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("{0}")]
    Other(String),
}
