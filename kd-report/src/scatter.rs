//! A labelled scatter plot with optional error bars and least-squares line: Good-DA-in-KD's
//! Fig. 1b (T. stddev against the student's test loss, one point per augmentation scheme).

use crate::chart::{self, Frame, LegendEntry, Marker, XyChart, skipped_note};
use crate::color::{Rgb, palette};
use crate::error::{ReportError, Result};
use crate::format::fmt_sig;
use crate::plot::Plot;
use crate::scene::{Anchor, Element, Scene, Shape, Stroke, text_width};

const UNGROUPED: Rgb = Rgb::hex(0x555555);
const FIT: Rgb = Rgb::hex(0x222222);

/// One point of a scatter plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position (e.g. the mean over seeds).
    pub y: f64,
    /// The text written beside the point; empty for none.
    pub label: String,
    /// Points of one group share a colour and a legend entry.
    pub group: Option<String>,
    /// Half the length of a vertical error bar (e.g. the standard deviation over seeds).
    pub err_y: Option<f64>,
}

impl Point {
    /// A point at `(x, y)` labelled `label`, with no group and no error bar.
    pub fn new(x: f64, y: f64, label: impl Into<String>) -> Self {
        Self {
            x,
            y,
            label: label.into(),
            group: None,
            err_y: None,
        }
    }

    /// The point in group `group`.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The point with an error bar of `y ± err_y`.
    pub fn with_err_y(mut self, err_y: f64) -> Self {
        self.err_y = Some(err_y);
        self
    }

    /// Whether the point can be drawn: `x`, `y` and any `err_y` finite.
    pub fn is_finite(&self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.err_y.is_none_or(f64::is_finite)
    }
}

/// A scatter plot of labelled points.
///
/// Points with a non-finite `x`, `y` or `err_y` are skipped: they are counted
/// ([`ScatterPlot::non_finite`]) and the count is noted under the title. A negative `err_y` is a
/// mistake, not data, and an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScatterPlot {
    /// The title; empty for none.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// The points, drawn in order.
    pub points: Vec<Point>,
    /// Whether to draw the least-squares line through the drawn points, with its equation and
    /// Pearson's r in the legend.
    pub fit_line: bool,
}

/// A least-squares line `y = slope·x + intercept`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearFit {
    /// The slope.
    pub slope: f64,
    /// The intercept.
    pub intercept: f64,
    /// Pearson's correlation of the points, `None` when every y is equal.
    pub r: Option<f64>,
    /// How many points it was fitted to.
    pub n: usize,
}

impl LinearFit {
    /// The line's value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.slope * x + self.intercept
    }
}

