//! (being written)

use super::{Builder, Model, ModelConfig, ModelError};
use tch::nn;

/// This family's registry entries.
pub const ENTRIES: &[(&str, Builder)] = &[];

/// Builds any `wrn_D_K` name (`None` when `name` is not of that form).
pub fn build_by_name(
    name: &str,
    _vs: &nn::Path,
    _cfg: &ModelConfig,
) -> Option<Result<Box<dyn Model>, ModelError>> {
    let _ = name;
    None
}
