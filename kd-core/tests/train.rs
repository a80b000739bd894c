//! The trainer end to end on the synthetic dataset: accuracy after one epoch, determinism,
//! resume, and the errors that must come before any training.

use kd_core::config::{ConfigSource, RunConfig};
use kd_core::train::state::TrainState;
use kd_core::train::{Mode, Session, Silent, Summary, TrainError};
use std::path::Path;

/// A small synthetic run: 10 classes, 5,000 training and 500 test images of 32×32, resnet8,
/// batch 32, one epoch at a constant rate, on the CPU with a fixed thread count.
fn config(out: &Path, name: &str, extra: &[&str]) -> RunConfig {
    let mut overrides: Vec<String> = [
        format!("run.name={name}"),
        format!("run.out_dir=\"{}\"", out.display()),
        "run.device=cpu".into(),
        "run.threads=2".into(),
        "run.epochs=1".into(),
        "data.synthetic.train_per_class=500".into(),
        "data.batch_size=32".into(),
        "data.synthetic.test_per_class=50".into(),
        "data.standard=\"crop:4\"".into(),
        "data.workers=2".into(),
        "model.student=resnet8".into(),
        "schedule.kind=constant".into(),
    ]
    .into();
    overrides.extend(extra.iter().map(|s| s.to_string()));
    ConfigSource {
        overrides,
        ..ConfigSource::default()
    }
    .resolve()
    .unwrap()
}

fn run(cfg: &RunConfig, mode: Mode, resume: bool) -> Result<Summary, TrainError> {
    Session::prepare(cfg, mode, resume)?.run(&mut Silent)
}

fn weights_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("checkpoints/last.safetensors")).unwrap()
}

/// Trains a resnet8 teacher for one epoch and returns its weights file.
fn teacher(out: &Path) -> std::path::PathBuf {
    let cfg = config(out, "teacher", &[]);
    let s = run(&cfg, Mode::Train, false).unwrap();
    s.dir.join("checkpoints/last.safetensors")
}

