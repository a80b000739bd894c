//! Metrics and statistics on plain slices: no libtorch, so they run anywhere and test in
//! milliseconds. Logits and probabilities are row-major `[n, classes]` slices.

pub mod accuracy;

pub use accuracy::top_k_correct;
