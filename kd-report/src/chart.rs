//! What every figure shares: the image sizes it accepts, its title and axis labels, and for the
//! x–y charts (scatter, lines) the plot area with its axes, grid, ticks and legend.

use crate::axis::Axis;
use crate::color::Rgb;
use crate::error::{ReportError, Result};
use crate::font;
use crate::scene::{Anchor, Element, Scene, Shape, Stroke, text_width};

/// The size [`crate::Plot::to_svg`] lays a figure out at.
pub const SVG_SIZE: (u32, u32) = (640, 480);
/// The size [`crate::Plot::write`] renders the PNG at: the SVG's layout at twice the scale.
pub const PNG_SIZE: (u32, u32) = (1280, 960);
/// The smallest width and height a figure can be laid out in.
pub const MIN_SIZE: (u32, u32) = (160, 120);
/// The largest width or height.
pub const MAX_SIDE: u32 = 8192;

pub(crate) const TEXT: Rgb = Rgb::hex(0x222222);
const NOTE: Rgb = Rgb::hex(0x8a4b00);
const FRAME: Rgb = Rgb::hex(0x444444);
const GRID: Rgb = Rgb::hex(0xe8e8e8);
const LEGEND_BORDER: Rgb = Rgb::hex(0xcccccc);

/// The layout scale for an image: 1 up to 1280×960, then one more per 640×480 — text, markers
/// and margins grow with it, so a PNG at twice the SVG's size looks like the SVG.
pub(crate) fn scale(width: u32, height: u32) -> Result<u32> {
    let (min_width, min_height) = MIN_SIZE;
    if !(min_width..=MAX_SIDE).contains(&width) || !(min_height..=MAX_SIDE).contains(&height) {
        return Err(ReportError::ImageSize {
            width,
            height,
            min_width,
            min_height,
            max: MAX_SIDE,
        });
    }
    Ok((width / SVG_SIZE.0).min(height / SVG_SIZE.1).max(1))
}

/// The rectangle data is drawn in, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotArea {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Right edge.
    pub right: f64,
    /// Bottom edge.
    pub bottom: f64,
}

impl PlotArea {
    /// Width in pixels.
    pub fn width(&self) -> f64 {
        self.right - self.left
    }

    /// Height in pixels.
    pub fn height(&self) -> f64 {
        self.bottom - self.top
    }
}

/// An x–y chart's plot area and axes: where a data point lands in the image.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The plot area; the axes' ranges span it exactly.
    pub area: PlotArea,
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis (its low end at the bottom).
    pub y: Axis,
}

impl Frame {
    /// The pixel at data coordinates `(x, y)`.
    pub fn to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.area.left + self.x.fraction(x) * self.area.width(),
            self.area.bottom - self.y.fraction(y) * self.area.height(),
        )
    }
}

/// The text above and beside a figure.
pub(crate) struct Labels<'a> {
    pub title: &'a str,
    /// A line under the title, e.g. how many values were skipped.
    pub note: Option<String>,
    pub x_label: &'a str,
    pub y_label: &'a str,
}

