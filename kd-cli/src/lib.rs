//! The `kd` command's library: its command line and the commands that need no libtorch.
//!
//! Nothing here may use kd-core: `kd` must start without libtorch (see [`engine`]). The commands
//! that need libtorch live in `engine_main.rs`, the `kd-engine` binary.

pub mod augment;
pub mod cli;
pub mod data;
pub mod demo;
pub mod doctor;
pub mod engine;
