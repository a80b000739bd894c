//! Metrics and statistics on plain slices: no libtorch, so they run anywhere and test in
//! milliseconds. Logits and probabilities are row-major `[n, classes]` `f32` slices with the class
//! count passed beside them, labels are `usize` class indices, and every sum runs in `f64`.
//!
//! - [`accuracy`]: top-k accuracy, teacher–student agreement.
//!
//! Checked input returns [`MetricsError`]; only [`top_k_correct`], the evaluation loop's fast
//! path, panics on a bad shape.

pub mod accuracy;
pub mod error;
mod rows;

pub use accuracy::{agreement, top_k_accuracy, top_k_correct};
pub use error::{MetricsError, Result};
