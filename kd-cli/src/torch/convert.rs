//! `kd convert`: a PyTorch checkpoint to safetensors.

use anyhow::{Context, Result};
use kd_cli::cli::ConvertArgs;
use kd_core::checkpoint::{self, LoadOptions};
use kd_core::models::{self, ModelConfig};
use tch::nn;

/// Runs `kd convert`.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let state = checkpoint::read_weights(&args.input)?;
    if let Some(name) = &args.model {
        let cfg = ModelConfig {
            num_classes: args.classes,
            input_size: args.input_size,
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        models::build(name, &vs.root(), &cfg)?;
        checkpoint::load_into(&vs, &state, LoadOptions::default()).with_context(|| {
            format!(
                "{} does not fit {name} with {} classes",
                args.input.display(),
                args.classes
            )
        })?;
    }
    checkpoint::write_safetensors(&state.tensors, &args.output)?;
    let mut how = Vec::new();
    if let Some(w) = &state.wrapper {
        how.push(format!("from its '{w}' entry"));
    }
    if state.stripped_prefix {
        how.push("'module.' prefix stripped".to_string());
    }
    if !state.ignored.is_empty() {
        how.push(format!("ignored: {}", state.ignored.join(", ")));
    }
    let checked = args
        .model
        .as_ref()
        .map(|m| format!("; checked against {m}"))
        .unwrap_or_default();
    println!(
        "wrote {} tensors to {}{}{checked}",
        state.tensors.len(),
        args.output.display(),
        if how.is_empty() {
            String::new()
        } else {
            format!(" ({})", how.join("; "))
        }
    );
    Ok(())
}
