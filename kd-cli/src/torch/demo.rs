//! The training half of `kd demo`: a teacher trained, then students distilled from it with and
//! without a stronger DA, on the synthetic dataset, in a few minutes on a CPU.

use super::train::{Progress, print_summary};
use anyhow::Result;
use kd_cli::cli::DemoArgs;
use kd_core::config::{ConfigSource, RunConfig};
use kd_core::train::{Mode, Session, Summary};

/// Epochs of every demo run.
const EPOCHS: usize = 6;

/// The demo's runs: (run name, mode, what it is, overrides).
fn runs(teacher_weights: &str) -> Vec<(&'static str, Mode, &'static str, Vec<String>)> {
    let student = |extra: &[&str]| {
        let mut v = vec!["model.student=resnet8".to_string()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let distill = |extra: &[&str]| {
        let mut v = student(&[
            "model.teacher=resnet20",
            &format!("model.teacher_weights=\"{teacher_weights}\""),
        ]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    vec![
        (
            "teacher",
            Mode::Train,
            "teacher resnet20, cross-entropy",
            vec!["model.student=resnet20".to_string()],
        ),
        (
            "student",
            Mode::Train,
            "student resnet8 alone, cross-entropy",
            student(&[]),
        ),
        (
            "kd",
            Mode::Distill,
            "student resnet8 distilled: 0.1·CE + 0.9·KL(T=4)",
            distill(&[]),
        ),
        (
            "kd-cutmixpick",
            Mode::Distill,
            "… plus KD on x′ = CutMixPick (T. ent.)",
            distill(&["augment.strong=\"cutmix_pick:teacher_entropy\""]),
        ),
    ]
}

/// The settings shared by the demo's runs: the synthetic dataset (3,000 training images), a short
/// cosine schedule.
fn base(args: &DemoArgs, name: &str, sets: Vec<String>) -> Result<RunConfig> {
    let mut overrides = vec![
        format!("run.name={name}"),
        format!("run.out_dir=\"{}\"", args.out.display()),
        format!("run.seed={}", args.seed),
        format!("run.epochs={EPOCHS}"),
        "data.dataset=synthetic".into(),
        "data.synthetic.train_per_class=300".into(),
        "data.synthetic.test_per_class=100".into(),
        // The arrow classes are mirror images of each other: no flip.
        "data.standard=\"crop:4\"".into(),
        format!("data.batch_size={}", args.batch_size),
        "optim.lr=0.05".into(),
        "schedule.kind=cosine".into(),
    ];
    overrides.extend(sets);
    Ok(ConfigSource {
        overrides,
        ..ConfigSource::default()
    }
    .resolve()?)
}

/// Runs the demo's training part.
pub fn run(args: &DemoArgs, quiet: bool) -> Result<()> {
    let teacher_weights = args.out.join("teacher/checkpoints/last.safetensors");
    let mut results: Vec<(&str, Summary)> = Vec::new();
    println!(
        "5. training on the synthetic dataset: a teacher, then students with and without KD, {EPOCHS} epochs each"
    );
    for (name, mode, what, sets) in runs(&teacher_weights.display().to_string()) {
        println!("\n   {what}");
        let cfg = base(args, name, sets)?;
        // Re-running the demo finds its finished runs and skips them.
        let mut session = Session::prepare(&cfg, mode, true)?;
        let summary = session.run(&mut Progress::new(quiet))?;
        print!("   ");
        print_summary(&summary);
        results.push((what, summary));
    }
    println!("\n   what it learned (last epoch, test set):");
    println!("   {:<50} {:>8} {:>8}", "run", "top-1", "test CE");
    for (what, s) in &results {
        if let Some(last) = s.history.last() {
            println!(
                "   {what:<50} {:>7.2}% {:>8.4}",
                last.test_top1, last.test_loss
            );
        }
    }
    println!(
        "\n   Each run's directory has config.toml, metrics.csv/jsonl and checkpoints/ under {}.",
        args.out.display()
    );
    println!("   Next: `kd train --config …` or `kd distill --config …` on your data.");
    Ok(())
}
