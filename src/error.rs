//! The library's error type. Each stage has its own error enum; this wraps them.
//!
//! Messages: an error's `Display` may quote its cause (`"{context}: {source}"`), so that `{e}`
//! alone is complete; the CLI prints a chain with [`crate::cli::error_message`], which prints each
//! distinct message once.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Track(#[from] crate::track::TrackError),
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Video(#[from] crate::video::VideoError),
    #[error(transparent)]
    Convert(#[from] crate::convert::ConvertError),
    #[error(transparent)]
    Overlay(#[from] crate::overlay::OverlayError),
    #[error(transparent)]
    Rle(#[from] crate::mask::RleError),
    #[error(transparent)]
    Output(Box<crate::outputs::OutputError>),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// An I/O error with the path or action that failed.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::outputs::OutputError> for Error {
    fn from(e: crate::outputs::OutputError) -> Self {
        Error::Output(Box::new(e))
    }
}
