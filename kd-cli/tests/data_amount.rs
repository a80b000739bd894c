//! `kd study data-amount` as a user runs it: the four kinds of Table 4 (vanilla, over-, self-
//! and under-distillation) at ζ = 0.5 and δ = 0.3 picked by the teacher's entropy, on a small
//! synthetic dataset; the subsets are the paper's sizes and the lowest-entropy picks, a second
//! start skips every finished run, and the tables hold the runs' own results.

mod common;

use common::{Csv, DATA, kd, last_test_top1, ok, train};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn study_file(dir: &Path, teacher: &Path) -> PathBuf {
    let text = format!(
        r#"[study]
kind = "data-amount"
name = "amount"
out_dir = "{out}"
seeds = [0]
kinds = ["vanilla", "over", "self", "under"]
zetas = [0.5]
deltas = [0.3]
pick = "entropy"
keep = "lowest"
under_teacher = "resnet8"
under_teacher_weights = "{teacher}"
{data}
[model]
student = "resnet8"
teacher = "resnet8"
teacher_weights = "{teacher}"
[loss]
ce = "1-kd"
kd = 1.0
temperature = 20.0
"#,
        out = dir.display(),
        data = DATA.replace("[run]\n", "[run]\npreset = \"kd-data\"\n"),
        teacher = teacher.display()
    );
    let path = dir.join("amount.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A subset file's indices by label.
fn subset(study: &Path, column: &str) -> BTreeMap<u64, Vec<usize>> {
    let path = study.join(format!("subsets/{column}.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    serde_json::from_value(v["by_class"].clone()).unwrap()
}

fn measure(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("data_amount.json")).unwrap()).unwrap()
}

#[test]
fn a_data_amount_study_picks_the_papers_subsets_and_reports_the_runs_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let teacher = train(d, "teacher", "resnet8", 1);
    let file = study_file(d, &teacher);
    let first = ok(kd().args(["study", "data-amount", "--config"]).arg(&file));
    assert!(first.contains("12 jobs run now, 0 already done"), "{first}");
    let study = d.join("amount");
    let runs = study.join("runs");

    // The teacher's scores, and the subsets picked by them.
    let scores = Csv::read(&study.join("scores.csv"));
    assert_eq!(scores.rows.len(), 300);
    let label: Vec<u64> = scores
        .column("label")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    let entropy: Vec<f64> = scores
        .column("entropy")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    // ζ = 0.5: half of each class's 30, its 15 lowest-entropy samples.
    let zeta = subset(&study, "zeta0.5");
    assert_eq!(zeta.len(), 10);
    for (&class, kept) in &zeta {
        assert_eq!(kept.len(), 15, "class {class}");
        let kept_set: BTreeSet<usize> = kept.iter().copied().collect();
        let held = (0..300).filter(|i| label[*i] == class && !kept_set.contains(i));
        let max_kept = kept.iter().map(|&i| entropy[i]).fold(f64::MIN, f64::max);
        let min_held = held.map(|i| entropy[i]).fold(f64::MAX, f64::min);
        assert!(
            max_kept <= min_held,
            "class {class}: {max_kept} > {min_held}"
        );
    }
    // δ = 0.3: 3 whole classes of 10, those of lowest mean entropy.
    let delta = subset(&study, "delta0.3");
    assert!(delta.values().all(|v| v.len() == 30), "{delta:?}");
    let mut means: Vec<(f64, u64)> = (0..10)
        .map(|c| {
            let m: Vec<f64> = (0..300)
                .filter(|&i| label[i] == c)
                .map(|i| entropy[i])
                .collect();
            (m.iter().sum::<f64>() / m.len() as f64, c)
        })
        .collect();
    means.sort_by(|a, b| a.0.total_cmp(&b.0));
    let lowest: BTreeSet<u64> = means[..3].iter().map(|m| m.1).collect();
    assert_eq!(delta.keys().copied().collect::<BTreeSet<_>>(), lowest);

    // Each kind's teacher.
    let sd = std::fs::read_to_string(runs.join("self_zeta0.5_seed0/config.toml")).unwrap();
    assert!(
        sd.contains("vanilla_full_seed0/checkpoints/last.safetensors"),
        "{sd}"
    );
    let vanilla = std::fs::read_to_string(runs.join("vanilla_delta0.3_seed0/config.toml")).unwrap();
    assert!(
        vanilla.contains("kd train") && !vanilla.contains("teacher ="),
        "{vanilla}"
    );

    // Results: every run's own numbers, in the paper's layout.
    let results = Csv::read(&study.join("results.csv"));
    assert_eq!(results.rows.len(), 12);
    let table = Csv::read(&study.join("table_test_top1.csv"));
    assert_eq!(table.header[3..], ["full", "zeta0.5", "delta0.3"]);
    let heldout = Csv::read(&study.join("table_heldout_top1.csv"));
    for kind in ["vanilla", "over", "self", "under"] {
        for (column, train_samples) in [("full", 300), ("zeta0.5", 150), ("delta0.3", 90)] {
            let name = format!("{kind}_{column}_seed0");
            let run = runs.join(&name);
            let test = last_test_top1(&run);
            assert_eq!(results.num("run", &name, "test_top1"), Some(test), "{name}");
            assert_eq!(table.num("kind", kind, column), Some(test), "{name}");
            let m = measure(&run);
            assert_eq!(m["train_samples"], train_samples, "{name}");
            assert_eq!(m["heldout_samples"], 300 - train_samples, "{name}");
            assert_eq!(
                heldout.num("kind", kind, column),
                m["heldout_top1"].as_f64(),
                "{name}"
            );
        }
    }
    let report = std::fs::read_to_string(study.join("report.md")).unwrap();
    for needle in [
        "| Vanilla | –",
        "| SD      | same",
        "ζ,δ=1.0",
        "ζ=0.5",
        "δ=0.3",
    ] {
        assert!(report.contains(needle), "{needle}:\n{report}");
    }
    for f in ["test_vs_zeta.png", "test_vs_zeta.svg", "test_vs_delta.png"] {
        assert!(study.join(f).metadata().unwrap().len() > 0, "{f}");
    }

    // The held-out accuracy agrees with `kd analyze` of the student on the whole training set.
    let run = runs.join("over_zeta0.5_seed0");
    let out = d.join("analysis");
    ok(kd()
        .args(["--quiet", "analyze", "--labels", "s", "--models"])
        .arg(run.join("checkpoints/last.safetensors"))
        .arg("--data")
        .arg(run.join("config.toml"))
        .arg("--out")
        .arg(&out));
    let per = Csv::read(&out.join("per_sample.csv"));
    let kept: BTreeSet<usize> = zeta.values().flatten().copied().collect();
    let right: Vec<bool> = per.column("s_correct").iter().map(|v| *v == "1").collect();
    let held: Vec<usize> = (0..300).filter(|i| !kept.contains(i)).collect();
    let want = 100.0 * held.iter().filter(|&&i| right[i]).count() as f64 / held.len() as f64;
    let got = measure(&run)["heldout_top1"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "held-out top-1 {got} vs {want}");

    // Started again: nothing to run; the report rebuilds to the same.
    let again = ok(kd().args(["study", "data-amount", "--config"]).arg(&file));
    assert!(again.contains("0 jobs run now, 12 already done"), "{again}");
    let before = std::fs::read_to_string(study.join("results.csv")).unwrap();
    std::fs::remove_file(study.join("results.csv")).unwrap();
    ok(kd().args(["study", "report"]).arg(&study));
    assert_eq!(
        std::fs::read_to_string(study.join("results.csv")).unwrap(),
        before
    );
}
