//! The kd-grid study's analysis: `results.csv`, the α × τ grids of the KL loss as CSV and
//! heatmaps (train accuracy, test accuracy, the teacher's entropy on the samples the student gets
//! right: the paper's Tables 11–13 and Fig. 2), their correlations (Table 3), the four
//! right/wrong cases (Table 2) in `cases.csv`, the logit losses, and `report.md`.

use super::{CellResult, KdGrid, loss_name, temperature_label};
use crate::torch::analyze::Cases;
use anyhow::Result;
use kd_core::config::LossKind;
use kd_core::train::state::write_atomic;
use kd_report::{Align, Colormap, Heatmap, Plot, Rgb, Table, ValueFormat, fmt_fixed};
use std::fmt::Write as _;

/// A number shown per cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// The final student's training top-1 (%), clean images, eval mode (Table 11).
    TrainTop1,
    /// The last epoch's test top-1 (%) (Table 12).
    TestTop1,
    /// The teacher's mean entropy over the training samples the student gets right (Table 13).
    EntropyCorrect,
}

impl Metric {
    /// Every metric, in the paper's table order.
    pub const ALL: [Metric; 3] = [Metric::TrainTop1, Metric::TestTop1, Metric::EntropyCorrect];

    /// Its name in file names and CSV headers.
    pub fn key(self) -> &'static str {
        match self {
            Metric::TrainTop1 => "train_top1",
            Metric::TestTop1 => "test_top1",
            Metric::EntropyCorrect => "teacher_entropy_correct",
        }
    }

    /// Its description in titles.
    pub fn title(self) -> &'static str {
        match self {
            Metric::TrainTop1 => "training top-1 (%)",
            Metric::TestTop1 => "test top-1 (%)",
            Metric::EntropyCorrect => "teacher's mean entropy, samples the student gets right",
        }
    }

    /// Its value in one finished cell.
    pub fn value(self, r: &CellResult) -> Option<f64> {
        match self {
            Metric::TrainTop1 => r.measure.as_ref().map(|m| m.train_top1),
            Metric::TestTop1 => r.test_top1,
            Metric::EntropyCorrect => r.measure.as_ref()?.teacher_entropy_correct,
        }
    }

    fn format(self) -> ValueFormat {
        match self {
            Metric::EntropyCorrect => ValueFormat::Fixed(4),
            _ => ValueFormat::Fixed(2),
        }
    }
}

/// The mean of the values present, `None` when there is none.
fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The KL grid of `metric`: one row per τ and one column per α, in the study's order, each cell
/// the mean over the seeds that have a value (`None` when none has).
pub fn grid(study: &KdGrid, results: &[CellResult], metric: Metric) -> Vec<Vec<Option<f64>>> {
    study
        .temperatures
        .iter()
        .map(|&t| {
            study
                .alphas
                .iter()
                .map(|&a| {
                    mean(
                        results
                            .iter()
                            .filter(|r| {
                                r.loss == LossKind::Kl
                                    && r.alpha == Some(a)
                                    && r.temperature == Some(t)
                            })
                            .filter_map(|r| metric.value(r)),
                    )
                })
                .collect()
        })
        .collect()
}

/// matplotlib's `Blues`, the `grid_plot` notebook's colour map.
fn blues() -> Colormap {
    Colormap::new(
        [
            0xf7fbff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6, 0x4292c6, 0x2171b5, 0x08519c,
            0x08306b,
        ]
        .into_iter()
        .map(Rgb::hex)
        .collect(),
    )
    .expect("nine anchors")
}

/// The heatmap of a grid: α across, τ down (the notebook's `pcolor` with x = alpha, y =
/// temperature).
pub fn heatmap(study: &KdGrid, grid: Vec<Vec<Option<f64>>>, metric: Metric) -> Heatmap {
    let base = study.base();
    Heatmap {
        title: format!(
            "{} ({} -> {})",
            metric.title(),
            base.model.teacher.as_deref().unwrap_or("?"),
            base.model.student
        ),
        x_label: "alpha".into(),
        y_label: "temperature".into(),
        x_ticks: study
            .alphas
            .iter()
            .map(|&a| super::name_number(a))
            .collect(),
        y_ticks: study
            .temperatures
            .iter()
            .map(|&t| super::name_number(t))
            .collect(),
        values: grid,
        value_format: metric.format(),
        colormap: blues(),
        range: None,
    }
}

