//! `kd goodness` as a user runs it: a table, goodness.csv and goodness.json on a subset of the
//! synthetic data, and the errors that name the bad value.

use kd_data::subset::{Quantiles, Subset, SubsetSpec};
use kd_data::synthetic::{self, SyntheticConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kd"))
}

/// A resnet8 teacher for the synthetic data's 10 classes, trained by `kd train` for one epoch on
/// 500 images (this test binary links no libtorch; the engine does the work).
fn teacher(dir: &Path) -> PathBuf {
    let config = dir.join("teacher.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[run]
name = "teacher"
out_dir = "{}"
device = "cpu"
threads = 2
epochs = 1
[data]
dataset = "synthetic"
batch_size = 32
workers = 2
[data.synthetic]
train_per_class = 50
test_per_class = 10
[model]
student = "resnet8"
[schedule]
kind = "constant"
"#,
            dir.display()
        ),
    )
    .unwrap();
    let out = kd()
        .args(["--quiet", "train", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    dir.join("teacher/checkpoints/last.safetensors")
}

/// A tenth of the synthetic training set (50 images per class, 500 in all).
fn subset(dir: &Path) -> PathBuf {
    let ds = synthetic::generate(&SyntheticConfig::default(), kd_data::Split::Train).unwrap();
    let spec = SubsetSpec {
        samples: Quantiles {
            lower: 0.0,
            upper: 0.1,
        },
        ..SubsetSpec::default()
    };
    let path = dir.join("subset.json");
    Subset::select(&ds, &spec, None)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

fn goodness(teacher: &Path, subset: &Path, out: &Path, da: &str, extra: &[&str]) -> Output {
    kd().args([
        "--quiet",
        "goodness",
        "--teacher-model",
        "resnet8",
        "--teacher",
    ])
    .arg(teacher)
    .args(["--data", "synthetic", "--subset"])
    .arg(subset)
    .args([
        "--da",
        da,
        "--passes",
        "2",
        "--device",
        "cpu",
        "--threads",
        "2",
    ])
    .args(["--workers", "2", "--out"])
    .arg(out)
    .args(extra)
    .output()
    .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn writes_the_table_the_csv_and_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let (t, s) = (teacher(dir.path()), subset(dir.path()));
    let out = dir.path().join("out");
    let run = goodness(&t, &s, &out, "identity,cutmix_pick_t", &["--baseline"]);
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    // 500 images: 7 batches of 64 and one of 52 per pass; 16 iterations make 3 groups.
    for scheme in ["identity", "cutmix_pick:teacher_entropy"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{scheme} ")))
            .unwrap_or_else(|| panic!("no {scheme} row in\n{stdout}"));
        assert!(line.split_whitespace().nth(3) == Some("3"), "{line}");
    }

    let csv = std::fs::read_to_string(out.join("goodness.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(
        lines[0],
        "scheme,t_stddev,mean_entropy,groups,samples,rows,images,seconds,images_per_s"
    );
    let identity: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(identity[0], "identity");
    let t_stddev: f64 = identity[1].parse().unwrap();
    assert!(t_stddev > 0.0 && t_stddev < 1.0, "{csv}");
    assert_eq!(&identity[3..7], ["3", "1000", "2000", "2000"], "{csv}");
    // CutMixPick: the teacher sees x and the pool of 2B in one pass, x′ is 64 rows of it (also
    // for the short batch, whose pool has 104 rows): 2 × (7 × 128 + 52 + 64) rows.
    let pick: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(pick[0], "cutmix_pick:teacher_entropy");
    assert_eq!(&pick[3..7], ["3", "1000", "2024", "3000"], "{csv}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("goodness.json")).unwrap()).unwrap();
    assert_eq!(json["passes"], 2);
    assert_eq!(json["samples_per_pass"], 500);
    assert_eq!(json["teacher"]["model"], "resnet8");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["scheme"], "identity");
    let from_json = results[0]["t_stddev"].as_f64().unwrap();
    assert!(
        (from_json - t_stddev).abs() < 1e-8,
        "{from_json} vs {t_stddev}"
    );
    // --baseline: one pass of the teacher alone in batches of 2B.
    assert_eq!(json["teacher_forward"]["images"], 500);
    assert_eq!(json["teacher_forward"]["batch_size"], 128);
    assert!(stdout.contains("teacher's plain forward:"), "{stdout}");
    let entropy = results[1]["mean_entropy"].as_f64().unwrap();
    assert!(entropy > 0.0 && entropy <= 10f64.ln() + 1e-9);
}

#[test]
fn bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (t, s) = (teacher(dir.path()), subset(dir.path()));
    let out = dir.path().join("out");

    let run = goodness(&t, &s, &out, "identity,cutmx", &[]);
    let (_, stderr) = text(&run);
    assert!(!run.status.success());
    assert!(
        stderr.contains("cutmx") && stderr.contains("did you mean 'cutmix'"),
        "{stderr}"
    );

    let run = goodness(&t, &s, &out, "cutmix_pick_s", &[]);
    let (_, stderr) = text(&run);
    assert!(!run.status.success());
    assert!(
        stderr.contains("--student-model") && stderr.contains("--student"),
        "{stderr}"
    );

    let missing = dir.path().join("nope.safetensors");
    let run = goodness(&missing, &s, &out, "identity", &[]);
    let (_, stderr) = text(&run);
    assert!(!run.status.success());
    assert!(
        stderr.contains("nope.safetensors") && stderr.contains("no such file"),
        "{stderr}"
    );

    // The weights of a 10-class resnet8 under another architecture.
    let run = kd()
        .args(["goodness", "--teacher-model", "resnet20", "--teacher"])
        .arg(&t)
        .args(["--data", "synthetic", "--da", "identity", "--device", "cpu"])
        .output()
        .unwrap();
    let (_, stderr) = text(&run);
    assert!(!run.status.success());
    assert!(stderr.contains("does not fit resnet20"), "{stderr}");

    // --student without --student-model is a usage error.
    let run = goodness(&t, &s, &out, "identity", &["--student", "x.safetensors"]);
    let (_, stderr) = text(&run);
    assert!(!run.status.success());
    assert!(stderr.contains("--student-model"), "{stderr}");
    assert!(
        !out.exists(),
        "nothing is written when the settings are wrong"
    );
}
