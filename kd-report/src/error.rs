//! The error of kd-report: data that cannot be drawn, and files that cannot be written.

use std::path::PathBuf;

/// Anything that can stop a figure or a table from being made. Every public function checks its
/// input and returns one of these rather than panicking.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Nothing to draw: no points, no series, no cells, or no finite value among them.
    #[error("{what} is empty")]
    Empty {
        /// What was empty, e.g. "the scatter plot's finite points".
        what: &'static str,
    },
    /// Two things that must have the same length do not.
    #[error("length mismatch: {what} has {found} entries, expected {expected}")]
    LengthMismatch {
        /// What has the wrong length, e.g. `series "resnet8" ys`.
        what: String,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        found: usize,
    },
    /// A value outside its domain that is a mistake rather than data to skip (a negative error
    /// bar, a colour range with `lo >= hi`).
    #[error("{what} = {value} is invalid: it must be {expected}")]
    InvalidValue {
        /// The value's name.
        what: String,
        /// The value.
        value: f64,
        /// What it must be.
        expected: &'static str,
    },
    /// Finite data whose range does not fit in an `f64` once padded (values near `f64::MAX`).
    #[error("{what} spans [{lo}, {hi}], too wide for an axis")]
    RangeTooWide {
        /// The axis.
        what: &'static str,
        /// The smallest value.
        lo: f64,
        /// The largest value.
        hi: f64,
    },
    /// An image size outside what a figure can be laid out in.
    #[error("image size {width}×{height} is outside {min_width}×{min_height} ..= {max}×{max}")]
    ImageSize {
        /// The requested width.
        width: u32,
        /// The requested height.
        height: u32,
        /// The smallest width.
        min_width: u32,
        /// The smallest height.
        min_height: u32,
        /// The largest width and height.
        max: u32,
    },
    /// A colour map needs at least two anchor colours.
    #[error("a colour map needs at least 2 anchor colours, got {anchors}")]
    Colormap {
        /// How many anchors were given.
        anchors: usize,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Encoding a PNG failed.
    #[error("encoding {path} as PNG: {source}")]
    Png {
        /// The file it was meant for.
        path: PathBuf,
        /// Why.
        source: image::ImageError,
    },
}

/// The result of a kd-report function.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;
