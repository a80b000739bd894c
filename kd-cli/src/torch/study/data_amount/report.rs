//! The data-amount study's analysis: `results.csv`, the test and held-out accuracy laid out as
//! the paper's Table 4 (one row per kind, the full-data column, then ζ, then δ), each also as a
//! CSV of the same layout, plots of test accuracy against ζ and δ, and `report.md`.

use super::{Column, DataAmount, Keep, Kind, PickBy, RunResult};
use anyhow::Result;
use kd_core::train::state::write_atomic;
use kd_data::subset::Scope;
use kd_report::{Align, LinePlot, Plot, Series, Table, fmt_fixed, fmt_mean_std};
use std::fmt::Write as _;

/// A number the tables show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Last-epoch top-1 (%) on the full test set.
    Test,
    /// The final student's top-1 (%) on the held-out training samples.
    HeldOut,
}

impl Metric {
    /// Its name in file names.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Test => "test_top1",
            Metric::HeldOut => "heldout_top1",
        }
    }

    /// Its value in one run.
    pub fn value(self, r: &RunResult) -> Option<f64> {
        match self {
            Metric::Test => r.measure.as_ref().and(r.test_top1),
            Metric::HeldOut => r.measure.as_ref()?.heldout_top1,
        }
    }
}

/// The values of `metric` over the seeds of (kind, column) that have one.
pub fn values(results: &[RunResult], kind: Kind, column: Column, metric: Metric) -> Vec<f64> {
    results
        .iter()
        .filter(|r| r.kind == kind && r.column == column)
        .filter_map(|r| metric.value(r))
        .collect()
}