#[test]
fn train_one_epoch_beats_chance_and_writes_the_run_directory() {
    let out = tempfile::tempdir().unwrap();
    let s = run(&config(out.path(), "ce", &[]), Mode::Train, false).unwrap();
    let row = &s.history[0];
    assert!(
        row.test_top1 > 40.0,
        "test top-1 {} after one epoch",
        row.test_top1
    );
    assert!(row.train_loss.is_finite() && row.test_loss < 2.3, "{row:?}");
    for f in [
        "config.toml",
        "metrics.csv",
        "metrics.jsonl",
        "checkpoints/last.safetensors",
        "checkpoints/last.state.safetensors",
        "checkpoints/best.safetensors",
    ] {
        assert!(s.dir.join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(s.dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.starts_with("epoch,lr,train_loss"));
    let state = TrainState::load(&s.dir.join("checkpoints/last.state.safetensors")).unwrap();
    assert_eq!(state.meta.epoch, 1);
    assert!(!state.optim.is_empty(), "momentum buffers are saved");
    // The weights load into a fresh model by their PyTorch names.
    let cfg = std::fs::read_to_string(s.dir.join("config.toml")).unwrap();
    assert!(cfg.contains("student = \"resnet8\""), "{cfg}");
}

#[test]
fn distill_one_epoch_beats_chance_with_and_without_the_augmented_view() {
    let out = tempfile::tempdir().unwrap();
    let weights = teacher(out.path());
    let t = format!("model.teacher_weights=\"{}\"", weights.display());
    for (name, strong) in [
        ("kd", None),
        (
            "kd-pick",
            Some("augment.strong=\"cutmix_pick:teacher_entropy\""),
        ),
        ("kd-mixup", Some("augment.strong=\"mixup@sample\"")),
    ] {
        let mut extra = vec!["model.teacher=resnet8", t.as_str()];
        extra.extend(strong);
        let s = run(&config(out.path(), name, &extra), Mode::Distill, false).unwrap();
        let row = &s.history[0];
        assert!(row.test_top1 > 25.0, "{name}: test top-1 {}", row.test_top1);
        assert!(row.train_kd > 0.0, "{name}: {row:?}");
        if strong.is_some() {
            assert!(row.train_kd_aug > 0.0, "{name}: no KD term on x′: {row:?}");
        } else {
            assert_eq!(row.train_kd_aug, 0.0);
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_run_and_resume_continues_exactly() {
    let out = tempfile::tempdir().unwrap();
    let two = [
        "run.epochs=2",
        "augment.strong=\"cutmix\"",
        "data.synthetic.train_per_class=100",
    ];
    // kd train with an x′ view needs the CE term on it.
    let two: Vec<&str> = two.into_iter().chain(["loss.aug=[1, 1, 1]"]).collect();
    let a = run(&config(out.path(), "a", &two), Mode::Train, false).unwrap();
    let b = run(&config(out.path(), "b", &two), Mode::Train, false).unwrap();
    for (ra, rb) in a.history.iter().zip(&b.history) {
        assert_eq!(
            (ra.train_loss, ra.test_loss, ra.test_top1, ra.train_ce_aug),
            (rb.train_loss, rb.test_loss, rb.test_top1, rb.train_ce_aug)
        );
    }
    assert_eq!(weights_bytes(&a.dir), weights_bytes(&b.dir));

    // One epoch, then resumed to two: the same weights as two epochs at once.
    let one: Vec<&str> = two
        .iter()
        .map(|s| {
            if *s == "run.epochs=2" {
                "run.epochs=1"
            } else {
                s
            }
        })
        .collect();
    run(&config(out.path(), "c", &one), Mode::Train, false).unwrap();
    let c = run(&config(out.path(), "c", &two), Mode::Train, true).unwrap();
    assert_eq!(c.history.len(), 2);
    assert_eq!(c.history[1].test_loss, a.history[1].test_loss);
    assert_eq!(weights_bytes(&c.dir), weights_bytes(&a.dir));

    // Without --resume an existing run is an error, and nothing is touched.
    let before = weights_bytes(&c.dir);
    let e = Session::prepare(&config(out.path(), "c", &two), Mode::Train, false).unwrap_err();
    assert!(matches!(e, TrainError::RunExists { epoch: 2, .. }), "{e}");
    assert_eq!(weights_bytes(&c.dir), before);
    // Resuming with a different recipe is refused, naming the key.
    let mut changed = two.clone();
    changed.push("optim.lr=0.2");
    let e = Session::prepare(&config(out.path(), "c", &changed), Mode::Train, true).unwrap_err();
    assert!(e.to_string().contains("optim.lr"), "{e}");
}

#[test]
fn a_diverging_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    // Epoch 2 runs at 0.05·1e12: the loss overflows within a few steps.
    let cfg = config(
        out.path(),
        "nan",
        &[
            "run.epochs=2",
            "data.synthetic.train_per_class=100",
            "schedule.kind=multistep",
            "schedule.milestones=[1]",
            "schedule.gamma=1e12",
        ],
    );
    let e = run(&cfg, Mode::Train, false).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TrainError::NonFinite { epoch: 2, .. }), "{msg}");
    assert!(
        msg.contains("epoch 2, step") && msg.contains("epoch 1"),
        "{msg}"
    );
    let dir = out.path().join("nan");
    let state = TrainState::load(&dir.join("checkpoints/last.state.safetensors")).unwrap();
    assert_eq!(
        state.meta.epoch, 1,
        "the checkpoint of epoch 1 is left in place"
    );
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2);
}

#[test]
fn bad_teachers_are_errors_before_training() {
    let out = tempfile::tempdir().unwrap();
    // Missing weights.
    let cfg = config(
        out.path(),
        "missing",
        &[
            "model.teacher=resnet8",
            "model.teacher_weights=\"/nonexistent/t.safetensors\"",
        ],
    );
    let e = Session::prepare(&cfg, Mode::Distill, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/t.safetensors") && e.contains("no such file"),
        "{e}"
    );
    assert!(
        !out.path().join("missing").exists(),
        "no run directory before the checks pass"
    );

    // A teacher trained on 100 classes for a 10-class dataset.
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let cfg100 = kd_core::models::ModelConfig {
        num_classes: 100,
        input_size: 32,
    };
    kd_core::models::build("resnet8", &vs.root(), &cfg100).unwrap();
    let path = out.path().join("t100.safetensors");
    kd_core::checkpoint::save_safetensors(&vs, &path).unwrap();
    let t = format!("model.teacher_weights=\"{}\"", path.display());
    let cfg = config(out.path(), "classes", &["model.teacher=resnet8", &t]);
    let e = Session::prepare(&cfg, Mode::Distill, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("100 classes") && e.contains("dataset has 10"),
        "{e}"
    );
    // The wrong architecture for the weights.
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let cfg10 = kd_core::models::ModelConfig {
        num_classes: 10,
        input_size: 32,
    };
    kd_core::models::build("resnet8", &vs.root(), &cfg10).unwrap();
    let path = out.path().join("t10.safetensors");
    kd_core::checkpoint::save_safetensors(&vs, &path).unwrap();
    let t = format!("model.teacher_weights=\"{}\"", path.display());
    let cfg = config(out.path(), "arch", &["model.teacher=resnet20", &t]);
    let e = Session::prepare(&cfg, Mode::Distill, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit resnet20"), "{e}");
    // distill without a teacher, train with one.
    let e = Session::prepare(&config(out.path(), "none", &[]), Mode::Distill, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.teacher"), "{e}");
    // A stronger DA without a teacher and without a CE term on x′.
    let cfg = config(out.path(), "aug", &["augment.strong=cutmix"]);
    let e = Session::prepare(&cfg, Mode::Train, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("augment.strong"), "{e}");
    let cfg = config(out.path(), "aug2", &["augment.strong=\"cutmixx\""]);
    let e = Session::prepare(&cfg, Mode::Train, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("augment.strong"), "{e}");
}