/// The ordinary least-squares line through `points` (minimising the vertical squared
/// distances), from sums about the means. `None` with fewer than two distinct x, or when the
/// sums overflow.
pub fn least_squares(points: &[(f64, f64)]) -> Option<LinearFit> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in points {
        let (dx, dy) = (x - mean_x, y - mean_y);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if !(sxx > 0.0 && sxx.is_finite() && sxy.is_finite() && syy.is_finite()) {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    // One square root where the product is finite: √(sxx·syy) is exact for a perfect line.
    let norm = match sxx * syy {
        product if product.is_finite() => product.sqrt(),
        _ => sxx.sqrt() * syy.sqrt(),
    };
    let r = (syy > 0.0).then(|| (sxy / norm).clamp(-1.0, 1.0));
    (slope.is_finite() && intercept.is_finite()).then_some(LinearFit {
        slope,
        intercept,
        r,
        n,
    })
}

impl ScatterPlot {
    /// How many points are skipped for a non-finite coordinate or error bar.
    pub fn non_finite(&self) -> usize {
        self.points.iter().filter(|p| !p.is_finite()).count()
    }

    /// The points that are drawn, after checking the error bars.
    fn drawn(&self) -> Result<Vec<&Point>> {
        for (i, point) in self.points.iter().enumerate() {
            if let Some(err) = point.err_y
                && err < 0.0
            {
                return Err(ReportError::InvalidValue {
                    what: format!("err_y of point {i} ({:?})", point.label),
                    value: err,
                    expected: "non-negative",
                });
            }
        }
        let drawn: Vec<&Point> = self.points.iter().filter(|p| p.is_finite()).collect();
        if drawn.is_empty() {
            return Err(ReportError::Empty {
                what: "the scatter plot's finite points",
            });
        }
        Ok(drawn)
    }

    /// The least-squares line through the drawn points, whether or not `fit_line` asks for it;
    /// `None` with fewer than two distinct x.
    ///
    /// # Errors
    /// As [`Plot::scene`]: no finite point, or a negative error bar.
    pub fn fit(&self) -> Result<Option<LinearFit>> {
        let drawn = self.drawn()?;
        let xy: Vec<(f64, f64)> = drawn.iter().map(|p| (p.x, p.y)).collect();
        Ok(least_squares(&xy))
    }

    /// The groups in order of first appearance among the drawn points.
    fn groups<'a>(drawn: &[&'a Point]) -> Vec<&'a str> {
        let mut groups: Vec<&str> = Vec::new();
        for group in drawn.iter().filter_map(|p| p.group.as_deref()) {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        groups
    }

    fn chart(&self) -> Result<(XyChart<'_>, Vec<&Point>, Option<LinearFit>)> {
        let drawn = self.drawn()?;
        let fit = if self.fit_line { self.fit()? } else { None };
        let err = |p: &Point| p.err_y.unwrap_or(0.0);
        let x_min = drawn.iter().map(|p| p.x).fold(f64::INFINITY, f64::min);
        let x_max = drawn.iter().map(|p| p.x).fold(f64::NEG_INFINITY, f64::max);
        let mut y_min = drawn
            .iter()
            .map(|p| p.y - err(p))
            .fold(f64::INFINITY, f64::min);
        let mut y_max = drawn
            .iter()
            .map(|p| p.y + err(p))
            .fold(f64::NEG_INFINITY, f64::max);
        if let Some(fit) = fit {
            for y in [fit.at(x_min), fit.at(x_max)] {
                y_min = y_min.min(y);
                y_max = y_max.max(y);
            }
        }
        if !(y_min.is_finite() && y_max.is_finite()) {
            return Err(ReportError::RangeTooWide {
                what: "y axis",
                lo: y_min,
                hi: y_max,
            });
        }
        // The fit first: a legend too long for the plot is cut at the end.
        let mut legend = if self.fit_line {
            fit_legend(fit.as_ref())
        } else {
            Vec::new()
        };
        let groups = Self::groups(&drawn);
        legend.extend(groups.iter().enumerate().map(|(i, g)| LegendEntry {
            marker: Marker::Point,
            color: palette(i),
            text: (*g).to_owned(),
        }));
        let chart = XyChart {
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
            x_range: (x_min, x_max),
            y_range: (y_min, y_max),
            legend,
        };
        Ok((chart, drawn, fit))
    }

    /// The plot area and axes of the figure at `width × height`: where each point is drawn.
    ///
    /// # Errors
    /// As [`Plot::scene`].
    pub fn frame(&self, width: u32, height: u32) -> Result<Frame> {
        self.chart()?.0.frame(width, height)
    }
}

/// The legend lines of a fit: its equation, then r and n.
fn fit_legend(fit: Option<&LinearFit>) -> Vec<LegendEntry> {
    let entry = |marker, text| LegendEntry {
        marker,
        color: FIT,
        text,
    };
    match fit {
        Some(fit) => {
            let sign = if fit.intercept < 0.0 { '-' } else { '+' };
            let equation = format!(
                "y = {}x {sign} {}",
                fmt_sig(fit.slope, 3),
                fmt_sig(fit.intercept.abs(), 3)
            );
            let r = fit.r.map_or("undefined".to_owned(), |r| fmt_sig(r, 3));
            vec![
                entry(Marker::Line, equation),
                entry(Marker::None, format!("r = {r}, n = {}", fit.n)),
            ]
        }
        None => vec![entry(Marker::None, "no fit: < 2 distinct x".to_owned())],
    }
}

