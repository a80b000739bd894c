//! A grid of values coloured by a colour map, each cell annotated: kd_data's `grid_plot` (test
//! accuracy over α × τ).

use crate::axis::Axis;
use crate::chart::{self, Labels, skipped_note, widest};
use crate::color::{Colormap, Rgb};
use crate::error::{ReportError, Result};
use crate::format::{fmt_fixed, fmt_sig};
use crate::plot::Plot;
use crate::scene::{Anchor, Element, Paint, Scene, Shape, Stroke};

const MISSING_BACKGROUND: Rgb = Rgb::hex(0xf0f0f0);
const MISSING_STRIPE: Rgb = Rgb::hex(0xbdbdbd);
const BAR_BORDER: Rgb = Rgb::hex(0x444444);

/// How a cell's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// With this many decimals ("75.61" for 2).
    Fixed(usize),
    /// With this many significant digits (see [`crate::fmt_sig`]).
    Significant(usize),
}

impl ValueFormat {
    /// `value` in this format.
    pub fn format(&self, value: f64) -> String {
        match *self {
            ValueFormat::Fixed(decimals) => fmt_fixed(value, decimals),
            ValueFormat::Significant(digits) => fmt_sig(value, digits),
        }
    }
}

impl Default for ValueFormat {
    /// Two decimals.
    fn default() -> Self {
        ValueFormat::Fixed(2)
    }
}

/// A heatmap: `values[row][column]`, row 0 at the top (as a table reads, and as matplotlib's
/// `imshow` draws), each cell painted by the colour map and annotated with its value, with a
/// colour bar on the right.
///
/// A missing cell (`None`) is drawn hatched grey and unannotated. A non-finite value is drawn
/// the same way, and counted ([`Heatmap::non_finite`]) and noted under the title.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heatmap {
    /// The title; empty for none.
    pub title: String,
    /// The label under the columns.
    pub x_label: String,
    /// The label beside the rows.
    pub y_label: String,
    /// One label per column, left to right.
    pub x_ticks: Vec<String>,
    /// One label per row, top to bottom.
    pub y_ticks: Vec<String>,
    /// The cells, one row per y tick, each with one value per x tick.
    pub values: Vec<Vec<Option<f64>>>,
    /// How cell values are written.
    pub value_format: ValueFormat,
    /// The colours, from the lowest value (0) to the highest (1).
    pub colormap: Colormap,
    /// The values mapped to the colour map's ends; `None` for the smallest and largest finite
    /// value. Set it to compare several heatmaps on one scale; values outside are clamped.
    pub range: Option<(f64, f64)>,
}

impl Heatmap {
    /// How many cells hold a non-finite value (drawn as missing).
    pub fn non_finite(&self) -> usize {
        self.values
            .iter()
            .flatten()
            .filter(|v| v.is_some_and(|v| !v.is_finite()))
            .count()
    }

    fn check(&self) -> Result<()> {
        if self.values.is_empty() || self.x_ticks.is_empty() {
            return Err(ReportError::Empty {
                what: "the heatmap's grid",
            });
        }
        if self.values.len() != self.y_ticks.len() {
            return Err(ReportError::LengthMismatch {
                what: "heatmap values (rows)".to_owned(),
                expected: self.y_ticks.len(),
                found: self.values.len(),
            });
        }
        for (i, row) in self.values.iter().enumerate() {
            if row.len() != self.x_ticks.len() {
                return Err(ReportError::LengthMismatch {
                    what: format!("heatmap row {i}"),
                    expected: self.x_ticks.len(),
                    found: row.len(),
                });
            }
        }
        Ok(())
    }

    /// The colour bar's axis: the range the colour map spans, with its ticks.
    ///
    /// # Errors
    /// As [`Plot::scene`].
    pub fn color_axis(&self) -> Result<Axis> {
        self.check()?;
        let (lo, hi) = match self.range {
            Some((lo, hi)) => {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    return Err(ReportError::InvalidValue {
                        what: format!("heatmap range ({lo}, {hi}) lower end"),
                        value: lo,
                        expected: "finite and below the finite upper end",
                    });
                }
                (lo, hi)
            }
            None => self
                .values
                .iter()
                .flatten()
                .flatten()
                .filter(|v| v.is_finite())
                .fold(None, |range: Option<(f64, f64)>, &v| {
                    Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
                })
                .ok_or(ReportError::Empty {
                    what: "the heatmap's finite values",
                })?,
        };
        Axis::within("colour bar", lo, hi, 5)
    }

    /// The colour of `value`: the colour map at its place on [`Heatmap::color_axis`], clamped.
    ///
    /// # Errors
    /// As [`Plot::scene`].
    pub fn color_of(&self, value: f64) -> Result<Rgb> {
        let axis = self.color_axis()?;
        Ok(self.colormap.at(axis.fraction(value)))
    }
}

