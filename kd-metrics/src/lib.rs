//! Metrics and statistics on plain slices: no libtorch, so they run anywhere and test in
//! milliseconds. Logits and probabilities are row-major `[n, classes]` `f32` slices with the class
//! count passed beside them, labels are `usize` class indices, and every sum runs in `f64`.
//!
//! - [`accuracy`]: top-k accuracy, teacher–student agreement.
//! - [`calibration`]: mean NLL, expected calibration error with its reliability table.
//! - [`confidence`]: per-sample softmax entropy and top logit difference.
//! - [`t_stddev`]: the good-DA-in-KD paper's T. stddev accumulator.
//! - [`correlation`]: Pearson, Spearman, Kendall tau-b with scipy's p-values.
//! - [`summary`]: mean ± std over seeds, histograms, Gaussian KDE.
//! - [`special`]: the special functions the p-values need.
//!
//! Checked input returns [`MetricsError`]; only [`top_k_correct`], the evaluation loop's fast
//! path, panics on a bad shape.

#![warn(missing_docs)]

pub mod accuracy;
pub mod calibration;
pub mod confidence;
pub mod correlation;
pub mod error;
mod rows;
pub mod special;
pub mod summary;
pub mod t_stddev;

pub use accuracy::{agreement, top_k_accuracy, top_k_correct};
pub use calibration::{CalibrationBin, ECE_BINS, Ece, ece, ece_with_bins, nll};
pub use confidence::{entropy, entropy_at, tld};
pub use correlation::{Correlation, PValueMethod, average_ranks, kendall_tau_b, pearson, spearman};
pub use error::{MetricsError, Result};
pub use summary::{GaussianKde, Histogram, MeanStd, mean_std};
pub use t_stddev::{NonFiniteGroups, PAPER_TENSORS_PER_GROUP, TStddev, TStddevConfig};
