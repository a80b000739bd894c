//! `kd demo`: the one-command showcase, on the built-in synthetic dataset (no download).
//!
//! It shows the data pipeline end to end (the dataset, a δ/ζ subset saved and read back, the
//! loader's batches with their sample indices, the same batches with 1 and with several worker
//! threads, throughput, and a PNG of samples to look at), then hands over to `kd-engine` for the
//! training half: a teacher, and students trained with and without distillation.

use crate::cli::DemoArgs;
use anyhow::{Context, Result, ensure};
use kd_augment::Pipeline;
use kd_data::loader::{Batch, BatchImages, Loader, LoaderConfig, OutputFormat};
use kd_data::subset::{Subset, SubsetSpec};
use kd_data::synthetic::{self, SyntheticConfig};
use kd_data::{Dataset, Normalization, Split, export};
use std::sync::Arc;
use std::time::Instant;

/// The standard DA of every reference: torchvision's `RandomCrop(32, padding=4)` + flip.
const STANDARD_DA: &str = "crop:4,flip";

/// Runs `kd demo`.
pub fn run(args: &DemoArgs, quiet: bool) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    println!("kd demo: the data pipeline on the built-in synthetic dataset (no download)\n");

    let cfg = SyntheticConfig {
        seed: args.seed,
        ..SyntheticConfig::default()
    };
    let t = Instant::now();
    let train = Arc::new(synthetic::generate(&cfg, Split::Train)?);
    let test = synthetic::generate(&cfg, Split::Test)?;
    println!(
        "1. dataset, generated from seed {} in {:.2} s",
        args.seed,
        t.elapsed().as_secs_f64()
    );
    describe(&train);
    describe(&test);
    println!("   classes: {}", train.classes().join(", "));

    let grid = args.out.join("samples.png");
    write_samples(&train, &grid)?;
    println!("   one row of samples per class: {}\n", grid.display());

    let subset_file = args.out.join("subset.json");
    let spec = SubsetSpec::random(0.5, 0.2, args.seed);
    let subset = Subset::select(&train, &spec, None)?;
    subset.save(&subset_file)?;
    let reread = Subset::load(&subset_file, &train)?;
    ensure!(
        reread == subset,
        "{} did not read back as written",
        subset_file.display()
    );
    println!(
        "2. subset δ = 0.5 (classes), ζ = 0.2 (samples per class): {} of {} samples in classes {:?}",
        subset.len(),
        train.len(),
        subset.classes()
    );
    println!(
        "   saved to {} and read back identical\n",
        subset_file.display()
    );

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let config = LoaderConfig {
        batch_size: args.batch_size,
        seed: args.seed,
        workers: threads,
        ..LoaderConfig::default()
    };
    // Every loader of the demo runs the standard DA, per sample, on its worker threads.
    let make = |workers: usize, output: OutputFormat| -> Result<Loader> {
        let config = LoaderConfig {
            workers,
            output,
            ..config.clone()
        };
        let standard = Pipeline::parse(STANDARD_DA, train.shape(), None)?;
        Ok(Loader::new(Arc::clone(&train), config)?.with_transform(standard)?)
    };
    let loader = make(threads, OutputFormat::U8)?;
    println!(
        "3. loader: batch {}, {} batches per epoch, order from (seed, epoch), \"{STANDARD_DA}\" per sample",
        args.batch_size,
        loader.len()
    );
    for batch in loader.epoch(0).take(2) {
        show(&batch);
    }

    let (h1, h2) = (
        epoch_hash(&make(1, OutputFormat::U8)?, 0),
        epoch_hash(&loader, 0),
    );
    ensure!(
        h1 == h2,
        "batches differ between 1 and {threads} worker threads"
    );
    println!("   epoch 0 with 1 and with {threads} worker threads: identical (hash {h1:016x})");
    ensure!(
        epoch_hash(&loader, 1) != h1,
        "epochs 0 and 1 have the same order"
    );
    println!("   epoch 1 has a different order and augmentation, as it should\n");

    println!(
        "4. throughput, one epoch of {} images through \"{STANDARD_DA}\"",
        loader.num_samples()
    );
    let (mean, std) = train.channel_stats();
    let norm = Normalization::new(&to_f32(&mean), &to_f32(&std));
    for (label, output) in [
        ("u8 batches", OutputFormat::U8),
        ("f32 normalised", OutputFormat::F32(norm)),
    ] {
        for workers in [1, threads] {
            let l = make(workers, output.clone())?;
            let t = Instant::now();
            let n: usize = l.epoch(0).map(|b| b.len()).sum();
            let rate = n as f64 / t.elapsed().as_secs_f64();
            println!("   {label:<15} {workers} thread(s): {rate:>10.0} images/s");
        }
    }
    println!();
    // The training half needs libtorch: kd-engine runs it (and prints why if it cannot start).
    let mut engine_args: Vec<std::ffi::OsString> = vec![
        "demo-train".into(),
        "--seed".into(),
        args.seed.to_string().into(),
        "--batch-size".into(),
        args.batch_size.to_string().into(),
        "--out".into(),
        args.out.clone().into_os_string(),
    ];
    if quiet {
        engine_args.push("--quiet".into());
    }
    Err(crate::engine::hand_over(engine_args))
}

fn describe(ds: &Dataset) {
    let counts = ds.class_counts();
    let (mean, std) = ds.channel_stats();
    println!(
        "   {:<16} {} images of {} (CHW u8), {} classes × {} each; pixel mean {} std {}",
        ds.name(),
        ds.len(),
        ds.shape(),
        ds.num_classes(),
        counts[0],
        fmt3(&mean),
        fmt3(&std)
    );
}

fn fmt3(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
    format!("({})", parts.join(", "))
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn write_samples(ds: &Dataset, path: &std::path::Path) -> Result<()> {
    const PER_CLASS: usize = 8;
    let images: Vec<&[u8]> = ds
        .indices_by_class()
        .iter()
        .flat_map(|idx| idx.iter().take(PER_CLASS))
        .map(|&i| ds.image(i))
        .collect();
    export::write_grid(path, &images, ds.shape(), PER_CLASS, 3, 2)?;
    Ok(())
}

fn show(b: &Batch) {
    let head = |v: &[String]| v.iter().take(8).cloned().collect::<Vec<_>>().join(" ");
    let labels: Vec<String> = b.labels.iter().map(|l| l.to_string()).collect();
    let indices: Vec<String> = b.indices.iter().map(|i| i.to_string()).collect();
    println!(
        "   step {}: {} images of {}, labels [{} …], sample indices [{} …]",
        b.step,
        b.len(),
        b.shape,
        head(&labels),
        head(&indices)
    );
}

/// FNV-1a over an epoch's images, labels and indices: equal hashes mean equal batches.
fn epoch_hash(loader: &Loader, epoch: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for b in loader.epoch(epoch) {
        match &b.images {
            BatchImages::U8(v) => eat(v),
            BatchImages::F32(v) => v.iter().for_each(|x| eat(&x.to_le_bytes())),
        }
        b.labels.iter().for_each(|l| eat(&l.to_le_bytes()));
        b.indices
            .iter()
            .for_each(|i| eat(&(*i as u64).to_le_bytes()));
    }
    h
}
