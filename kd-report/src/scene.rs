//! A figure laid out in pixels: a list of shapes that both renderers draw, so the SVG and the
//! PNG of a figure show the same thing. `to_svg` writes it as SVG text; the `raster` module
//! paints it into an RGB image.

use crate::color::{Colormap, Rgb};
use crate::font;
use std::fmt::Write;

/// The monospace fonts an SVG viewer is asked for; their advance is 0.6 em, the bitmap font's.
const SVG_FONTS: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";

/// A figure in pixel coordinates (origin top left, y down), drawn in order over a white
/// background.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The SVG `<title>`: the figure's title, with a note of any skipped values.
    pub title: String,
    /// The shapes, back to front.
    pub elements: Vec<Element>,
}

/// One shape with what it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// What the shape is, written as the SVG `class`: `point`, `error-bar`, `fit`, `series`,
    /// `cell`, `cell-missing`, `cell-value`, `plot-area`, `tick`, `tick-label`, …
    pub class: &'static str,
    /// What it belongs to, written as `data-key`: a point's label, a series' name, a cell's
    /// `row,column`.
    pub key: Option<String>,
    /// The shape.
    pub shape: Shape,
}

/// A line's colour and width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stroke {
    /// The colour.
    pub color: Rgb,
    /// The width in pixels.
    pub width: f64,
}

/// How the inside of a rectangle is painted.
#[derive(Debug, Clone, PartialEq)]
pub enum Paint {
    /// One colour.
    Solid(Rgb),
    /// Diagonal stripes (rising to the right) over a background: a missing value.
    Hatch {
        /// The background colour.
        background: Rgb,
        /// The stripes' colour.
        stripe: Rgb,
        /// The distance between stripes, in pixels.
        spacing: f64,
    },
    /// A colour map from the bottom edge (0) to the top edge (1): a colour bar.
    Gradient(Colormap),
}

/// Where a text's anchor point lies along the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// At its start.
    Start,
    /// At its middle.
    Middle,
    /// At its end.
    End,
}

/// A shape in pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A straight line.
    Line {
        /// One end.
        from: (f64, f64),
        /// The other end.
        to: (f64, f64),
        /// Its colour and width.
        stroke: Stroke,
    },
    /// Connected straight lines through `points`.
    Polyline {
        /// The vertices, in order.
        points: Vec<(f64, f64)>,
        /// Its colour and width.
        stroke: Stroke,
    },
    /// An axis-aligned rectangle.
    Rect {
        /// Left edge.
        x: f64,
        /// Top edge.
        y: f64,
        /// Width.
        width: f64,
        /// Height.
        height: f64,
        /// The inside, if painted.
        fill: Option<Paint>,
        /// The outline, if drawn.
        stroke: Option<Stroke>,
    },
    /// A circle.
    Circle {
        /// Centre x.
        cx: f64,
        /// Centre y.
        cy: f64,
        /// Radius.
        r: f64,
        /// The inside, if painted.
        fill: Option<Rgb>,
        /// The outline, if drawn.
        stroke: Option<Stroke>,
    },
    /// One line of text.
    Text {
        /// The anchor's x.
        x: f64,
        /// The anchor's y: the middle of a capital letter's height.
        y: f64,
        /// The text.
        text: String,
        /// The size, in multiples of the bitmap font: a character is `6·scale` pixels wide.
        scale: u32,
        /// Where `(x, y)` lies along the text.
        anchor: Anchor,
        /// The colour.
        color: Rgb,
        /// Rotated a quarter turn counter-clockwise (read bottom to top), about `(x, y)`.
        vertical: bool,
    },
}

/// The width in pixels of `text` at `scale`, in the bitmap font (and, closely, in the SVG's).
pub fn text_width(text: &str, scale: u32) -> f64 {
    let chars = text.chars().count() as f64;
    (chars * f64::from(font::ADVANCE) - 1.0).max(0.0) * f64::from(scale)
}

