//! What the "When does KD help?" tests (analyze, kd_grid, data_amount) share: the `kd` binary,
//! a tiny synthetic dataset, trained models, and CSV reading.

#![allow(dead_code)] // each test crate uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `kd` binary.
pub fn kd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kd"))
}

/// Runs `c`, asserting it succeeded; returns its stdout.
pub fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    check(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a command succeeded, showing its output if not.
pub fn check(out: &Output) {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `c`, asserting it failed; returns its stderr.
pub fn fails(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One epoch on 10 classes × 30 training images (10 test images per class), on the CPU.
pub const DATA: &str = r#"
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
train_per_class = 30
test_per_class = 10
"#;

/// Writes [`DATA`] into `dir` and returns its path.
pub fn data_config(dir: &Path) -> PathBuf {
    let path = dir.join("data.toml");
    std::fs::write(&path, DATA).unwrap();
    path
}

/// `kd train` of `model` for `epochs` into `dir/name`; returns its last weights.
pub fn train(dir: &Path, name: &str, model: &str, epochs: usize) -> PathBuf {
    ok(kd()
        .args(["--quiet", "train", "--config"])
        .arg(data_config(dir))
        .args(["--set", &format!("run.out_dir=\"{}\"", dir.display())])
        .args(["--set", &format!("run.name={name}")])
        .args(["--set", &format!("run.epochs={epochs}")])
        .args(["--set", &format!("model.student={model}")]));
    dir.join(name).join("checkpoints/last.safetensors")
}

/// A CSV file as its header and rows.
pub struct Csv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// Reads `path`.
    pub fn read(path: &Path) -> Csv {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut lines = text
            .lines()
            .map(|l| l.split(',').map(str::to_string).collect());
        Csv {
            header: lines.next().expect("a header"),
            rows: lines.collect(),
        }
    }

    /// The index of column `name`.
    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    /// Column `name` of every row.
    pub fn column(&self, name: &str) -> Vec<&str> {
        let i = self.col(name);
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }

    /// The row whose column `key` is `value`.
    pub fn row(&self, key: &str, value: &str) -> &[String] {
        let i = self.col(key);
        self.rows
            .iter()
            .find(|r| r[i] == value)
            .unwrap_or_else(|| panic!("no row with {key} = {value}"))
    }

    /// Column `name` of the row whose `key` is `value`, as a number (`None` if empty).
    pub fn num(&self, key: &str, value: &str, name: &str) -> Option<f64> {
        let cell = &self.row(key, value)[self.col(name)];
        (!cell.is_empty()).then(|| cell.parse().unwrap())
    }
}

/// The last epoch's test top-1 in a run's metrics.jsonl.
pub fn last_test_top1(run_dir: &Path) -> f64 {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    v["test_top1"].as_f64().unwrap()
}
