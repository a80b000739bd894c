//! `kd train` / `kd distill` as a user runs them: configs, errors before training, and a run
//! killed with SIGKILL mid-epoch that resumes to the same weights as an uninterrupted run.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn kd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kd"))
}

/// A three-epoch CPU run on a small synthetic dataset, with a stronger DA so the resumed part
/// exercises the per-batch generators too.
const CONFIG: &str = r#"
[run]
device = "cpu"
threads = 2
epochs = 3
[data]
dataset = "synthetic"
standard = "crop:4"
workers = 2
[data.synthetic]
train_per_class = 160
test_per_class = 20
[model]
student = "resnet8"
[augment]
strong = "cutmix"
[loss]
aug = [1, 1, 1]
[schedule]
kind = "multistep"
milestones = [2]
"#;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("run.toml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

fn train(config: &Path, out: &Path, name: &str, extra: &[&str]) -> Command {
    let mut c = kd();
    c.args(["--quiet", "train", "--config"])
        .arg(config)
        .args(["--set", &format!("run.out_dir=\"{}\"", out.display())])
        .args(["--set", &format!("run.name={name}")])
        .args(extra);
    c
}

fn check(out: &Output) {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn last_weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("checkpoints/last.safetensors")).unwrap()
}

#[test]
fn sigkill_mid_epoch_then_resume_gives_bit_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = dir.path().join("runs");

    let t0 = Instant::now();
    check(&train(&config, &out, "straight", &[]).output().unwrap());
    let straight = t0.elapsed();

    let mut child = train(&config, &out, "killed", &[]).spawn().unwrap();
    let state = out.join("killed/checkpoints/last.state.safetensors");
    let t1 = Instant::now();
    while !state.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        assert!(
            t1.elapsed() < straight * 4,
            "no checkpoint after {:?}",
            t1.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Epoch 1 is saved; about half an epoch later the run is inside epoch 2.
    std::thread::sleep(straight / 8);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before it could be killed; make it longer"
    );
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let metrics = std::fs::read_to_string(out.join("killed/metrics.csv")).unwrap();
    let done = metrics.lines().count() - 1;
    assert!(
        (1..3).contains(&done),
        "killed after {done} epochs:\n{metrics}"
    );

    let resumed = train(&config, &out, "killed", &["--resume"])
        .output()
        .unwrap();
    check(&resumed);
    assert_eq!(
        last_weights(&out.join("killed")),
        last_weights(&out.join("straight")),
        "resumed weights differ from the uninterrupted run's"
    );
    let a = std::fs::read_to_string(out.join("straight/metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(out.join("killed/metrics.jsonl")).unwrap();
    let losses = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {} {}", v["epoch"], v["train_loss"], v["test_loss"])
            })
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));

    // Resuming a finished run does nothing and says so.
    let again = train(&config, &out, "killed", &["--resume"])
        .output()
        .unwrap();
    check(&again);
    assert_eq!(
        last_weights(&out.join("killed")),
        last_weights(&out.join("straight"))
    );
}

#[test]
fn config_errors_name_the_key_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = dir.path().join("runs");
    for (extra, expect) in [
        ("optim.lrr=0.1", "optim.lrr"),
        ("optim.lr=fast", "lr = \"fast\""),
        ("model.student=resnet9", "unknown model 'resnet9'"),
        ("data.dataset=/nonexistent/data", "/nonexistent/data"),
    ] {
        let o = train(&config, &out, "bad", &["--set", extra])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra} was accepted");
        assert!(err.contains(expect), "{extra}: {err}");
        assert!(
            !out.join("bad").exists(),
            "{extra}: a run directory was made"
        );
    }
    std::fs::write(dir.path().join("typo.toml"), "[optim]\nmomentun = 0.9\n").unwrap();
    let o = kd()
        .args(["train", "--config"])
        .arg(dir.path().join("typo.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("typo.toml") && err.contains("did you mean 'momentum'"),
        "{err}"
    );
    let o = kd()
        .args(["distill", "--config"])
        .arg(&config)
        .args([
            "--set",
            "model.teacher=resnet8",
            "--set",
            "model.teacher_weights=\"/no/t.pth\"",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/no/t.pth"), "{err}");
}

#[test]
fn print_config_shows_the_resolved_recipe() {
    let o = kd()
        .args([
            "train",
            "--preset",
            "kd-data",
            "--print-config",
            "--set",
            "loss.temperature=inf",
        ])
        .output()
        .unwrap();
    check(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "nesterov = true",
        "no_decay_1d = true",
        "milestones = [100, 150]",
        "temperature = inf",
        "preset = \"kd-data\"",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
}

#[test]
fn the_distiller_flag_takes_the_reference_scripts_weights() {
    let resolved = |args: &[&str]| {
        let o = kd()
            .args(["distill", "--print-config"])
            .args(args)
            .output()
            .unwrap();
        check(&o);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = resolved(&["--distiller", "hint"]);
    for want in [
        "distiller = \"fitnet\"",
        "beta = 100.0",
        "ce = 1.0",
        "kd = 0.0",
        "[loss.fitnet]",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // A --set wins over the flag's defaults.
    let text = resolved(&[
        "--distiller",
        "crd",
        "--set",
        "loss.kd=1",
        "--set",
        "loss.crd.mode=relax",
    ]);
    for want in [
        "distiller = \"crd\"",
        "beta = 0.8",
        "kd = 1.0",
        "mode = \"relax\"",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let o = kd()
        .args(["distill", "--print-config", "--distiller", "fitnett"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fitnett") && err.contains("fitnet"), "{err}");
}
