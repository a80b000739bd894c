//! The commands that need libtorch; compiled into `kd-engine` only.

pub mod analyze;
pub mod convert;
pub mod demo;
pub mod eval;
pub mod goodness;
pub mod models;
pub mod study;
pub mod train;
