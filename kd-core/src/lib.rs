//! The libtorch side of kd: the model zoo and runtime information now; losses, distillers, the
//! optimizer and the trainer as the later issues add them.

pub mod models;
pub mod runtime;
