//! Wire formats: turning request bodies into records.
//!
//! - [`native`]: the daemon's own JSON records (the Go sidecar's field names).

pub mod native;

/// A body that could not be turned into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not parseable at all (bad JSON syntax, truncated body).
    #[error("{0}")]
    Malformed(String),
    /// Parseable, but a field is missing, of the wrong type or out of range.
    /// The message starts with the field's path.
    #[error("{0}")]
    InvalidField(String),
}