/// A grid as CSV: `tau/alpha` and the α values, then one line per τ (`inf` for ∞), empty for
/// missing.
pub fn grid_csv(study: &KdGrid, grid: &[Vec<Option<f64>>]) -> String {
    let mut csv = String::from("tau/alpha");
    for &a in &study.alphas {
        let _ = write!(csv, ",{a}");
    }
    csv.push('\n');
    for (&t, row) in study.temperatures.iter().zip(grid) {
        csv.push_str(&super::name_number(t));
        for v in row {
            let _ = write!(csv, ",{}", v.map_or(String::new(), |v| v.to_string()));
        }
        csv.push('\n');
    }
    csv
}

/// A grid as a markdown table, τ down and α across, as the paper's Tables 11–13.
fn grid_markdown(study: &KdGrid, grid: &[Vec<Option<f64>>], metric: Metric) -> Result<String> {
    let mut header = vec!["τ \\ α".to_string()];
    header.extend(study.alphas.iter().map(|&a| super::name_number(a)));
    let mut align = vec![Align::Left];
    align.extend(study.alphas.iter().map(|_| Align::Right));
    let mut t = Table::new(header).with_align(align);
    for (&temp, row) in study.temperatures.iter().zip(grid) {
        let mut cells = vec![temperature_label(temp)];
        cells.extend(
            row.iter()
                .map(|v| v.map_or("–".into(), |v| metric.format().format(v))),
        );
        t.push_row(cells);
    }
    Ok(t.to_markdown()?)
}

/// The Pearson correlation of two grid lines over the positions both have; `None` with fewer
/// than three such positions or a constant line.
fn line_correlation(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    let (x, y): (Vec<f64>, Vec<f64>) = a
        .iter()
        .zip(b)
        .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
        .unzip();
    if x.len() < 3 {
        return None;
    }
    kd_metrics::pearson(&x, &y).ok().map(|c| c.coefficient)
}

/// The paper's Table 3: the correlation of the training-accuracy grid with the entropy grid,
/// along each τ row (over α) and each α column (over τ, ∞ included).
pub fn correlations(
    train: &[Vec<Option<f64>>],
    entropy: &[Vec<Option<f64>>],
) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let rows = train
        .iter()
        .zip(entropy)
        .map(|(a, b)| line_correlation(a, b))
        .collect();
    let columns = (0..train.first().map_or(0, Vec::len))
        .map(|j| {
            let col = |g: &[Vec<Option<f64>>]| g.iter().map(|r| r[j]).collect::<Vec<_>>();
            line_correlation(&col(train), &col(entropy))
        })
        .collect();
    (rows, columns)
}

fn results_csv(results: &[CellResult]) -> String {
    let mut csv = String::from(
        "run,loss,alpha,temperature,seed,train_top1,test_top1,best_test_top1,teacher_entropy_correct,train_samples",
    );
    for name in Cases::NAMES {
        let n = name.replace('/', "");
        let _ = write!(csv, ",{n}_count,{n}_teacher_entropy");
    }
    csv.push('\n');
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for r in results {
        let m = r.measure.as_ref();
        let _ = write!(
            csv,
            "{},{},{},{},{},{},{},{},{},{}",
            r.name,
            loss_name(r.loss),
            opt(r.alpha),
            r.temperature.map_or(String::new(), super::name_number),
            r.seed,
            opt(m.map(|m| m.train_top1)),
            opt(r.test_top1),
            opt(r.best_test_top1),
            opt(m.and_then(|m| m.teacher_entropy_correct)),
            m.map_or(String::new(), |m| m.train_samples.to_string()),
        );
        for i in 0..4 {
            let _ = write!(
                csv,
                ",{},{}",
                m.map_or(String::new(), |m| m.cases.count[i].to_string()),
                opt(m.and_then(|m| m.cases.mean_entropy(i)))
            );
        }
        csv.push('\n');
    }
    csv
}

