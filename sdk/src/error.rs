use std::fmt;

/// A job error: either the current record is rejected (dead-lettered) or the
/// job cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// This record cannot be processed; it goes to the dead-letter output with
    /// this reason and processing continues.
    Record(String),
    /// The job cannot continue; the task fails with this message.
    Fatal(String),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Rejects the current record with a reason.
    pub fn record(reason: impl Into<String>) -> Self {
        Error::Record(reason.into())
    }

    /// Fails the job.
    pub fn fatal(message: impl Into<String>) -> Self {
        Error::Fatal(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Record(reason) => write!(f, "record rejected: {reason}"),
            Error::Fatal(message) => write!(f, "job failed: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// A record that does not decode is the record's fault, not the job's.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Record(format!("invalid JSON: {e}"))
    }
}
