//! `kd train` and `kd distill`: resolve the config, prepare the session, train with a progress
//! bar.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kd_cli::cli::TrainArgs;
use kd_core::config::{ConfigSource, RunConfig};
use kd_core::train::state::EpochRow;
use kd_core::train::{Mode, Observer, RunInfo, Session, Summary};
use std::time::Instant;

/// Runs `kd train` / `kd distill`.
pub fn run(args: &TrainArgs, mode: Mode, quiet: bool) -> Result<()> {
    let cfg = resolve(args)?;
    if args.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let summary = train(&cfg, mode, args.resume, quiet)?;
    print_summary(&summary);
    Ok(())
}

/// The config of `args`: file, preset, overrides (`--distiller` first, so a `--set` wins).
pub fn resolve(args: &TrainArgs) -> Result<RunConfig> {
    let distiller = args.distiller.iter().map(|d| format!("loss.distiller={d}"));
    let mut source = ConfigSource {
        preset: args.preset.clone(),
        overrides: distiller.chain(args.set.iter().cloned()).collect(),
        ..ConfigSource::default()
    };
    if let Some(path) = &args.config {
        source = source.with_file(path)?;
    }
    Ok(source.resolve()?)
}

/// Prepares and runs a session with the CLI's observer.
pub fn train(cfg: &RunConfig, mode: Mode, resume: bool, quiet: bool) -> Result<Summary> {
    let mut session = Session::prepare(cfg, mode, resume)?;
    let mut observer = Progress::new(quiet);
    let summary = session
        .run(&mut observer)
        .with_context(|| format!("run {}", session.dir().root.display()))?;
    Ok(summary)
}

/// The last epoch's line and where the run is.
pub fn print_summary(s: &Summary) {
    match s.history.last() {
        Some(last) => println!(
            "done: {} epochs; last test top-1 {:.2}% (top-5 {:.2}%, CE {:.4}); best {:.2}% at epoch {}; run in {}",
            last.epoch,
            last.test_top1,
            last.test_top5,
            last.test_loss,
            s.best.0,
            s.best.1,
            s.dir.display()
        ),
        None => println!("nothing to do: {}", s.dir.display()),
    }
}

/// A progress bar per epoch (images/s, time left) and a line per finished epoch.
pub struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
    epochs: usize,
    batch_images: usize,
    started: Instant,
    loss: f64,
}

impl Progress {
    /// Silent with `quiet`, apart from errors.
    pub fn new(quiet: bool) -> Self {
        Progress {
            quiet,
            bar: None,
            epochs: 0,
            batch_images: 0,
            started: Instant::now(),
            loss: f64::NAN,
        }
    }
}

impl Observer for Progress {
    fn started(&mut self, info: &RunInfo) {
        self.epochs = info.epochs;
        if self.quiet {
            return;
        }
        println!(
            "run {} on {:?}{}: {} training and {} test images, {} steps per epoch, epochs {}..={}, student {} parameters",
            info.dir.display(),
            info.device,
            if info.amp { " (fp16 autocast)" } else { "" },
            info.train_samples,
            info.test_samples,
            info.steps_per_epoch,
            info.first_epoch,
            info.epochs,
            info.student_parameters
        );
        if let Some((t1, t5, ce)) = info.teacher_test {
            println!("teacher on the test set: top-1 {t1:.2}%, top-5 {t5:.2}%, CE {ce:.4}");
        }
    }

    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        self.started = Instant::now();
        self.batch_images = 0;
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar = Some(bar);
    }

    fn step(&mut self, _step: usize, images: usize, loss: f64) {
        self.batch_images += images;
        self.loss = if self.loss.is_finite() {
            0.9 * self.loss + 0.1 * loss
        } else {
            loss
        };
        if let Some(bar) = &self.bar {
            let rate = self.batch_images as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {:.4}, {rate:.0} img/s", self.loss));
            bar.inc(1);
        }
    }

    fn evaluating(&mut self) {
        if let Some(bar) = &self.bar {
            bar.set_message("evaluating on the test set");
        }
    }

    fn epoch_finished(&mut self, row: &EpochRow) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        println!(
            "epoch {:>3}/{}  lr {:.4}  loss {:.4}  train {:.2}%  test {:.2}% (top-5 {:.2}%, CE {:.4})  {:.0} img/s  {:.1} s{}",
            row.epoch,
            self.epochs,
            row.lr,
            row.train_loss,
            row.train_top1,
            row.test_top1,
            row.test_top5,
            row.test_loss,
            row.images_per_s,
            row.seconds,
            if row.skipped_steps > 0 {
                format!("  ({} steps skipped by the loss scaler)", row.skipped_steps)
            } else {
                String::new()
            }
        );
    }

    fn note(&mut self, text: &str) {
        if !self.quiet {
            println!("note: {text}");
        }
    }
}
