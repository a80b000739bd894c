//! The one error type of kd-data: every variant names the file or value that is wrong.

use std::path::PathBuf;

/// What went wrong while reading, selecting, loading or downloading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An operating-system error on a file or directory.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file or directory that should exist does not.
    #[error("{}: not found{}", path.display(), if hint.is_empty() { String::new() } else { format!(" ({hint})") })]
    NotFound {
        /// What was looked for.
        path: PathBuf,
        /// What the user can do about it; may be empty.
        hint: String,
    },
    /// A file whose content does not have the expected format or size.
    #[error("{}: {what}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words, with the numbers involved.
        what: String,
    },
    /// A label outside `0..num_classes`.
    #[error("{}: record {index} has label {label}, outside 0..{num_classes}", path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// The record index in that file.
        index: usize,
        /// The label found.
        label: u64,
        /// The number of classes of the format.
        num_classes: usize,
    },
    /// An image that could not be decoded.
    #[error("{}: cannot decode image: {reason}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A downloaded file whose md5 is not the expected one.
    #[error("{}: md5 {actual} does not match the expected {expected}", path.display())]
    Checksum {
        /// The file checked.
        path: PathBuf,
        /// The expected md5, hex.
        expected: String,
        /// The md5 found, hex.
        actual: String,
    },
    /// A network failure while downloading.
    #[error("{url}: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// An argument that is out of its valid range (a fraction, a batch size, a class index…).
    #[error("{name} = {value}: {why}")]
    InvalidArgument {
        /// The parameter's name as the user wrote it.
        name: String,
        /// The value given.
        value: String,
        /// Why it is rejected.
        why: String,
    },
}

impl DataError {
    /// Wraps an I/O error with the path it happened on; a missing file becomes [`DataError::NotFound`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path,
                hint: String::new(),
            }
        } else {
            DataError::Io { path, source }
        }
    }

    /// A [`DataError::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            what: what.into(),
        }
    }

    /// A [`DataError::InvalidArgument`].
    pub fn invalid(name: impl Into<String>, value: impl ToString, why: impl Into<String>) -> Self {
        DataError::InvalidArgument {
            name: name.into(),
            value: value.to_string(),
            why: why.into(),
        }
    }
}

/// The result type of kd-data.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
