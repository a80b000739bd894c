//! (being written)

use super::Builder;

/// This family's registry entries.
pub const ENTRIES: &[(&str, Builder)] = &[];
