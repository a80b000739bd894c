//! Curves on one pair of axes with a legend: kd_data's `pdf_plot`, the density of the teacher's
//! top-logit difference for several models.

use crate::chart::{self, Frame, LegendEntry, Marker, XyChart, skipped_note};
use crate::color::palette;
use crate::error::{ReportError, Result};
use crate::plot::Plot;
use crate::scene::{Element, Scene, Shape, Stroke};

/// One named curve: the points `(xs[i], ys[i])`, joined in the order given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// The legend's text for it.
    pub name: String,
    /// Horizontal positions.
    pub xs: Vec<f64>,
    /// Vertical positions, one per x.
    pub ys: Vec<f64>,
}

impl Series {
    /// A series from its name and coordinates.
    pub fn new(name: impl Into<String>, xs: Vec<f64>, ys: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            xs,
            ys,
        }
    }

    /// The runs of consecutive finite points: a non-finite point breaks the curve.
    fn runs(&self) -> Vec<Vec<(f64, f64)>> {
        let mut runs = vec![Vec::new()];
        for (&x, &y) in self.xs.iter().zip(&self.ys) {
            let finite = x.is_finite() && y.is_finite();
            match runs.last_mut() {
                Some(run) if finite => run.push((x, y)),
                Some(run) if !run.is_empty() => runs.push(Vec::new()),
                _ => {}
            }
        }
        runs.retain(|run| !run.is_empty());
        runs
    }
}

/// Several curves on one pair of axes, each in its own colour, with a legend.
///
/// A point with a non-finite coordinate is skipped and breaks its curve there; skipped points
/// are counted ([`LinePlot::non_finite`]) and noted under the title. A point that is finite
/// but has no finite neighbour is drawn as a dot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinePlot {
    /// The title; empty for none.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// The curves, drawn in order (the first underneath).
    pub series: Vec<Series>,
}

impl LinePlot {
    /// How many points are skipped for a non-finite coordinate, over all series.
    pub fn non_finite(&self) -> usize {
        self.series
            .iter()
            .flat_map(|s| s.xs.iter().zip(&s.ys))
            .filter(|(x, y)| !(x.is_finite() && y.is_finite()))
            .count()
    }

    fn check(&self) -> Result<()> {
        if self.series.is_empty() {
            return Err(ReportError::Empty {
                what: "the line plot's series",
            });
        }
        for series in &self.series {
            if series.xs.len() != series.ys.len() {
                return Err(ReportError::LengthMismatch {
                    what: format!("series {:?} ys", series.name),
                    expected: series.xs.len(),
                    found: series.ys.len(),
                });
            }
        }
        Ok(())
    }

    fn chart(&self) -> Result<XyChart<'_>> {
        self.check()?;
        let finite: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.runs())
            .flatten()
            .collect();
        if finite.is_empty() {
            return Err(ReportError::Empty {
                what: "the line plot's finite points",
            });
        }
        let range = |values: &mut dyn Iterator<Item = f64>| {
            values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
        };
        Ok(XyChart {
            labels: chart::Labels {
                title: &self.title,
                note: skipped_note(
                    self.non_finite(),
                    "non-finite point skipped",
                    "non-finite points skipped",
                ),
                x_label: &self.x_label,
                y_label: &self.y_label,
            },
            x_range: range(&mut finite.iter().map(|p| p.0)),
            y_range: range(&mut finite.iter().map(|p| p.1)),
            legend: self
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| LegendEntry {
                    marker: Marker::Line,
                    color: palette(i),
                    text: s.name.clone(),
                })
                .collect(),
        })
    }

    /// The plot area and axes of the figure at `width × height`.
    ///
    /// # Errors
    /// As [`Plot::scene`].
    pub fn frame(&self, width: u32, height: u32) -> Result<Frame> {
        self.chart()?.frame(width, height)
    }
}

impl Plot for LinePlot {
    /// The figure: frame and legend, then each series' curves (`series`) and isolated points
    /// (`series-point`).
    fn scene(&self, width: u32, height: u32) -> Result<Scene> {
        let chart = self.chart()?;
        let frame = chart.frame(width, height)?;
        let mut scene = chart.scene(&frame, width, height);
        let sf = f64::from(chart::scale(width, height)?);
        for (i, series) in self.series.iter().enumerate() {
            let color = palette(i);
            for run in series.runs() {
                let points: Vec<(f64, f64)> =
                    run.iter().map(|&(x, y)| frame.to_pixel(x, y)).collect();
                let shape = if let [(cx, cy)] = points[..] {
                    Element::keyed(
                        "series-point",
                        &series.name,
                        Shape::Circle {
                            cx,
                            cy,
                            r: 2.0 * sf,
                            fill: Some(color),
                            stroke: None,
                        },
                    )
                } else {
                    Element::keyed(
                        "series",
                        &series.name,
                        Shape::Polyline {
                            points,
                            stroke: Stroke {
                                color,
                                width: 2.0 * sf,
                            },
                        },
                    )
                };
                scene.elements.push(shape);
            }
        }
        Ok(scene)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_points_break_the_curve() {
        let series = Series::new(
            "a",
            vec![0.0, 1.0, f64::NAN, 3.0, 4.0, 5.0, 6.0],
            vec![0.0, 1.0, 2.0, 3.0, f64::INFINITY, 5.0, 6.0],
        );
        assert_eq!(
            series.runs(),
            [
                vec![(0.0, 0.0), (1.0, 1.0)],
                vec![(3.0, 3.0)],
                vec![(5.0, 5.0), (6.0, 6.0)]
            ]
        );
    }
}
