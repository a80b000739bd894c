//! `kd models`: the zoo with its sizes.

use anyhow::Result;
use kd_cli::cli::ModelsArgs;
use kd_core::models::{self, ModelConfig};

/// Runs `kd models`.
pub fn run(args: &ModelsArgs) -> Result<()> {
    let cfg = ModelConfig {
        num_classes: args.classes,
        input_size: args.input_size,
    };
    let mut rows = Vec::new();
    for name in models::names() {
        match models::summarize(name, &cfg) {
            Ok(s) => rows.push(s),
            // Some models take only some input sizes (the ShuffleNets only 32): say so, go on.
            Err(e) if !args.json => eprintln!("{name}: {e}"),
            Err(_) => {}
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{} classes, {}×{} input; MACs: multiply-accumulates of convolutions and linear layers per image",
        args.classes, args.input_size, args.input_size
    );
    println!(
        "{:<12} {:>12} {:>10}  features",
        "model", "parameters", "MMACs"
    );
    for s in rows {
        let feats: Vec<String> = s
            .feature_shapes
            .iter()
            .map(|f| {
                f[1..]
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("×")
            })
            .collect();
        println!(
            "{:<12} {:>12} {:>10.1}  {}",
            s.name,
            group(s.parameters),
            s.macs as f64 / 1e6,
            feats.join(", ")
        );
    }
    println!("(any wrn_D_K builds too, e.g. kd_data's wrn_28_4)");
    Ok(())
}

/// 1234567 → "1,234,567".
fn group(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