impl Labels<'_> {
    /// The SVG `<title>`: the title and the note.
    pub fn svg_title(&self) -> String {
        match &self.note {
            Some(note) if self.title.is_empty() => note.clone(),
            Some(note) => format!("{} ({note})", self.title),
            None => self.title.to_owned(),
        }
    }

    /// The height above the plot area: the title and note lines with padding.
    pub fn top(&self, s: f64) -> f64 {
        let title = if self.title.is_empty() { 0.0 } else { 20.0 * s };
        let note = if self.note.is_some() { 12.0 * s } else { 0.0 };
        10.0 * s + title + note + 8.0 * s
    }

    /// The height below the plot area: ticks, tick labels, the x label, padding.
    pub fn bottom(&self, s: f64) -> f64 {
        let label = if self.x_label.is_empty() {
            0.0
        } else {
            16.0 * s
        };
        8.0 * s + 10.0 * s + label + 10.0 * s
    }

    /// The width left of the tick labels: padding and the y label.
    pub fn left(&self, s: f64) -> f64 {
        let label = if self.y_label.is_empty() {
            0.0
        } else {
            16.0 * s
        };
        8.0 * s + label
    }

    /// The title, note and axis labels around `area` in a `width`-wide image.
    pub fn elements(&self, area: &PlotArea, width: f64, s: u32) -> Vec<Element> {
        let sf = f64::from(s);
        let mut out = Vec::new();
        let mut y = 10.0 * sf;
        if !self.title.is_empty() {
            // Twice the text size, or smaller so that a long title still fits the width.
            let room = width - 16.0 * sf;
            let fitting = (1..=2 * s)
                .rev()
                .find(|&k| text_width(self.title, k) <= room);
            let (title, title_scale) = match fitting {
                Some(k) => (self.title.to_owned(), k),
                // Cut to the width at the smallest size; the SVG's <title> keeps all of it.
                None => {
                    let chars = (room / sf + 1.0) / f64::from(font::ADVANCE);
                    (shorten(self.title, chars.max(1.0) as usize), s)
                }
            };
            out.push(text(
                "title",
                width / 2.0,
                y + 7.0 * sf,
                &title,
                title_scale,
                Anchor::Middle,
            ));
            y += 20.0 * sf;
        }
        if let Some(note) = &self.note {
            let mut element = text("note", width / 2.0, y + 4.0 * sf, note, s, Anchor::Middle);
            if let Shape::Text { color, .. } = &mut element.shape {
                *color = NOTE;
            }
            out.push(element);
        }
        if !self.x_label.is_empty() {
            let y = area.bottom + 8.0 * sf + 10.0 * sf + 6.0 * sf + 5.0 * sf;
            let x = (area.left + area.right) / 2.0;
            out.push(text("x-label", x, y, self.x_label, s, Anchor::Middle));
        }
        if !self.y_label.is_empty() {
            let y = (area.top + area.bottom) / 2.0;
            let mut element = text(
                "y-label",
                8.0 * sf + 5.0 * sf,
                y,
                self.y_label,
                s,
                Anchor::Middle,
            );
            if let Shape::Text { vertical, .. } = &mut element.shape {
                *vertical = true;
            }
            out.push(element);
        }
        out
    }
}

/// A horizontal line of text in the default colour.
pub(crate) fn text(
    class: &'static str,
    x: f64,
    y: f64,
    text: &str,
    scale: u32,
    anchor: Anchor,
) -> Element {
    Element::new(
        class,
        Shape::Text {
            x,
            y,
            text: text.to_owned(),
            scale,
            anchor,
            color: TEXT,
            vertical: false,
        },
    )
}

/// A straight line.
pub(crate) fn line(
    class: &'static str,
    from: (f64, f64),
    to: (f64, f64),
    color: Rgb,
    width: f64,
) -> Element {
    Element::new(
        class,
        Shape::Line {
            from,
            to,
            stroke: Stroke { color, width },
        },
    )
}

/// The "n non-finite … skipped" note, or none for zero.
pub(crate) fn skipped_note(count: usize, one: &str, many: &str) -> Option<String> {
    match count {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    }
}

/// What a legend entry shows before its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Point,
    Line,
    /// Nothing: a continuation line, e.g. a fit's r.
    None,
}

/// One line of a legend.
#[derive(Clone)]
pub(crate) struct LegendEntry {
    pub marker: Marker,
    pub color: Rgb,
    pub text: String,
}

/// An x–y chart before its data: labels, data ranges and legend.
pub(crate) struct XyChart<'a> {
    pub labels: Labels<'a>,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    pub legend: Vec<LegendEntry>,
}

/// The legend's sizes at scale `s`: padding, marker width and gap before the text, line height.
const LEGEND_PAD: f64 = 8.0;
const LEGEND_MARKER: f64 = 16.0;
const LEGEND_GAP: f64 = 6.0;
const LEGEND_LINE: f64 = 14.0;

