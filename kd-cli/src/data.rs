//! `kd data …`: download, describe and export datasets.

use crate::cli::{
    CifarFormat, DataCommand, DownloadArgs, DownloadDataset, ExportArgs, InfoArgs, SplitArg,
    SubsetArgs,
};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kd_data::download::{self, DatasetId, DownloadOptions};
use kd_data::{Dataset, Split, detect, export};
use std::sync::Mutex;

/// Runs `kd data …`.
pub fn run(cmd: &DataCommand, quiet: bool) -> Result<()> {
    match cmd {
        DataCommand::Download(args) => run_download(args, quiet),
        DataCommand::Info(args) => run_info(args),
        DataCommand::Export(args) => run_export(args),
        DataCommand::Subset(args) => run_subset(args),
    }
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        }
    }
}

fn run_download(args: &DownloadArgs, quiet: bool) -> Result<()> {
    let dataset = match args.dataset {
        DownloadDataset::Cifar10 => DatasetId::Cifar10,
        DownloadDataset::Cifar100 => DatasetId::Cifar100,
        DownloadDataset::Mnist => DatasetId::Mnist,
        DownloadDataset::FashionMnist => DatasetId::FashionMnist,
    };
    let mut opts = DownloadOptions::new(&args.root);
    opts.format = match args.format {
        CifarFormat::Python => download::CifarFormat::Python,
        CifarFormat::Binary => download::CifarFormat::Binary,
    };
    opts.base_url = args.mirror.clone();
    opts.keep_archive = args.keep_archive;
    if !quiet {
        opts.progress = Some(progress_bar());
    }
    let report = download::download(dataset, &opts)?;
    if report.nothing_to_do() {
        println!(
            "{} is already in {}: nothing to download",
            report.source,
            report.data_dir.display()
        );
    } else {
        print!("{report}");
        println!("ready: {}", report.data_dir.display());
    }
    Ok(())
}

/// A progress bar per file, redrawn from the downloader's callbacks.
fn progress_bar() -> download::ProgressFn {
    let state: Mutex<Option<(String, ProgressBar)>> = Mutex::new(None);
    Box::new(move |p| {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let same_file = state.as_ref().is_some_and(|(name, _)| name == p.file);
        if !same_file {
            if let Some((_, old)) = state.take() {
                old.finish();
            }
            let bar = ProgressBar::new(p.total.unwrap_or(0));
            let template = "{msg:28} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
            bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
            bar.set_message(p.file.to_string());
            *state = Some((p.file.to_string(), bar));
        }
        let (_, bar) = state.as_ref().expect("set above");
        if let Some(total) = p.total {
            bar.set_length(total);
        }
        bar.set_position(p.done);
        if p.total == Some(p.done) {
            bar.finish();
        }
    })
}

fn run_info(args: &InfoArgs) -> Result<()> {
    let info = detect::describe(&args.dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{info}");
    }
    Ok(())
}

/// Opens a dataset folder, or the built-in synthetic dataset when `dir` is `synthetic`.
pub fn open(dir: &std::path::Path, split: Split) -> Result<Dataset> {
    if dir.as_os_str() == "synthetic" {
        let cfg = kd_data::synthetic::SyntheticConfig::default();
        return Ok(kd_data::synthetic::generate(&cfg, split)?);
    }
    Ok(detect::open(dir, split)?)
}

fn run_export(args: &ExportArgs) -> Result<()> {
    let ds = open(&args.dir, args.split.into())?;
    let mut picked = Vec::new();
    for class in ds.indices_by_class() {
        picked.extend(class.into_iter().take(args.per_class));
    }
    let files = export::export_samples(&ds, &picked, &args.out)?;
    let images: Vec<&[u8]> = picked.iter().map(|&i| ds.image(i)).collect();
    let grid = args.out.join("grid.png");
    export::write_grid(
        &grid,
        &images,
        ds.shape(),
        args.per_class.max(1),
        args.scale,
        2,
    )
    .with_context(|| format!("writing {}", grid.display()))?;
    println!(
        "wrote {} images of {} ({} per class) and {} (one row per class)",
        files.len(),
        ds.name(),
        args.per_class,
        grid.display()
    );
    Ok(())
}

fn run_subset(args: &SubsetArgs) -> Result<()> {
    use kd_data::subset::{Quantiles, Scope, Subset, SubsetSpec};
    let ds = open(&args.dir, Split::Train)?;
    let scope = if args.global {
        Scope::Global
    } else {
        Scope::PerClass
    };
    let scores = match &args.scores {
        Some(path) => Some(read_scores(path, args.column.as_deref())?),
        None => None,
    };
    let spec = if scores.is_some() {
        let range = |width: f64| {
            if width >= 1.0 {
                Quantiles::ALL
            } else {
                Quantiles::range(args.lower, args.lower + width)
            }
        };
        SubsetSpec::by_score(range(args.delta), range(args.zeta))
    } else {
        SubsetSpec::random(args.delta, args.zeta, args.seed)
    }
    .with_scope(scope);
    let subset = Subset::select(&ds, &spec, scores.as_deref())?;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    subset.save(&args.out)?;
    println!(
        "wrote {}: {} of {} training samples of {}, in {} classes ({})",
        args.out.display(),
        subset.len(),
        ds.len(),
        ds.name(),
        subset.classes().len(),
        subset.description()
    );
    Ok(())
}

/// Reads one score per sample: a number per line, or the `column` of a CSV with a header.
fn read_scores(path: &std::path::Path, column: Option<&str>) -> Result<Vec<f32>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let col = match column {
        None => None,
        Some(name) => {
            let Some((_, header)) = lines.next() else {
                bail!("{}: empty file, expected a CSV header", path.display());
            };
            let names: Vec<&str> = header.split(',').map(str::trim).collect();
            let Some(i) = names.iter().position(|n| *n == name) else {
                bail!(
                    "{}: no column {name:?} in the header (columns: {})",
                    path.display(),
                    names.join(", ")
                );
            };
            Some(i)
        }
    };
    lines
        .map(|(n, line)| {
            let field = match col {
                Some(i) => line.split(',').nth(i).unwrap_or(""),
                None => line,
            };
            field.trim().parse::<f32>().map_err(|_| {
                anyhow::anyhow!(
                    "{} line {}: {:?} is not a number",
                    path.display(),
                    n + 1,
                    field.trim()
                )
            })
        })
        .collect()
}