/// The four cases pooled over seeds, for the KL cells at α = `alpha`, one column per τ (the
/// paper's Table 2, left half, with α = 1).
fn cases_markdown(study: &KdGrid, results: &[CellResult], alpha: f64) -> Result<Option<String>> {
    let mut columns = Vec::new();
    for &t in &study.temperatures {
        let mut pooled = Cases::default();
        let mut any = false;
        for r in results.iter().filter(|r| {
            r.loss == LossKind::Kl && r.alpha == Some(alpha) && r.temperature == Some(t)
        }) {
            if let Some(m) = &r.measure {
                any = true;
                for i in 0..4 {
                    pooled.count[i] += m.cases.count[i];
                    pooled.entropy_sum[i] += m.cases.entropy_sum[i];
                }
            }
        }
        if any {
            columns.push((t, pooled));
        }
    }
    if columns.is_empty() {
        return Ok(None);
    }
    let mut header = vec!["case".to_string()];
    header.extend(columns.iter().map(|(t, _)| {
        format!(
            "α={}, τ={}",
            super::name_number(alpha),
            temperature_label(*t)
        )
    }));
    let mut table = Table::new(header);
    for (i, name) in Cases::NAMES.iter().enumerate() {
        let mut row = vec![name.to_string()];
        row.extend(columns.iter().map(|(_, c)| {
            format!(
                "{} ({})",
                c.mean_entropy(i).map_or("–".into(), |v| fmt_fixed(v, 4)),
                c.count[i]
            )
        }));
        table.push_row(row);
    }
    Ok(Some(table.to_markdown()?))
}

