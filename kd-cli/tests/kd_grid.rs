//! `kd study kd-grid` as a user runs it: a 2 × 2 α × τ grid (τ = inf included) plus an MSE
//! run, on a small synthetic dataset; a second start skips every finished run and completes one
//! cut short after its checkpoint; the grids behind the heatmaps equal the runs' own results,
//! and the entropy measurement agrees with `kd analyze` of the same teacher and student.

mod common;

use common::{Csv, DATA, kd, last_test_top1, ok, train};
use std::path::{Path, PathBuf};

fn study_file(dir: &Path, teacher: &Path) -> PathBuf {
    let text = format!(
        r#"[study]
kind = "kd-grid"
name = "grid"
out_dir = "{out}"
seeds = [0]
alphas = [0.5, 1.0]
temperatures = [4.0, inf]
losses = ["kl", "mse"]
{data}
[model]
student = "resnet8"
teacher = "resnet8"
teacher_weights = "{teacher}"
"#,
        out = dir.display(),
        data = DATA.replace("[run]\n", "[run]\npreset = \"kd-data\"\n"),
        teacher = teacher.display()
    );
    let path = dir.join("grid.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn measure(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("kd_grid.json")).unwrap()).unwrap()
}

/// The cell of `grid_<metric>.csv` at τ = `tau`, α = `alpha`.
fn grid_cell(study: &Path, metric: &str, tau: &str, alpha: &str) -> f64 {
    let g = Csv::read(&study.join(format!("grid_{metric}.csv")));
    assert_eq!(g.header[0], "tau/alpha");
    g.row("tau/alpha", tau)[g.col(alpha)].parse().unwrap()
}

#[test]
fn a_kd_grid_study_runs_skips_finished_runs_and_reports_the_runs_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let teacher = train(d, "teacher", "resnet8", 1);
    let file = study_file(d, &teacher);
    let first = ok(kd().args(["study", "kd-grid", "--config"]).arg(&file));
    assert!(first.contains("5 jobs run now, 0 already done"), "{first}");
    let study = d.join("grid");
    let runs = study.join("runs");

    let results = Csv::read(&study.join("results.csv"));
    assert_eq!(results.rows.len(), 5);
    for (tau, t) in [("4", "4"), ("inf", "inf")] {
        for alpha in ["0.5", "1"] {
            let run = runs.join(format!("kl_a{alpha}_t{t}_seed0"));
            let m = measure(&run);
            // The grids behind the heatmaps hold each run's own numbers.
            assert_eq!(
                grid_cell(&study, "test_top1", tau, alpha),
                last_test_top1(&run)
            );
            assert_eq!(
                grid_cell(&study, "train_top1", tau, alpha),
                m["train_top1"].as_f64().unwrap()
            );
            assert_eq!(
                grid_cell(&study, "teacher_entropy_correct", tau, alpha),
                m["teacher_entropy_correct"].as_f64().unwrap()
            );
            let name = format!("kl_a{alpha}_t{t}_seed0");
            assert_eq!(
                results.num("run", &name, "test_top1"),
                Some(last_test_top1(&run))
            );
        }
    }
    let config = std::fs::read_to_string(runs.join("kl_a1_tinf_seed0/config.toml")).unwrap();
    assert!(
        config.contains("temperature = inf") && config.contains("kind = \"kl\""),
        "{config}"
    );
    let mse = std::fs::read_to_string(runs.join("mse_seed0/config.toml")).unwrap();
    assert!(
        mse.contains("kind = \"mse\"") && mse.contains("ce = \"1-kd\""),
        "{mse}"
    );
    for metric in ["train_top1", "test_top1", "teacher_entropy_correct"] {
        for ext in ["png", "svg"] {
            let f = study.join(format!("heatmap_{metric}.{ext}"));
            assert!(f.metadata().unwrap().len() > 0, "{}", f.display());
        }
    }
    let svg = std::fs::read_to_string(study.join("heatmap_test_top1.svg")).unwrap();
    let v = last_test_top1(&runs.join("kl_a0.5_t4_seed0"));
    assert!(
        svg.contains(&format!("{v:.2}")),
        "the cell annotation {v:.2}"
    );
    let report = std::fs::read_to_string(study.join("report.md")).unwrap();
    assert!(
        report.contains("| ∞ ") && report.contains("Logit losses") && report.contains("| mse"),
        "{report}"
    );

    // The measurement agrees with `kd analyze` of the same teacher and student.
    let run = runs.join("kl_a1_tinf_seed0");
    let out = d.join("analysis");
    ok(kd()
        .args(["--quiet", "analyze", "--labels", "t,s", "--models"])
        .arg(format!(
            "resnet8={},{}",
            teacher.display(),
            run.join("checkpoints/last.safetensors").display()
        ))
        .arg("--data")
        .arg(run.join("config.toml"))
        .arg("--out")
        .arg(&out));
    let m = measure(&run);
    let models = Csv::read(&out.join("models.csv"));
    let top1 = models.num("model", "s", "top1").unwrap();
    assert!((top1 - m["train_top1"].as_f64().unwrap()).abs() < 1e-9);
    let cases = Csv::read(&out.join("cases.csv"));
    let counts: Vec<u64> = cases
        .column("count")
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let measured: Vec<u64> = m["cases"]["count"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(counts, measured);
    let per = Csv::read(&out.join("per_sample.csv"));
    let (mut sum, mut n) = (0.0, 0);
    for (h, right) in per.column("t_entropy").iter().zip(per.column("s_correct")) {
        if right == "1" {
            sum += h.parse::<f64>().unwrap();
            n += 1;
        }
    }
    let want = sum / n as f64;
    let got = m["teacher_entropy_correct"].as_f64().unwrap();
    assert!(
        (got - want).abs() < 1e-9,
        "Table 13's cell: {got} vs {want}"
    );

    // Started again: nothing to run, the same results; the report rebuilds to the same.
    let again = ok(kd().args(["study", "kd-grid", "--config"]).arg(&file));
    assert!(again.contains("0 jobs run now, 5 already done"), "{again}");
    let before = std::fs::read_to_string(study.join("results.csv")).unwrap();

    // A run killed after its last checkpoint but before its weights and metrics were written is
    // not done: started again, it restores both from the checkpoint, to the same results.
    let cut = runs.join("mse_seed0");
    let weights = std::fs::read(cut.join("checkpoints/last.safetensors")).unwrap();
    std::fs::remove_file(cut.join("metrics.jsonl")).unwrap();
    std::fs::remove_file(cut.join("checkpoints/last.safetensors")).unwrap();
    let repaired = ok(kd().args(["study", "kd-grid", "--config"]).arg(&file));
    assert!(
        repaired.contains("1 jobs run now, 4 already done"),
        "{repaired}"
    );
    assert_eq!(
        std::fs::read(cut.join("checkpoints/last.safetensors")).unwrap(),
        weights
    );
    assert_eq!(
        std::fs::read_to_string(study.join("results.csv")).unwrap(),
        before
    );

    std::fs::remove_file(study.join("results.csv")).unwrap();
    ok(kd().args(["study", "report"]).arg(&study));
    assert_eq!(
        std::fs::read_to_string(study.join("results.csv")).unwrap(),
        before
    );
}
