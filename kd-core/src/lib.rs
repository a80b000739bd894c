//! The libtorch side of kd: the model zoo, weights in and out (PyTorch checkpoints and
//! safetensors, [`checkpoint`]), the KD logit losses ([`loss`]), SGD with savable state
//! ([`optim`]), learning-rate schedules ([`schedule`]), a dynamic loss scaler for fp16
//! autocast ([`amp`]), the run configuration ([`config`]), the trainer ([`train`]), the goodness
//! of a stronger DA ([`goodness`]: T. stddev and mean teacher entropy), RepDistiller's feature
//! distillers ([`distill`]: FitNet, AT, SP, CC, VID, RKD, PKT, AB, FT, FSP, NST, CRD) and runtime
//! information.

pub mod amp;
pub mod checkpoint;
pub mod config;
pub mod distill;
pub mod goodness;
pub mod loss;
pub mod models;
pub mod optim;
pub mod runtime;
pub mod schedule;
pub mod train;
