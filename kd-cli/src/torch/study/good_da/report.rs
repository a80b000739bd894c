//! The good-DA study's analysis: `results.csv`, `report.md` and the scatter plot.

use super::{GoodDa, SchemeResult};
use anyhow::Result;
use kd_core::train::state::write_atomic;
use kd_report::{Plot, Point, ScatterPlot, fmt_fixed, fmt_mean_std, fmt_p_value};
use std::fmt::Write as _;

/// One scheme's numbers as the report shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The scheme.
    pub scheme: String,
    /// T. stddev, if measured.
    pub t_stddev: Option<f64>,
    /// Mean teacher entropy, if measured.
    pub entropy: Option<f64>,
    /// Seeds finished.
    pub seeds: usize,
    /// Student test loss: mean and sample std over seeds.
    pub test_loss: Option<(f64, Option<f64>)>,
    /// Student test top-1: mean and sample std over seeds.
    pub top1: Option<(f64, Option<f64>)>,
}

fn mean_std(values: &[f64]) -> Option<(f64, Option<f64>)> {
    kd_metrics::mean_std(values).ok().map(|m| (m.mean, m.std))
}

/// The rows of the report.
pub fn rows(results: &[SchemeResult]) -> Vec<Row> {
    results
        .iter()
        .map(|r| {
            let losses: Vec<f64> = r.last.iter().map(|e| e.test_loss).collect();
            let top1: Vec<f64> = r.last.iter().map(|e| e.test_top1).collect();
            Row {
                scheme: r.scheme.clone(),
                t_stddev: r.goodness.map(|g| g.0).filter(|v| v.is_finite()),
                entropy: r.goodness.map(|g| g.1),
                seeds: r.last.len(),
                test_loss: mean_std(&losses),
                top1: mean_std(&top1),
            }
        })
        .collect()
}

/// The (T. stddev, mean test loss) pairs of the schemes that have both.
pub fn pairs(rows: &[Row]) -> Vec<(String, f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((r.scheme.clone(), r.t_stddev?, r.test_loss?.0)))
        .collect()
}

fn fmt_ms(v: Option<(f64, Option<f64>)>, decimals: usize) -> String {
    match v {
        None => "–".into(),
        Some((m, Some(s))) => fmt_mean_std(m, s, decimals),
        Some((m, None)) => fmt_fixed(m, decimals),
    }
}

/// The paper's Fig. 1b: T. stddev against the student's test loss, one point per scheme (mean ±
/// std over seeds), with the least-squares line.
pub fn scatter(rows: &[Row], study: &GoodDa) -> ScatterPlot {
    let base = &study.file.base;
    ScatterPlot {
        title: format!(
            "T. stddev vs student test loss ({} -> {})",
            base.model.teacher.as_deref().unwrap_or("?"),
            base.model.student
        ),
        x_label: "T. stddev".into(),
        y_label: "student test loss".into(),
        points: rows
            .iter()
            .filter_map(|r| {
                let (loss, std) = r.test_loss?;
                let mut p = Point::new(r.t_stddev?, loss, r.scheme.clone()).with_group(
                    if r.scheme.starts_with("cutmix") {
                        "CutMix family"
                    } else {
                        "others"
                    },
                );
                if let Some(s) = std {
                    p = p.with_err_y(s);
                }
                Some(p)
            })
            .collect(),
        fit_line: true,
    }
}

/// Writes `results.csv`, `report.md` and the scatter plot into the study's directory.
pub fn write(study: &GoodDa) -> Result<()> {
    let results = study.results()?;
    let rows = rows(&results);
    let mut csv =
        String::from("scheme,t_stddev,mean_entropy,seeds,test_loss,test_loss_std,top1,top1_std\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for r in &rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{}",
            r.scheme,
            opt(r.t_stddev),
            opt(r.entropy),
            r.seeds,
            opt(r.test_loss.map(|v| v.0)),
            opt(r.test_loss.and_then(|v| v.1)),
            opt(r.top1.map(|v| v.0)),
            opt(r.top1.and_then(|v| v.1)),
        );
    }
    write_atomic(&study.dir.join("results.csv"), csv.as_bytes())?;

    let mut md = String::new();
    let _ = writeln!(md, "# Good-DA-in-KD study: {}\n", study.dir.display());
    let base = &study.file.base;
    let _ = writeln!(
        md,
        "Teacher {} → student {}, data `{}`, {} epochs, seeds {:?}; T. stddev over {} passes of the training set (groups of 5 iterations × original and augmented batches, as the reference).\n",
        base.model.teacher.as_deref().unwrap_or("?"),
        base.model.student,
        base.data.dataset,
        base.run.epochs,
        study.seeds,
        study.goodness.first().map_or(0, |g| g.passes),
    );
    let _ = writeln!(
        md,
        "| scheme | T. stddev | T. mean entropy | S. test loss | S. top-1 (%) | seeds |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {}/{} |",
            r.scheme,
            r.t_stddev.map_or("–".into(), |v| format!("{v:.6}")),
            r.entropy.map_or("–".into(), |v| format!("{v:.4}")),
            fmt_ms(r.test_loss, 4),
            fmt_ms(r.top1, 2),
            r.seeds,
            study.seeds.len()
        );
    }
    let pairs = pairs(&rows);
    let _ = writeln!(md);
    if pairs.len() >= 3 {
        let xs: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let ys: Vec<f64> = pairs.iter().map(|p| p.2).collect();
        let _ = writeln!(
            md,
            "Correlation of T. stddev with the student's test loss over {} schemes (two-sided p-values; the paper expects a positive correlation):\n",
            pairs.len()
        );
        let _ = writeln!(md, "| | coefficient | p-value |");
        let _ = writeln!(md, "|---|---:|---:|");
        for (name, c) in [
            ("Pearson", kd_metrics::pearson(&xs, &ys)),
            ("Spearman", kd_metrics::spearman(&xs, &ys)),
            ("Kendall τ-b", kd_metrics::kendall_tau_b(&xs, &ys)),
        ] {
            match c {
                Ok(c) => {
                    let _ = writeln!(
                        md,
                        "| {name} | {:.4} | {} |",
                        c.coefficient,
                        fmt_p_value(c.p_value)
                    );
                }
                Err(e) => {
                    let _ = writeln!(md, "| {name} | – | ({e}) |");
                }
            }
        }
    } else {
        let _ = writeln!(
            md,
            "Correlations need at least 3 schemes with both a T. stddev and a finished run; {} so far.",
            pairs.len()
        );
    }
    let mut order: Vec<&Row> = rows.iter().filter(|r| r.t_stddev.is_some()).collect();
    order.sort_by(|a, b| b.t_stddev.partial_cmp(&a.t_stddev).expect("finite"));
    if !order.is_empty() {
        let names: Vec<&str> = order.iter().map(|r| r.scheme.as_str()).collect();
        let _ = writeln!(
            md,
            "\nT. stddev, highest first: {}.\nThe paper's order: identity ≥ flip > crop+flip > cutout > {{autoaugment, mixup}} > cutmix > cutmix_pick:student_entropy > cutmix_pick:teacher_entropy.",
            names.join(" > ")
        );
    }
    if !pairs.is_empty() {
        let plot = scatter(&rows, study);
        let (svg, png) = plot.write(&study.dir.join("scatter"))?;
        let _ = writeln!(
            md,
            "\n![T. stddev against the student's test loss]({})\n\n(also {})",
            png.file_name().unwrap_or_default().to_string_lossy(),
            svg.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    write_atomic(&study.dir.join("report.md"), md.as_bytes())?;
    println!("report: {}", study.dir.join("report.md").display());
    Ok(())
}
