//! `kd study good-da` as a user runs it: a small study on synthetic data, interrupted between
//! runs and in the middle of one, resumed, and split into shards, always to the same results.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn kd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kd"))
}

fn check(out: &Output) {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The data and loader settings every run of the test shares.
const DATA: &str = r#"
[run]
device = "cpu"
threads = 2
epochs = 1
[data]
dataset = "synthetic"
standard = "crop:4"
workers = 2
batch_size = 32
[data.synthetic]
train_per_class = 40
test_per_class = 10
"#;

/// Trains the teacher once (two epochs of resnet8) and returns its weights.
fn teacher(dir: &Path) -> PathBuf {
    let cfg = dir.join("teacher.toml");
    std::fs::write(&cfg, DATA).unwrap();
    check(
        &kd()
            .args(["--quiet", "train", "--config"])
            .arg(&cfg)
            .args(["--set", &format!("run.out_dir=\"{}\"", dir.display())])
            .args(["--set", "run.name=teacher", "--set", "run.epochs=2"])
            .args(["--set", "model.student=resnet8"])
            .output()
            .unwrap(),
    );
    dir.join("teacher/checkpoints/last.safetensors")
}

fn study_file(dir: &Path, name: &str, teacher: &Path) -> PathBuf {
    let text = format!(
        r#"[study]
kind = "good-da"
name = "{name}"
out_dir = "{out}"
seeds = [0, 1]
schemes = ["identity", "cutmix", "cutmix_pick:student_entropy", "cutmix_pick:teacher_entropy"]
goodness_passes = 1
{DATA}
[model]
student = "resnet8"
teacher = "resnet8"
teacher_weights = "{teacher}"
"#,
        out = dir.display(),
        teacher = teacher.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn study(file: &Path, extra: &[&str]) -> Command {
    let mut c = kd();
    c.args(["--quiet", "study", "good-da", "--config"])
        .arg(file)
        .args(extra);
    c
}

fn results(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("results.csv")).unwrap()
}

/// Kills the study once `ready` holds (or fails after a long wait); true if it was killed
/// before finishing.
fn kill_when(file: &Path, ready: impl Fn() -> bool) -> bool {
    let mut child = study(file, &[]).spawn().unwrap();
    let t = Instant::now();
    while !ready() {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "waited too long");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

#[test]
fn a_study_resumes_after_kills_and_shards_add_up_to_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let t = teacher(dir.path());

    // Uninterrupted.
    let whole = study_file(dir.path(), "whole", &t);
    check(&study(&whole, &[]).output().unwrap());
    let expected = results(&dir.path().join("whole"));
    assert_eq!(expected.lines().count(), 5, "{expected}");
    for line in expected.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[3], "2", "two seeds finished: {line}");
        let t_stddev: f64 = cells[1].parse().unwrap();
        assert!(t_stddev > 0.0 && t_stddev < 1.0, "{line}");
    }
    let report = std::fs::read_to_string(dir.path().join("whole/report.md")).unwrap();
    assert!(
        report.contains("Pearson") && report.contains("Kendall"),
        "{report}"
    );
    assert!(dir.path().join("whole/scatter.png").exists());
    assert!(dir.path().join("whole/scatter.svg").exists());

    // Killed between runs (the first run just finished), then in the middle of a later run.
    let killed = study_file(dir.path(), "killed", &t);
    let runs = dir.path().join("killed/runs");
    let first_done = || {
        runs.join("identity_seed0/metrics.csv").exists()
            && std::fs::read_to_string(runs.join("identity_seed0/metrics.csv"))
                .map(|s| s.lines().count() == 2)
                .unwrap_or(false)
    };
    assert!(
        kill_when(&killed, first_done),
        "finished before the first kill"
    );
    let mid = || {
        runs.join("cutmix_seed0/checkpoints/last.state.safetensors")
            .exists()
    };
    assert!(kill_when(&killed, mid), "finished before the second kill");
    check(&study(&killed, &[]).output().unwrap());
    assert_eq!(results(&dir.path().join("killed")), expected);

    // Two shards, one after the other, then the report from what exists.
    let sharded = study_file(dir.path(), "sharded", &t);
    let out0 = study(&sharded, &["--shard", "0/2"]).output().unwrap();
    check(&out0);
    let out1 = study(&sharded, &["--shard", "1/2"]).output().unwrap();
    check(&out1);
    assert_eq!(results(&dir.path().join("sharded")), expected);
    let o = kd()
        .args(["study", "report"])
        .arg(dir.path().join("sharded"))
        .output()
        .unwrap();
    check(&o);
    assert_eq!(results(&dir.path().join("sharded")), expected);
}