/// The logit-loss runs (and any loss outside the KL grid), mean over seeds.
fn logit_losses_markdown(results: &[CellResult]) -> Result<Option<String>> {
    let mut keys: Vec<(LossKind, Option<f64>)> = Vec::new();
    for r in results.iter().filter(|r| r.loss != LossKind::Kl) {
        if !keys.contains(&(r.loss, r.alpha)) {
            keys.push((r.loss, r.alpha));
        }
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let mut t = Table::new([
        "loss",
        "α",
        "train top-1 (%)",
        "test top-1 (%)",
        "T. entropy (S. right)",
        "seeds",
    ])
    .with_align(vec![
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
    ]);
    for (loss, alpha) in keys {
        let rs: Vec<&CellResult> = results
            .iter()
            .filter(|r| r.loss == loss && r.alpha == alpha)
            .collect();
        let cell = |m: Metric, decimals: usize| {
            mean(rs.iter().filter_map(|r| m.value(r)))
                .map_or("–".into(), |v| fmt_fixed(v, decimals))
        };
        t.push_row([
            loss_name(loss).to_string(),
            alpha.map_or("–".into(), super::name_number),
            cell(Metric::TrainTop1, 2),
            cell(Metric::TestTop1, 2),
            cell(Metric::EntropyCorrect, 4),
            format!(
                "{}/{}",
                rs.iter().filter(|r| r.measure.is_some()).count(),
                rs.len()
            ),
        ]);
    }
    Ok(Some(t.to_markdown()?))
}

/// Writes `results.csv`, `grid_<metric>.csv`, `heatmap_<metric>.{png,svg}` and `report.md` into
/// the study's directory.
pub fn write(study: &KdGrid) -> Result<()> {
    let results = study.results()?;
    let dir = &study.dir;
    write_atomic(&dir.join("results.csv"), results_csv(&results).as_bytes())?;
    let base = study.base();
    let mut md = String::new();
    let _ = writeln!(md, "# KD grid study: {}\n", dir.display());
    let _ = writeln!(
        md,
        "Teacher {} → student {}, data `{}`, {} epochs, preset {}, seeds {:?}. Training top-1 and the teacher's entropy are measured on the final student with clean training images in eval mode; test top-1 is the last epoch's. Each cell is the mean over the seeds finished.\n",
        base.model.teacher.as_deref().unwrap_or("?"),
        base.model.student,
        base.data.dataset,
        base.run.epochs,
        base.run.preset,
        study.seeds,
    );
    let finished = results.iter().filter(|r| r.measure.is_some()).count();
    let _ = writeln!(md, "{finished} of {} runs finished.\n", results.len());
    let mut grids = Vec::new();
    if study.losses.contains(&LossKind::Kl) {
        for metric in Metric::ALL {
            let g = grid(study, &results, metric);
            write_atomic(
                &dir.join(format!("grid_{}.csv", metric.key())),
                grid_csv(study, &g).as_bytes(),
            )?;
            let _ = writeln!(md, "## KL: {}\n", metric.title());
            md.push_str(&grid_markdown(study, &g, metric)?);
            if g.iter().flatten().any(Option::is_some) {
                let stem = format!("heatmap_{}", metric.key());
                heatmap(study, g.clone(), metric).write(&dir.join(&stem))?;
                let _ = writeln!(md, "\n![{}]({stem}.png) (also {stem}.svg)", metric.title());
            }
            md.push('\n');
            grids.push(g);
        }
        let (rows, columns) = correlations(&grids[0], &grids[2]);
        let fmt = |v: &Option<f64>| v.map_or("–".into(), |v| fmt_fixed(v, 4));
        let _ = writeln!(
            md,
            "## Correlation of training top-1 with the teacher's entropy (Table 3)\n\nPearson, along each τ row (over α) and each α column (over τ, ∞ included); – with fewer than 3 cells.\n"
        );
        let mut t = Table::new(
            std::iter::once("τ".to_string())
                .chain(study.temperatures.iter().map(|&t| temperature_label(t))),
        );
        t.push_row(std::iter::once("r".to_string()).chain(rows.iter().map(fmt)));
        md.push_str(&t.to_markdown()?);
        md.push('\n');
        let mut t = Table::new(
            std::iter::once("α".to_string())
                .chain(study.alphas.iter().map(|&a| super::name_number(a))),
        );
        t.push_row(std::iter::once("r".to_string()).chain(columns.iter().map(fmt)));
        md.push_str(&t.to_markdown()?);
        let top_alpha = study
            .alphas
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        if let Some(cases) = cases_markdown(study, &results, top_alpha)? {
            let _ = writeln!(
                md,
                "\n## Teacher/student right/wrong (Table 2)\n\nThe teacher's mean entropy (samples), pooled over seeds; T/F is teacher right, student wrong. Every cell's cases are in results.csv.\n"
            );
            md.push_str(&cases);
        }
    }
    if let Some(table) = logit_losses_markdown(&results)? {
        let _ = writeln!(
            md,
            "\n## Logit losses\n\nMSE and SmoothL1 between the logits; under `loss.ce = \"1-kd\"` they have no CE term and ignore α and τ (kd_data's `--logit`).\n"
        );
        md.push_str(&table);
    }
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    println!("report: {}", dir.join("report.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlations_follow_rows_and_columns_and_need_three_cells() {
        let train = vec![
            vec![Some(1.0), Some(2.0), Some(3.0)],
            vec![Some(1.0), None, Some(3.0)],
            vec![Some(2.0), Some(1.0), Some(0.0)],
        ];
        let entropy = vec![
            vec![Some(2.0), Some(4.0), Some(6.0)],
            vec![Some(1.0), Some(1.0), Some(1.0)],
            vec![Some(0.0), Some(1.0), Some(2.0)],
        ];
        let (rows, columns) = correlations(&train, &entropy);
        assert!((rows[0].unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(rows[1], None, "two cells only");
        assert!((rows[2].unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(columns.len(), 3);
        assert_eq!(columns[1], None, "a missing cell leaves two");
    }

    #[test]
    fn means_skip_missing_values() {
        assert_eq!(mean([1.0, 3.0].into_iter()), Some(2.0));
        assert_eq!(mean(std::iter::empty()), None);
    }
}