impl Plot for Heatmap {
    /// The figure: cells (`cell`, `cell-missing`, keyed `row,column`), their values
    /// (`cell-value`), row and column labels, the colour bar with its ticks.
    fn scene(&self, width: u32, height: u32) -> Result<Scene> {
        let bar = self.color_axis()?;
        let s = chart::scale(width, height)?;
        let sf = f64::from(s);
        let (w, h) = (f64::from(width), f64::from(height));
        let labels = Labels {
            title: &self.title,
            note: skipped_note(
                self.non_finite(),
                "non-finite value shown as missing",
                "non-finite values shown as missing",
            ),
            x_label: &self.x_label,
            y_label: &self.y_label,
        };
        let bar_labels = bar.labels();
        let top = labels.top(sf);
        let bottom = (h - labels.bottom(sf)).max(top + 1.0);
        let left = (labels.left(sf) + widest(&self.y_ticks, sf) + 8.0 * sf).min(0.35 * w);
        let bar_room = (12.0 + 14.0 + 8.0 + 12.0) * sf + widest(&bar_labels, sf);
        let right = (w - bar_room.min(0.3 * w)).max(left + 1.0);
        let area = chart::PlotArea {
            left,
            top,
            right,
            bottom,
        };
        let (rows, columns) = (self.y_ticks.len(), self.x_ticks.len());
        let cell_w = area.width() / columns as f64;
        let cell_h = area.height() / rows as f64;
        // Cell edges on whole pixels, so that neighbouring cells meet without an
        // anti-aliased seam.
        let column_edge = |c: usize| (left + c as f64 * cell_w).round();
        let row_edge = |r: usize| (top + r as f64 * cell_h).round();
        let mut elements = Vec::new();
        for (r, row) in self.values.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                let (x, y) = (column_edge(c), row_edge(r));
                let (width, height) = (column_edge(c + 1) - x, row_edge(r + 1) - y);
                let key = format!("{r},{c}");
                let value = value.filter(|v| v.is_finite());
                let (class, paint) = match value {
                    Some(v) => ("cell", Paint::Solid(self.colormap.at(bar.fraction(v)))),
                    None => (
                        "cell-missing",
                        Paint::Hatch {
                            background: MISSING_BACKGROUND,
                            stripe: MISSING_STRIPE,
                            spacing: 6.0 * sf,
                        },
                    ),
                };
                let color = match &paint {
                    Paint::Solid(color) => *color,
                    _ => MISSING_BACKGROUND,
                };
                elements.push(Element::keyed(
                    class,
                    &key,
                    Shape::Rect {
                        x,
                        y,
                        width,
                        height,
                        fill: Some(paint),
                        stroke: None,
                    },
                ));
                if let Some(v) = value {
                    let ink = if color.luma() < 128.0 {
                        Rgb::WHITE
                    } else {
                        chart::TEXT
                    };
                    elements.push(Element::keyed(
                        "cell-value",
                        key,
                        Shape::Text {
                            x: x + width / 2.0,
                            y: y + height / 2.0,
                            text: self.value_format.format(v),
                            scale: s,
                            anchor: Anchor::Middle,
                            color: ink,
                            vertical: false,
                        },
                    ));
                }
            }
        }
        for (c, tick) in self.x_ticks.iter().enumerate() {
            let x = left + (c as f64 + 0.5) * cell_w;
            let mut label = chart::text(
                "tick-label",
                x,
                bottom + 8.0 * sf + 5.0 * sf,
                tick,
                s,
                Anchor::Middle,
            );
            label.key = Some("x".into());
            elements.push(label);
        }
        for (r, tick) in self.y_ticks.iter().enumerate() {
            let y = top + (r as f64 + 0.5) * cell_h;
            let mut label = chart::text("tick-label", left - 8.0 * sf, y, tick, s, Anchor::End);
            label.key = Some("y".into());
            elements.push(label);
        }
        let bar_left = right + 12.0 * sf;
        let bar_right = bar_left + 14.0 * sf;
        elements.push(Element::new(
            "colorbar",
            Shape::Rect {
                x: bar_left,
                y: top,
                width: bar_right - bar_left,
                height: area.height(),
                fill: Some(Paint::Gradient(self.colormap.clone())),
                stroke: Some(Stroke {
                    color: BAR_BORDER,
                    width: sf,
                }),
            },
        ));
        for (tick, label) in bar.ticks().iter().zip(bar_labels) {
            let y = bottom - bar.fraction(*tick) * area.height();
            elements.push(chart::line(
                "tick",
                (bar_right, y),
                (bar_right + 4.0 * sf, y),
                BAR_BORDER,
                sf,
            ));
            let mut text = chart::text(
                "tick-label",
                bar_right + 8.0 * sf,
                y,
                &label,
                s,
                Anchor::Start,
            );
            text.key = Some("colorbar".into());
            elements.push(text);
        }
        elements.extend(labels.elements(&area, w, s));
        Ok(Scene {
            width,
            height,
            title: labels.svg_title(),
            elements,
        })
    }
}
