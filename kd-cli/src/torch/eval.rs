//! `kd eval`: a model's top-1, top-5 and mean cross-entropy on a dataset.

use anyhow::{Context, Result, bail};
use kd_cli::cli::{EvalArgs, SplitArg};
use kd_cli::data;
use kd_core::checkpoint::LoadOptions;
use kd_core::models::{self, ModelConfig};
use kd_data::loader::{BatchImages, Loader, LoaderConfig, OutputFormat};
use kd_data::{Dataset, Normalization, Split};
use std::sync::Arc;
use tch::{Kind, Tensor, nn};

/// Runs `kd eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    let device = kd_core::runtime::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let split = match args.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    let ds = Arc::new(data::open(&args.data, split)?);
    let shape = ds.shape();
    if shape.height != shape.width {
        bail!(
            "{}: images are {shape}; the zoo takes square images",
            ds.name()
        );
    }
    let norm = normalization(&args.norm, &ds, &args.data)?;
    let cfg = ModelConfig {
        num_classes: ds.num_classes() as i64,
        input_size: shape.height as i64,
    };
    let vs = nn::VarStore::new(device);
    let model = models::build(&args.model, &vs.root(), &cfg)?;
    kd_core::checkpoint::load_weights(&vs, &args.weights, LoadOptions::default())
        .with_context(|| format!("loading {} into {}", args.weights.display(), args.model))?;

    let config = LoaderConfig {
        batch_size: args.batch_size,
        shuffle: false,
        output: OutputFormat::F32(norm),
        ..LoaderConfig::default()
    };
    let loader = Loader::new(Arc::clone(&ds), config)?;
    let (mut top1, mut top5, mut nll, mut n) = (0usize, 0usize, 0f64, 0usize);
    let mut all_logits = Vec::new();
    let k = 5.min(ds.num_classes());
    for batch in loader.epoch(0) {
        let BatchImages::F32(pixels) = &batch.images else {
            unreachable!("f32 output was asked for")
        };
        let dims = [
            batch.len() as i64,
            shape.channels as i64,
            shape.height as i64,
            shape.width as i64,
        ];
        let xs = Tensor::from_slice(pixels).view(dims).to_device(device);
        let ys = Tensor::from_slice(&batch.labels).to_device(device);
        let logits = tch::no_grad(|| model.forward_t(&xs, false)).to_kind(Kind::Float);
        nll += f64::try_from(logits.cross_entropy_for_logits(&ys))? * batch.len() as f64;
        let cpu = logits.to_device(tch::Device::Cpu).contiguous();
        let flat: Vec<f32> = Vec::try_from(cpu.view([-1]))?;
        let labels: Vec<usize> = batch.labels.iter().map(|&l| l as usize).collect();
        top1 += kd_metrics::top_k_correct(&flat, &labels, ds.num_classes(), 1);
        top5 += kd_metrics::top_k_correct(&flat, &labels, ds.num_classes(), k);
        n += batch.len();
        if args.save_logits.is_some() {
            all_logits.push(cpu);
        }
    }
    println!(
        "{} on {} ({n} images): top-1 {:.2}%, top-{k} {:.2}%, mean cross-entropy {:.4}",
        args.model,
        ds.name(),
        100.0 * top1 as f64 / n as f64,
        100.0 * top5 as f64 / n as f64,
        nll / n as f64
    );
    if let Some(path) = &args.save_logits {
        Tensor::cat(&all_logits, 0)
            .write_npy(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "logits [{n}, {}] written to {}",
            ds.num_classes(),
            path.display()
        );
    }
    Ok(())
}

/// The normalisation `--norm` names; `auto` is the preset named after the dataset, else the
/// training split's pixel statistics (what `kd train` normalised with).
fn normalization(name: &str, ds: &Dataset, root: &std::path::Path) -> Result<Normalization> {
    if name != "auto" {
        let known: Vec<&str> = kd_data::norm::PRESETS.iter().map(|p| p.0).collect();
        return Normalization::preset(name).with_context(|| {
            format!(
                "--norm '{name}': unknown (known: auto, {})",
                known.join(", ")
            )
        });
    }
    let dataset = ds.name().split('/').next().unwrap_or("");
    if let Some(n) = Normalization::for_dataset(dataset) {
        return Ok(n);
    }
    // The statistics the trainer normalised with: the training split's, whatever split is
    // evaluated.
    let train = data::open(root, Split::Train)?;
    let (mean, std) = train.channel_stats();
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
    Ok(Normalization {
        mean: f(mean),
        std: f(std),
    })
}
