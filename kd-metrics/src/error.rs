//! The error of kd-metrics: input that a metric cannot be computed from.

/// Anything that can be wrong with a metric's input. Every public function checks its input and
/// returns one of these rather than panicking.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// Two inputs that must have the same length do not.
    #[error("length mismatch: {left} has {left_len} values but {right} has {right_len}")]
    LengthMismatch {
        /// The first input, as named in the function's signature.
        left: &'static str,
        /// Its length (rows, for logits).
        left_len: usize,
        /// The second input.
        right: &'static str,
        /// Its length.
        right_len: usize,
    },
    /// A class count of zero.
    #[error("the class count is zero")]
    ZeroClasses,
    /// A flat `[n, classes]` slice whose length is not a multiple of `classes`.
    #[error("{what} has {len} values, which is not a whole number of rows of {classes} classes")]
    NotRows {
        /// The input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The class count it was split by.
        classes: usize,
    },
    /// A label that is not a class index.
    #[error("label {label} at row {row} is not below the class count {classes}")]
    LabelOutOfRange {
        /// The row.
        row: usize,
        /// The label.
        label: usize,
        /// The class count.
        classes: usize,
    },
    /// Fewer samples than the statistic needs.
    #[error("{what} needs at least {min} samples, got {n}")]
    TooFewSamples {
        /// The statistic or input.
        what: &'static str,
        /// How many there were.
        n: usize,
        /// How many it needs.
        min: usize,
    },
    /// A NaN or infinite value where the statistic has no meaning for one.
    #[error("{what} has a non-finite value ({value}) at index {index}")]
    NonFinite {
        /// The input.
        what: &'static str,
        /// The flat index of the first such value.
        index: usize,
        /// The value.
        value: f64,
    },
    /// An input whose values are all equal, so a correlation or a bandwidth is undefined.
    #[error("{what} is constant, so {statistic} is undefined")]
    ConstantInput {
        /// The input.
        what: &'static str,
        /// The statistic that needs it to vary.
        statistic: &'static str,
    },
    /// A parameter outside its domain.
    #[error("{name} = {value} is invalid: it must be {expected}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value, formatted.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
}

/// The result of a kd-metrics function.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
