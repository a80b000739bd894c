//! The libtorch side of kd: devices and runtime information now; models, losses, distillers,
//! the optimizer and the trainer as the later issues add them.

pub mod runtime;
