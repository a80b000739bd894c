//! Figures and tables for KD studies, in pure Rust: no libtorch, no system fonts, no plotting
//! library. Each figure is laid out once in pixels ([`Scene`]) and rendered from that layout to
//! SVG (written by hand) and to PNG (painted here, text in an embedded 5×8 bitmap font), so the
//! two always agree and the same input always gives the same bytes.
//!
//! - [`ScatterPlot`]: labelled points with optional error bars and least-squares line
//!   (Good-DA-in-KD's Fig. 1b, T. stddev against the student's test loss).
//! - [`Heatmap`]: an annotated grid with a colour bar, missing cells hatched (kd_data's α × τ
//!   accuracy grids).
//! - [`LinePlot`]: several curves with a legend (kd_data's density of the teacher's top-logit
//!   difference).
//! - [`Table`] and the `fmt_*` helpers: markdown tables and numbers ("75.61 ± 0.23", p-values).
//!
//! Every figure implements [`Plot`]: `to_svg()`, `to_png(width, height)`, and `write(stem)`,
//! which writes `<stem>.svg` and `<stem>.png` atomically. Axes use 1-2-5 ticks ([`Axis`]).
//! Non-finite data is skipped and counted (a note under the title says how many), never drawn;
//! nothing to draw, mismatched lengths or a negative error bar is a [`ReportError`].
//!
//! ```
//! use kd_report::{Plot, Point, ScatterPlot};
//!
//! let plot = ScatterPlot {
//!     title: "T. stddev vs student test loss".into(),
//!     x_label: "T. stddev".into(),
//!     y_label: "student test loss".into(),
//!     points: vec![
//!         Point::new(0.41, 1.32, "identity").with_err_y(0.02),
//!         Point::new(0.47, 1.25, "flip").with_err_y(0.03),
//!         Point::new(0.55, 1.18, "cutmix").with_err_y(0.02),
//!         Point::new(f64::NAN, 1.0, "broken run"),
//!     ],
//!     fit_line: true,
//! };
//! let svg = plot.to_svg()?;
//! assert_eq!(svg.matches(r#"class="point""#).count(), 3);
//! assert!(svg.contains("1 non-finite point skipped"));
//! let fit = plot.fit()?.expect("three distinct x");
//! assert!(fit.slope < 0.0);
//! let png = plot.to_png(640, 480)?;
//! assert_eq!(png.dimensions(), (640, 480));
//!
//! let dir = tempfile::tempdir().unwrap();
//! let (svg_path, png_path) = plot.write(&dir.path().join("fig1b"))?;
//! assert!(svg_path.ends_with("fig1b.svg") && png_path.exists());
//! # Ok::<(), kd_report::ReportError>(())
//! ```
//!
//! ```
//! use kd_report::{Align, Table, fmt_mean_std, fmt_p_value};
//!
//! let mut table = Table::new(["scheme", "top-1", "p"]).with_align(vec![Align::Left, Align::Right, Align::Right]);
//! table.push_row(["cutmix", &fmt_mean_std(75.614, 0.2251, 2), &fmt_p_value(3.2e-5)]);
//! assert_eq!(
//!     table.to_markdown()?,
//!     "| scheme |        top-1 |      p |\n\
//!      | :----- | -----------: | -----: |\n\
//!      | cutmix | 75.61 ± 0.23 | 3.2e-5 |\n"
//! );
//! # Ok::<(), kd_report::ReportError>(())
//! ```

#![warn(missing_docs)]

pub mod axis;
mod chart;
pub mod color;
pub mod error;
mod font;
pub mod format;
pub mod heatmap;
pub mod line;
pub mod markdown;
pub mod output;
mod plot;
mod raster;
pub mod scatter;
pub mod scene;

pub use axis::Axis;
pub use chart::{Frame, MAX_SIDE, MIN_SIZE, PNG_SIZE, PlotArea, SVG_SIZE};
pub use color::{Colormap, Rgb, palette};
pub use error::{ReportError, Result};
pub use format::{fmt_fixed, fmt_mean_std, fmt_p_value, fmt_sig};
pub use heatmap::{Heatmap, ValueFormat};
pub use line::{LinePlot, Series};
pub use markdown::{Align, Table};
pub use output::write_atomic;
pub use plot::Plot;
pub use scatter::{LinearFit, Point, ScatterPlot, least_squares};
pub use scene::{Anchor, Element, Paint, Scene, Shape, Stroke};