/// The height in pixels of a capital at `scale`.
pub fn cap_height(scale: u32) -> f64 {
    (font::CAP_ROWS as u32 * scale).into()
}

impl Element {
    /// An element without a key.
    pub fn new(class: &'static str, shape: Shape) -> Self {
        Self {
            class,
            key: None,
            shape,
        }
    }

    /// An element with a key.
    pub fn keyed(class: &'static str, key: impl Into<String>, shape: Shape) -> Self {
        Self {
            class,
            key: Some(key.into()),
            shape,
        }
    }
}

impl Scene {
    /// The scene as a standalone SVG document. The same scene always gives the same bytes:
    /// coordinates are written with two decimals, and paints that need a definition are numbered
    /// in order of first use.
    pub fn to_svg(&self) -> String {
        let defs = Defs::collect(&self.elements);
        let mut svg = String::new();
        let (w, h) = (self.width, self.height);
        let _ = writeln!(svg, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{SVG_FONTS}">"#
        );
        let _ = writeln!(svg, "<title>{}</title>", escape(&self.title));
        defs.write(&mut svg);
        let _ = writeln!(
            svg,
            r#"<rect class="background" x="0" y="0" width="{w}" height="{h}" fill="{}"/>"#,
            Rgb::WHITE
        );
        for element in &self.elements {
            write_element(&mut svg, element, &defs);
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// The paints that SVG draws through a `<defs>` entry, numbered by first use.
struct Defs<'a> {
    paints: Vec<&'a Paint>,
}

impl<'a> Defs<'a> {
    fn collect(elements: &'a [Element]) -> Self {
        let mut paints: Vec<&Paint> = Vec::new();
        for element in elements {
            if let Shape::Rect {
                fill: Some(paint @ (Paint::Hatch { .. } | Paint::Gradient(_))),
                ..
            } = &element.shape
                && !paints.contains(&paint)
            {
                paints.push(paint);
            }
        }
        Self { paints }
    }

    /// The SVG `fill` value of `paint`.
    fn fill(&self, paint: &Paint) -> String {
        match paint {
            Paint::Solid(color) => color.to_string(),
            _ => {
                let i = self.paints.iter().position(|p| *p == paint).unwrap_or(0);
                format!("url(#paint{i})")
            }
        }
    }

    fn write(&self, svg: &mut String) {
        if self.paints.is_empty() {
            return;
        }
        svg.push_str("<defs>\n");
        for (i, paint) in self.paints.iter().enumerate() {
            match paint {
                Paint::Hatch {
                    background,
                    stripe,
                    spacing,
                } => {
                    let s = num(*spacing);
                    let line = num(spacing / 3.0);
                    let _ = writeln!(
                        svg,
                        r#"<pattern id="paint{i}" patternUnits="userSpaceOnUse" width="{s}" height="{s}" patternTransform="rotate(45)"><rect x="0" y="0" width="{s}" height="{s}" fill="{background}"/><line x1="0" y1="0" x2="0" y2="{s}" stroke="{stripe}" stroke-width="{line}"/></pattern>"#
                    );
                }
                Paint::Gradient(map) => {
                    let _ = writeln!(
                        svg,
                        r#"<linearGradient id="paint{i}" x1="0" y1="1" x2="0" y2="0">"#
                    );
                    let last = map.anchors().len() - 1;
                    for (j, color) in map.anchors().iter().enumerate() {
                        let offset = num(j as f64 / last as f64);
                        let _ = writeln!(svg, r#"<stop offset="{offset}" stop-color="{color}"/>"#);
                    }
                    svg.push_str("</linearGradient>\n");
                }
                Paint::Solid(_) => {}
            }
        }
        svg.push_str("</defs>\n");
    }
}

fn write_element(svg: &mut String, element: &Element, defs: &Defs) {
    let mut head = format!(r#"class="{}""#, element.class);
    if let Some(key) = &element.key {
        let _ = write!(head, r#" data-key="{}""#, escape(key));
    }
    let stroke_attrs = |stroke: &Option<Stroke>| match stroke {
        Some(s) => format!(r#" stroke="{}" stroke-width="{}""#, s.color, num(s.width)),
        None => String::new(),
    };
    let _ = match &element.shape {
        Shape::Line { from, to, stroke } => writeln!(
            svg,
            r#"<line {head} x1="{}" y1="{}" x2="{}" y2="{}"{}/>"#,
            num(from.0),
            num(from.1),
            num(to.0),
            num(to.1),
            stroke_attrs(&Some(*stroke))
        ),
        Shape::Polyline { points, stroke } => {
            let points: Vec<String> = points
                .iter()
                .map(|&(x, y)| format!("{},{}", num(x), num(y)))
                .collect();
            writeln!(
                svg,
                r#"<polyline {head} points="{}" fill="none"{} stroke-linejoin="round" stroke-linecap="round"/>"#,
                points.join(" "),
                stroke_attrs(&Some(*stroke))
            )
        }
        Shape::Rect {
            x,
            y,
            width,
            height,
            fill,
            stroke,
        } => {
            // Filled tiles (heatmap cells) meet edge to edge: without crisp edges a viewer
            // that scales the figure anti-aliases both edges and shows a seam between them.
            let crisp = if fill.is_some() && stroke.is_none() {
                r#" shape-rendering="crispEdges""#
            } else {
                ""
            };
            let fill = fill.as_ref().map_or("none".to_owned(), |p| defs.fill(p));
            writeln!(
                svg,
                r#"<rect {head} x="{}" y="{}" width="{}" height="{}" fill="{fill}"{}{crisp}/>"#,
                num(*x),
                num(*y),
                num(*width),
                num(*height),
                stroke_attrs(stroke)
            )
        }
        Shape::Circle {
            cx,
            cy,
            r,
            fill,
            stroke,
        } => {
            let fill = fill.map_or("none".to_owned(), |c| c.to_string());
            writeln!(
                svg,
                r#"<circle {head} cx="{}" cy="{}" r="{}" fill="{fill}"{}/>"#,
                num(*cx),
                num(*cy),
                num(*r),
                stroke_attrs(stroke)
            )
        }
        Shape::Text {
            x,
            y,
            text,
            scale,
            anchor,
            color,
            vertical,
        } => {
            let anchor = match anchor {
                Anchor::Start => "start",
                Anchor::Middle => "middle",
                Anchor::End => "end",
            };
            let (x, y) = (num(*x), num(*y));
            let rotate = if *vertical {
                format!(r#" transform="rotate(-90 {x} {y})""#)
            } else {
                String::new()
            };
            let size = font::LINE_HEIGHT * scale;
            writeln!(
                svg,
                r#"<text {head} x="{x}" y="{y}" font-size="{size}" text-anchor="{anchor}" dominant-baseline="central" fill="{color}"{rotate}>{}</text>"#,
                escape(text)
            )
        }
    };
}

/// A coordinate with at most two decimals, without trailing zeros or a negative zero; a
/// non-finite value (which layout never makes) as 0 so the document stays valid.
pub(crate) fn num(value: f64) -> String {
    if !value.is_finite() {
        return "0".to_owned();
    }
    let text = crate::format::fmt_fixed(value, 2);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "" | "-" => "0".to_owned(),
        t => t.to_owned(),
    }
}

/// `text` as XML character data or an attribute value: markup characters escaped, line breaks
/// as spaces, and characters XML 1.0 forbids replaced by U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_never_negative_zero() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(100.0), "100");
        assert_eq!(num(f64::NAN), "0");
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b & \"c\"\n"), "a&lt;b &amp; &quot;c&quot; ");
        assert_eq!(escape("\u{0}x"), "\u{FFFD}x");
    }
}