impl Plot for ScatterPlot {
    /// The figure: frame, then the fit line, error bars, points and their labels.
    fn scene(&self, width: u32, height: u32) -> Result<Scene> {
        let (chart, drawn, fit) = self.chart()?;
        let frame = chart.frame(width, height)?;
        let mut scene = chart.scene(&frame, width, height);
        let s = chart::scale(width, height)?;
        let sf = f64::from(s);
        let groups = Self::groups(&drawn);
        let color_of = |p: &Point| match &p.group {
            Some(g) => palette(groups.iter().position(|x| x == g).unwrap_or(0)),
            None if groups.is_empty() => palette(0),
            None => UNGROUPED,
        };
        if let Some(fit) = fit {
            let x_min = drawn.iter().map(|p| p.x).fold(f64::INFINITY, f64::min);
            let x_max = drawn.iter().map(|p| p.x).fold(f64::NEG_INFINITY, f64::max);
            let from = frame.to_pixel(x_min, fit.at(x_min));
            let to = frame.to_pixel(x_max, fit.at(x_max));
            scene
                .elements
                .push(chart::line("fit", from, to, FIT, 1.5 * sf));
        }
        for point in &drawn {
            if let Some(err) = point.err_y.filter(|&e| e > 0.0) {
                let (px, top) = frame.to_pixel(point.x, point.y + err);
                let (_, bottom) = frame.to_pixel(point.x, point.y - err);
                let color = color_of(point);
                let cap = 4.0 * sf;
                for (from, to) in [
                    ((px, top), (px, bottom)),
                    ((px - cap, top), (px + cap, top)),
                    ((px - cap, bottom), (px + cap, bottom)),
                ] {
                    let mut bar = chart::line("error-bar", from, to, color, sf);
                    bar.key = Some(point.label.clone());
                    scene.elements.push(bar);
                }
            }
        }
        let r = 4.0 * sf;
        for point in &drawn {
            let (cx, cy) = frame.to_pixel(point.x, point.y);
            scene.elements.push(Element::keyed(
                "point",
                &point.label,
                Shape::Circle {
                    cx,
                    cy,
                    r,
                    fill: Some(color_of(point)),
                    stroke: Some(Stroke {
                        color: Rgb::WHITE,
                        width: 0.75 * sf,
                    }),
                },
            ));
        }
        for point in drawn.iter().filter(|p| !p.label.is_empty()) {
            let (cx, cy) = frame.to_pixel(point.x, point.y);
            // Right of the point, or left of it where the label would leave the plot area.
            let fits_right = cx + r + 3.0 * sf + text_width(&point.label, s) <= frame.area.right;
            let (x, anchor) = if fits_right {
                (cx + r + 3.0 * sf, Anchor::Start)
            } else {
                (cx - r - 3.0 * sf, Anchor::End)
            };
            let mut label = chart::text("point-label", x, cy - r, &point.label, s, anchor);
            label.key = Some(point.label.clone());
            scene.elements.push(label);
        }
        Ok(scene)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_on_a_line_is_exact() {
        let fit = least_squares(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert_eq!(
            (fit.slope, fit.intercept, fit.r, fit.n),
            (2.0, 1.0, Some(1.0), 3)
        );
    }

    #[test]
    fn least_squares_needs_two_distinct_x() {
        assert_eq!(least_squares(&[(1.0, 2.0)]), None);
        assert_eq!(least_squares(&[(1.0, 2.0), (1.0, 3.0)]), None);
        let flat = least_squares(&[(1.0, 2.0), (3.0, 2.0)]).unwrap();
        assert_eq!((flat.slope, flat.r), (0.0, None));
    }

    #[test]
    fn fit_legend_writes_the_equation() {
        let fit = LinearFit {
            slope: 0.5,
            intercept: -1.25,
            r: Some(0.9),
            n: 4,
        };
        let texts: Vec<String> = fit_legend(Some(&fit)).into_iter().map(|e| e.text).collect();
        assert_eq!(texts, ["y = 0.500x - 1.25", "r = 0.900, n = 4"]);
    }
}
