//! The training half of `kd demo`: a teacher trained, then students distilled from it with and
//! without a stronger DA, on the synthetic dataset, in a few minutes on a CPU.

use super::study::good_da::{GoodDa, report};
use super::study::{self, Shard, StudyFile};
use super::train::{Progress, print_summary};
use anyhow::Result;
use kd_cli::cli::DemoArgs;
use kd_core::config::{ConfigSource, RunConfig};
use kd_core::train::{Mode, Session, Summary};

/// Epochs of every demo run.
const EPOCHS: usize = 6;

/// The miniature good-DA study: its schemes (flip is left out: the synthetic arrows are mirror
/// images of each other), epochs per student and passes for T. stddev.
const STUDY_SCHEMES: &[&str] = &[
    "identity",
    "cutout",
    "cutmix",
    "cutmix_pick:teacher_entropy",
];
const STUDY_EPOCHS: usize = 3;
const STUDY_PASSES: usize = 2;

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
    mini_good_da(args, &teacher_weights.display().to_string(), quiet)?;
    println!(
        "\n   Next: `kd train --config …` or `kd distill --config …` on your data, and the paper's studies in configs/good-da/."
    );
    Ok(())
}

/// The study file of the miniature good-DA study: the demo's distillation settings plus a
/// `[study]` section.
fn study_text(args: &DemoArgs, teacher_weights: &str) -> Result<String> {
    let (_, _, _, sets) = runs(teacher_weights)
        .into_iter()
        .find(|r| r.0 == "kd")
        .expect("the demo has a kd run");
    let mut cfg = base(args, "good-da", sets)?;
    cfg.run.epochs = STUDY_EPOCHS;
    let schemes: Vec<String> = STUDY_SCHEMES.iter().map(|s| format!("{s:?}")).collect();
    Ok(format!(
        "[study]\nkind = \"good-da\"\nname = \"good-da\"\nout_dir = {:?}\nseeds = [{}]\nschemes = [{}]\ngoodness_passes = {STUDY_PASSES}\n\n{}",
        args.out.display().to_string(),
        args.seed,
        schemes.join(", "),
        cfg.to_toml()
    ))
}

/// Ends the demo with Good-DA-in-KD in miniature: T. stddev of a few schemes, a student per
/// scheme, and the correlation report.
fn mini_good_da(args: &DemoArgs, teacher_weights: &str, quiet: bool) -> Result<()> {
    println!(
        "\n6. Good-DA-in-KD in miniature: T. stddev of {} schemes ({STUDY_PASSES} passes), one student per scheme ({STUDY_EPOCHS} epochs)",
        STUDY_SCHEMES.len()
    );
    let file = StudyFile::parse(&study_text(args, teacher_weights)?, "kd demo", &[])?;
    let study = GoodDa::new(file.clone())?;
    study::run::<GoodDa>(file, Shard::ALL, quiet)?;
    let rows = report::rows(&study.results()?);
    println!(
        "   {:<30} {:>10} {:>13} {:>8}",
        "scheme", "T. stddev", "S. test loss", "top-1"
    );
    let num = |v: Option<f64>, w: usize, d: usize| {
        v.map_or(format!("{:>w$}", "–"), |x| format!("{x:>w$.d$}"))
    };
    for r in &rows {
        println!(
            "   {:<30} {} {} {}%",
            r.scheme,
            num(r.t_stddev, 10, 6),
            num(r.test_loss.map(|v| v.0), 13, 4),
            num(r.top1.map(|v| v.0), 7, 2)
        );
    }
    println!(
        "   The paper's finding: a lower T. stddev goes with a lower student test loss. Correlations and the scatter plot: {}",
        study.dir.join("report.md").display()
    );
    Ok(())
}