/// The mean of `metric` per kind (rows, in the study's order) and column (in its order).
pub fn table(study: &DataAmount, results: &[RunResult], metric: Metric) -> Vec<Vec<Option<f64>>> {
    study
        .kinds
        .iter()
        .map(|&k| {
            study
                .columns
                .iter()
                .map(|&c| {
                    let v = values(results, k, c, metric);
                    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect()
        })
        .collect()
}

/// The (teacher, student) cells of a kind's row, as the paper writes them.
fn pair(study: &DataAmount, kind: Kind) -> (String, String) {
    let student = study.base().model.student.clone();
    let teacher = match kind {
        Kind::Vanilla => "–".to_string(),
        Kind::SelfDistill => "same".to_string(),
        _ => study.teacher_of(kind).unwrap_or("?").to_string(),
    };
    (teacher, student)
}

/// `metric` as a markdown table in the paper's layout: mean, or mean ± std over 2+ seeds.
fn markdown(study: &DataAmount, results: &[RunResult], metric: Metric) -> Result<String> {
    let mut header = vec!["kind".to_string(), "teacher".into(), "student".into()];
    header.extend(study.columns.iter().map(|c| c.header()));
    let mut align = vec![Align::Left; 3];
    align.extend(study.columns.iter().map(|_| Align::Right));
    let mut t = Table::new(header).with_align(align);
    for &kind in &study.kinds {
        let (teacher, student) = pair(study, kind);
        let mut row = vec![kind.paper_name().to_string(), teacher, student];
        for &column in &study.columns {
            let v = values(results, kind, column, metric);
            row.push(match kd_metrics::mean_std(&v) {
                Err(_) => "–".into(),
                Ok(m) => match m.std {
                    Some(s) => fmt_mean_std(m.mean, s, 2),
                    None => fmt_fixed(m.mean, 2),
                },
            });
        }
        t.push_row(row);
    }
    Ok(t.to_markdown()?)
}

/// A table of means as CSV: `kind,teacher,student`, then one column per table column.
pub fn table_csv(study: &DataAmount, table: &[Vec<Option<f64>>]) -> String {
    let mut csv = String::from("kind,teacher,student");
    for c in &study.columns {
        let _ = write!(csv, ",{}", c.name());
    }
    csv.push('\n');
    for (&kind, row) in study.kinds.iter().zip(table) {
        let (teacher, student) = pair(study, kind);
        let _ = write!(csv, "{},{teacher},{student}", kind.name());
        for v in row {
            let _ = write!(csv, ",{}", v.map_or(String::new(), |v| v.to_string()));
        }
        csv.push('\n');
    }
    csv
}

/// Test accuracy against the fraction kept (ζ or δ, with the full data at 1), one curve per
/// kind; `None` when nothing has finished.
pub fn fraction_plot(study: &DataAmount, results: &[RunResult], zeta: bool) -> Option<LinePlot> {
    let series: Vec<Series> = study
        .kinds
        .iter()
        .filter_map(|&kind| {
            let mut points: Vec<(f64, f64)> = study
                .columns
                .iter()
                .filter(|c| match c {
                    Column::Full => true,
                    Column::Zeta(_) => zeta,
                    Column::Delta(_) => !zeta,
                })
                .filter_map(|&c| {
                    let v = values(results, kind, c, Metric::Test);
                    let (d, z) = c.delta_zeta();
                    (!v.is_empty()).then(|| {
                        (
                            if zeta { z } else { d },
                            v.iter().sum::<f64>() / v.len() as f64,
                        )
                    })
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!points.is_empty()).then(|| {
                let (xs, ys) = points.into_iter().unzip();
                Series::new(kind.paper_name(), xs, ys)
            })
        })
        .collect();
    (!series.is_empty()).then(|| LinePlot {
        title: format!(
            "test top-1 against {} ({})",
            if zeta { "zeta" } else { "delta" },
            study.base().model.student
        ),
        x_label: if zeta {
            "zeta (fraction of each class kept)".into()
        } else {
            "delta (fraction of classes kept)".into()
        },
        y_label: "test top-1 (%)".into(),
        series,
    })
}

fn results_csv(study: &DataAmount, results: &[RunResult]) -> String {
    let mut csv = String::from(
        "run,kind,teacher,student,column,delta,zeta,seed,train_samples,test_top1,best_test_top1,heldout_samples,heldout_top1\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for r in results {
        let (teacher, student) = pair(study, r.kind);
        let (d, z) = r.column.delta_zeta();
        let m = r.measure.as_ref();
        let _ = writeln!(
            csv,
            "{},{},{teacher},{student},{},{d},{z},{},{},{},{},{},{}",
            r.name,
            r.kind.name(),
            r.column.name(),
            r.seed,
            m.map_or(String::new(), |m| m.train_samples.to_string()),
            opt(r.test_top1),
            opt(r.best_test_top1),
            m.map_or(String::new(), |m| m.heldout_samples.to_string()),
            opt(m.and_then(|m| m.heldout_top1)),
        );
    }
    csv
}

/// How the subsets were picked, in words.
fn picking_text(study: &DataAmount) -> String {
    let p = &study.picking;
    let by = match p.by {
        PickBy::Random => return format!("at random (subset seed {})", p.seed),
        PickBy::Entropy => "entropy",
        PickBy::Tld => "TLD",
    };
    let end = if p.keep == Keep::Lowest {
        "lowest"
    } else {
        "highest"
    };
    let scope = if p.scope == Scope::Global {
        "over all samples"
    } else {
        "per class"
    };
    format!(
        "by the teacher's ({}) {by}: ζ keeps the {end} scores {scope}, δ the classes of {end} mean score",
        study.base().model.teacher.as_deref().unwrap_or("?")
    )
}

/// Writes `results.csv`, `table_<metric>.csv`, the plots and `report.md` into the study's
/// directory.
pub fn write(study: &DataAmount) -> Result<()> {
    let results = study.results()?;
    let dir = &study.dir;
    write_atomic(
        &dir.join("results.csv"),
        results_csv(study, &results).as_bytes(),
    )?;
    for metric in [Metric::Test, Metric::HeldOut] {
        let t = table(study, &results, metric);
        write_atomic(
            &dir.join(format!("table_{}.csv", metric.key())),
            table_csv(study, &t).as_bytes(),
        )?;
    }
    let base = study.base();
    let mut md = String::new();
    let _ = writeln!(md, "# Data-amount study: {}\n", dir.display());
    let _ = writeln!(
        md,
        "Student {}, data `{}`, {} epochs, preset {}, loss {} (α = {}, τ = {}), seeds {:?}. Subsets picked {}. Teachers are trained on the full data; only the student sees the subset.\n",
        base.model.student,
        base.data.dataset,
        base.run.epochs,
        base.run.preset,
        super::super::kd_grid::loss_name(base.loss.kind),
        base.loss.kd,
        super::name_number(base.loss.temperature),
        study.seeds,
        picking_text(study),
    );
    let finished = results.iter().filter(|r| r.measure.is_some()).count();
    let _ = writeln!(md, "{finished} of {} runs finished.\n", results.len());
    let _ = writeln!(
        md,
        "## Test top-1 (%), the full test set (Table 4)\n\nMean (± std) over the seeds finished; the paper reports the best of three runs.\n"
    );
    md.push_str(&markdown(study, &results, Metric::Test)?);
    let _ = writeln!(
        md,
        "\n## Top-1 (%) on the held-out training samples\n\nThe classes left out (δ) and the samples held out of kept classes (ζ): kd_data's \"valid\" split; none for the full data.\n"
    );
    md.push_str(&markdown(study, &results, Metric::HeldOut)?);
    for zeta in [true, false] {
        if let Some(plot) = fraction_plot(study, &results, zeta) {
            let stem = if zeta {
                "test_vs_zeta"
            } else {
                "test_vs_delta"
            };
            plot.write(&dir.join(stem))?;
            let _ = writeln!(md, "\n![{}]({stem}.png) (also {stem}.svg)", plot.title);
        }
    }
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    println!("report: {}", dir.join("report.md").display());
    Ok(())
}
