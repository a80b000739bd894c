//! The libtorch side of kd: the model zoo, weights in and out (PyTorch checkpoints and
//! safetensors, [`checkpoint`]), the KD logit losses ([`loss`]), SGD with savable state
//! ([`optim`]), learning-rate schedules ([`schedule`]), a dynamic loss scaler for fp16
//! autocast ([`amp`]), the run configuration ([`config`]), the trainer ([`train`]) and runtime
//! information; RepDistiller's other distillers as a later issue adds them.

pub mod amp;
pub mod checkpoint;
pub mod config;
pub mod loss;
pub mod models;
pub mod optim;
pub mod runtime;
pub mod schedule;
pub mod train;
