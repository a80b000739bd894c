//! `kd goodness`: the teacher's T. stddev and mean entropy under each stronger DA, as a table,
//! `goodness.csv` and `goodness.json`.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kd_augment::StrongSpec;
use kd_cli::cli::GoodnessArgs;
use kd_core::config::RunConfig;
use kd_core::goodness::{
    Goodness, GoodnessConfig, GoodnessInfo, GoodnessObserver, SchemeGoodness, Throughput,
    parse_schemes, to_csv,
};
use std::time::Instant;

/// Runs `kd goodness`.
pub fn run(args: &GoodnessArgs, quiet: bool) -> Result<()> {
    let schemes = parse_schemes(&args.da).context("--da")?;
    let cfg = GoodnessConfig {
        run: run_config(args),
        schemes,
        passes: args.passes,
    };
    let goodness = Goodness::prepare(&cfg)?;
    let info = goodness.info();
    let results = goodness.run(&mut Progress::new(quiet))?;
    let baseline = match args.baseline {
        None => None,
        Some(0) => Some(goodness.teacher_throughput(2 * args.batch_size)?),
        Some(n) => Some(goodness.teacher_throughput(n)?),
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let csv = args.out.join("goodness.csv");
    std::fs::write(&csv, to_csv(&results)).with_context(|| format!("writing {}", csv.display()))?;
    let json = args.out.join("goodness.json");
    let text = serde_json::to_string_pretty(&report(args, &info, &results, baseline.as_ref()))?;
    std::fs::write(&json, text + "\n").with_context(|| format!("writing {}", json.display()))?;

    print_table(&results);
    if let Some(b) = &baseline {
        println!(
            "teacher's plain forward: {:.0} img/s in batches of {} ({} images, {:.2} s)",
            b.images_per_s, b.batch_size, b.images, b.seconds
        );
    }
    if !quiet {
        println!("written: {} and {}", csv.display(), json.display());
    }
    Ok(())
}

/// The run config the measurement reads: the data and loader, the seed, the device, the models.
fn run_config(args: &GoodnessArgs) -> RunConfig {
    let mut run = RunConfig::default();
    run.run.seed = args.seed;
    run.run.device = args.device.clone();
    run.run.threads = args.threads;
    run.data.dataset = args.data.clone();
    run.data.norm = args.norm.clone();
    run.data.batch_size = args.batch_size;
    run.data.standard = args.standard.clone();
    run.data.subset = args.subset.clone();
    run.data.workers = args.workers;
    run.model.teacher = Some(args.teacher_model.clone());
    run.model.teacher_weights = Some(args.teacher.clone());
    if let (Some(name), Some(path)) = (&args.student_model, &args.student) {
        run.model.student = name.clone();
        run.model.student_weights = Some(path.clone());
    }
    run
}

/// `goodness.json`: the settings, one object per scheme, and the teacher's plain forward.
fn report(
    args: &GoodnessArgs,
    info: &GoodnessInfo,
    results: &[SchemeGoodness],
    baseline: Option<&Throughput>,
) -> serde_json::Value {
    serde_json::json!({
        "teacher": { "model": args.teacher_model, "weights": args.teacher },
        "student": args.student_model.as_ref().map(|m| serde_json::json!({
            "model": m, "weights": args.student,
        })),
        "data": args.data,
        "subset": args.subset,
        "standard": args.standard,
        "norm": args.norm,
        "batch_size": args.batch_size,
        "passes": info.passes,
        "seed": args.seed,
        "device": format!("{:?}", info.device),
        "classes": info.classes,
        "samples_per_pass": info.samples_per_pass,
        "steps_per_pass": info.steps_per_pass,
        "results": results,
        "teacher_forward": baseline,
    })
}

/// One line per scheme.
fn print_table(results: &[SchemeGoodness]) {
    println!(
        "{:<30} {:>11} {:>12} {:>7} {:>9}",
        "scheme", "T. stddev", "mean entropy", "groups", "img/s"
    );
    for r in results {
        println!(
            "{:<30} {:>11} {:>12.6} {:>7} {:>9.0}",
            r.scheme,
            r.t_stddev
                .map_or_else(|| "n/a".to_string(), |v| format!("{v:.7}")),
            r.mean_entropy,
            r.groups,
            r.images_per_s
        );
    }
}

/// A progress bar per scheme (teacher images/s, time left).
struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    images: usize,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        Progress {
            quiet,
            bar: None,
            started: Instant::now(),
            images: 0,
        }
    }
}

impl GoodnessObserver for Progress {
    fn started(&mut self, info: &GoodnessInfo) {
        if !self.quiet {
            println!(
                "{} schemes × {} passes of {} training images ({} batches) on {:?}, {} classes",
                info.schemes.len(),
                info.passes,
                info.samples_per_pass,
                info.steps_per_pass,
                info.device,
                info.classes
            );
        }
    }

    fn scheme_started(&mut self, spec: &StrongSpec, steps: usize) {
        self.started = Instant::now();
        self.images = 0;
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:<28} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(spec.to_string());
        self.bar = Some(bar);
    }

    fn step(&mut self, images: usize) {
        self.images += images;
        if let Some(bar) = &self.bar {
            let rate = self.images as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{rate:.0} img/s"));
            bar.inc(1);
        }
    }

    fn scheme_finished(&mut self, _result: &SchemeGoodness) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
