//! Renders one of each figure and a table, with made-up numbers shaped like the studies' data:
//! `cargo run -p kd-report --example figures -- /tmp/kd-report-figures`.

use kd_report::{
    Align, Heatmap, LinePlot, Plot, Point, ReportError, ScatterPlot, Series, Table, ValueFormat,
    fmt_mean_std, write_atomic,
};
use std::path::PathBuf;

fn main() -> Result<(), ReportError> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "kd-report-figures".into()),
    );

    let schemes = [
        ("identity", 0.412, 1.342, 0.021),
        ("flip", 0.447, 1.301, 0.018),
        ("crop+flip", 0.486, 1.262, 0.025),
        ("cutout", 0.503, 1.255, 0.020),
        ("autoaugment", 0.552, 1.221, 0.031),
        ("mixup", 0.571, 1.236, 0.027),
        ("cutmix", 0.598, 1.187, 0.022),
        ("cutmix_pick:t", 0.634, 1.161, 0.019),
        ("cutmix_pick:s", 0.622, 1.170, 0.024),
    ];
    let scatter = ScatterPlot {
        title: "T. stddev vs student test loss (resnet32x4 -> resnet8x4)".into(),
        x_label: "T. stddev".into(),
        y_label: "student test loss".into(),
        points: schemes
            .iter()
            .map(|&(name, x, y, err)| {
                let group = if name.starts_with("cutmix") {
                    "CutMix family"
                } else {
                    "others"
                };
                Point::new(x, y, name).with_err_y(err).with_group(group)
            })
            .chain([Point::new(f64::NAN, 1.2, "diverged")])
            .collect(),
        fit_line: true,
    };
    let written = scatter.write(&dir.join("scatter"))?;
    println!("{}\n{}", written.0.display(), written.1.display());

    let alphas: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];
    let taus: [f64; 6] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
    let heatmap = Heatmap {
        title: "test accuracy (%), α × τ".into(),
        x_label: "τ".into(),
        y_label: "α".into(),
        x_ticks: taus.iter().map(|t| t.to_string()).collect(),
        y_ticks: alphas.iter().map(|a| a.to_string()).collect(),
        values: alphas
            .iter()
            .enumerate()
            .map(|(i, a)| {
                taus.iter()
                    .enumerate()
                    .map(|(j, t)| {
                        let missing = (i, j) == (4, 5) || (i, j) == (0, 0);
                        let acc = 70.0 + 4.0 * a * (1.0 - (t.ln() - 1.4).powi(2) / 4.0);
                        (!missing).then_some(acc)
                    })
                    .collect()
            })
            .collect(),
        value_format: ValueFormat::Fixed(2),
        ..Default::default()
    };
    let written = heatmap.write(&dir.join("heatmap"))?;
    println!("{}\n{}", written.0.display(), written.1.display());

    let xs: Vec<f64> = (0..=200).map(|i| f64::from(i) * 0.1).collect();
    let density = |mean: f64, sd: f64| -> Vec<f64> {
        xs.iter()
            .map(|x| {
                (-(x - mean).powi(2) / (2.0 * sd * sd)).exp()
                    / (sd * (2.0 * std::f64::consts::PI).sqrt())
            })
            .collect()
    };
    let lines = LinePlot {
        title: "teacher top-logit difference".into(),
        x_label: "TLD".into(),
        y_label: "density".into(),
        series: vec![
            Series::new("resnet32x4", xs.clone(), density(9.0, 2.0)),
            Series::new("wrn_40_2", xs.clone(), density(7.0, 2.5)),
            Series::new("resnet56", xs.clone(), density(5.5, 1.6)),
        ],
    };
    let written = lines.write(&dir.join("lines"))?;
    println!("{}\n{}", written.0.display(), written.1.display());

    let mut table = Table::new(["scheme", "T. stddev", "test loss"]).with_align(vec![
        Align::Left,
        Align::Right,
        Align::Right,
    ]);
    for (name, x, y, err) in schemes {
        table.push_row([name.to_owned(), format!("{x:.3}"), fmt_mean_std(y, err, 3)]);
    }
    let path = dir.join("table.md");
    write_atomic(&path, table.to_markdown()?.as_bytes())?;
    println!("{}", path.display());
    Ok(())
}