impl XyChart<'_> {
    /// The plot area and axes in a `width × height` image.
    ///
    /// # Errors
    /// An image size outside [`MIN_SIZE`] ..= [`MAX_SIDE`], or a data range too wide for an axis.
    pub fn frame(&self, width: u32, height: u32) -> Result<Frame> {
        let s = f64::from(scale(width, height)?);
        let (w, h) = (f64::from(width), f64::from(height));
        let top = self.labels.top(s);
        let bottom = h - self.labels.bottom(s);
        let y_target = ((bottom - top) / (60.0 * s)).round() as usize;
        let y = Axis::covering(
            "y axis",
            self.y_range.0,
            self.y_range.1,
            y_target.clamp(3, 10),
        )?;
        let y_labels = widest(&y.labels(), s);
        let left = (self.labels.left(s) + y_labels + 8.0 * s).min(0.35 * w);
        let legend = legend_width(&self.shown_legend(bottom - top, w, s), s);
        let right = w - 12.0 * s - if legend > 0.0 { legend + 10.0 * s } else { 0.0 };
        let area_width = (right - left).max(1.0);
        // Fewer x ticks until their labels fit side by side.
        let mut x_target = (area_width / (80.0 * s)).round().clamp(3.0, 10.0) as usize;
        let x = loop {
            let x = Axis::covering("x axis", self.x_range.0, self.x_range.1, x_target)?;
            let room = area_width / x.ticks().len().max(1) as f64;
            if widest(&x.labels(), s) + 10.0 * s <= room || x_target <= 3 {
                break x;
            }
            x_target -= 1;
        };
        Ok(Frame {
            area: PlotArea {
                left,
                top,
                right: left + area_width,
                bottom: bottom.max(top + 1.0),
            },
            x,
            y,
        })
    }

    /// The legend entries that fit beside a plot area `height` high in an image `width` wide:
    /// all of them, or as many as fit less one, then "+ n more"; texts cut with "…" to keep the
    /// legend within 30 % of the width.
    fn shown_legend(&self, height: f64, width: f64, s: f64) -> Vec<LegendEntry> {
        let lines = ((height / s - 2.0 * LEGEND_PAD) / LEGEND_LINE)
            .floor()
            .max(1.0) as usize;
        let mut shown = if self.legend.len() <= lines {
            self.legend.clone()
        } else {
            let mut shown = self.legend[..lines - 1].to_vec();
            shown.push(LegendEntry {
                marker: Marker::None,
                color: TEXT,
                text: format!("+ {} more", self.legend.len() - (lines - 1)),
            });
            shown
        };
        let room = 0.3 * width / s - 2.0 * LEGEND_PAD - LEGEND_MARKER - LEGEND_GAP;
        let chars = ((room + 1.0) / f64::from(font::ADVANCE)).floor().max(1.0) as usize;
        for entry in &mut shown {
            entry.text = shorten(&entry.text, chars);
        }
        shown
    }

    /// The scene with the frame drawn (grid, plot-area outline, ticks, labels, legend) and no
    /// data yet.
    pub fn scene(&self, frame: &Frame, width: u32, height: u32) -> Scene {
        let s = scale(width, height).unwrap_or(1);
        let sf = f64::from(s);
        let area = frame.area;
        let mut elements = Vec::new();
        for (tick, label) in frame.x.ticks().iter().zip(frame.x.labels()) {
            let (px, _) = frame.to_pixel(*tick, frame.y.lo());
            elements.push(line("grid", (px, area.top), (px, area.bottom), GRID, sf));
            elements.push(line(
                "tick",
                (px, area.bottom),
                (px, area.bottom + 4.0 * sf),
                FRAME,
                sf,
            ));
            let mut label = text(
                "tick-label",
                px,
                area.bottom + 8.0 * sf + 5.0 * sf,
                &label,
                s,
                Anchor::Middle,
            );
            label.key = Some("x".into());
            elements.push(label);
        }
        for (tick, label) in frame.y.ticks().iter().zip(frame.y.labels()) {
            let (_, py) = frame.to_pixel(frame.x.lo(), *tick);
            elements.push(line("grid", (area.left, py), (area.right, py), GRID, sf));
            elements.push(line(
                "tick",
                (area.left - 4.0 * sf, py),
                (area.left, py),
                FRAME,
                sf,
            ));
            let mut label = text(
                "tick-label",
                area.left - 8.0 * sf,
                py,
                &label,
                s,
                Anchor::End,
            );
            label.key = Some("y".into());
            elements.push(label);
        }
        elements.push(Element::new(
            "plot-area",
            Shape::Rect {
                x: area.left,
                y: area.top,
                width: area.width(),
                height: area.height(),
                fill: None,
                stroke: Some(Stroke {
                    color: FRAME,
                    width: sf,
                }),
            },
        ));
        elements.extend(self.labels.elements(&area, f64::from(width), s));
        self.legend_elements(&area, width, s, &mut elements);
        Scene {
            width,
            height,
            title: self.labels.svg_title(),
            elements,
        }
    }

    fn legend_elements(&self, area: &PlotArea, width: u32, s: u32, out: &mut Vec<Element>) {
        let sf = f64::from(s);
        let legend = self.shown_legend(area.height(), f64::from(width), sf);
        if legend.is_empty() {
            return;
        }
        let left = area.right + 10.0 * sf;
        let width = legend_width(&legend, sf);
        let height = (2.0 * LEGEND_PAD + LEGEND_LINE * legend.len() as f64) * sf;
        out.push(Element::new(
            "legend",
            Shape::Rect {
                x: left,
                y: area.top,
                width,
                height,
                fill: Some(crate::scene::Paint::Solid(Rgb::WHITE)),
                stroke: Some(Stroke {
                    color: LEGEND_BORDER,
                    width: sf,
                }),
            },
        ));
        let marker_left = left + LEGEND_PAD * sf;
        let marker_mid = marker_left + LEGEND_MARKER * sf / 2.0;
        for (i, entry) in legend.iter().enumerate() {
            let y = area.top + (LEGEND_PAD + LEGEND_LINE * (i as f64 + 0.5)) * sf;
            match entry.marker {
                Marker::Point => out.push(Element::keyed(
                    "legend-marker",
                    &entry.text,
                    Shape::Circle {
                        cx: marker_mid,
                        cy: y,
                        r: 4.0 * sf,
                        fill: Some(entry.color),
                        stroke: None,
                    },
                )),
                Marker::Line => {
                    let to = (marker_left + LEGEND_MARKER * sf, y);
                    let mut element =
                        line("legend-marker", (marker_left, y), to, entry.color, 2.0 * sf);
                    element.key = Some(entry.text.clone());
                    out.push(element);
                }
                Marker::None => {}
            }
            let x = marker_left + (LEGEND_MARKER + LEGEND_GAP) * sf;
            out.push(text("legend-text", x, y, &entry.text, s, Anchor::Start));
        }
    }
}

/// `text` cut to at most `chars` characters, the last of them "…" when anything was cut.
pub(crate) fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// The width of a legend box holding `entries` at scale `s`; 0 for none.
fn legend_width(entries: &[LegendEntry], s: f64) -> f64 {
    let texts: Vec<String> = entries.iter().map(|e| e.text.clone()).collect();
    if texts.is_empty() {
        return 0.0;
    }
    (2.0 * LEGEND_PAD + LEGEND_MARKER + LEGEND_GAP) * s + widest(&texts, s)
}

/// The width of the widest of `texts` at scale `s`.
pub(crate) fn widest(texts: &[String], s: f64) -> f64 {
    texts
        .iter()
        .map(|t| text_width(t, 1) * s)
        .fold(0.0, f64::max)
}
