//! The libtorch side of kd: the model zoo, weights in and out (PyTorch checkpoints and
//! safetensors, [`checkpoint`]) and runtime information now; losses, distillers, the optimizer
//! and the trainer as the later issues add them.

pub mod checkpoint;
pub mod config;
pub mod models;
pub mod runtime;
