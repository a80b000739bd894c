//! Painting a [`Scene`] into an RGB image: shapes with coverage-based anti-aliasing (a pixel's
//! share of the shape, computed from its centre's distance to the shape's edge), text with the
//! bitmap font at integer scales. Everything is arithmetic that IEEE 754 rounds exactly (no
//! libm calls), so the same scene gives the same pixels on every machine.

use crate::color::Rgb;
use crate::font;
use crate::scene::{Anchor, Paint, Scene, Shape, Stroke, text_width};
use image::RgbImage;

impl Scene {
    /// The scene painted into a `width × height` image over white.
    pub fn rasterize(&self) -> RgbImage {
        let mut canvas = Canvas::new(self.width, self.height);
        for element in &self.elements {
            canvas.draw(&element.shape);
        }
        canvas.image
    }
}

struct Canvas {
    image: RgbImage,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Self {
        Self {
            image: RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255])),
        }
    }

    /// Blends `color` into pixel `(x, y)` with opacity `alpha`; pixels outside are ignored.
    fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f64) {
        if alpha <= 0.0 || x < 0 || y < 0 || x >= self.image.width().into() {
            return;
        }
        if y >= self.image.height().into() {
            return;
        }
        let pixel = self.image.get_pixel_mut(x as u32, y as u32);
        let [r, g, b] = pixel.0;
        let Rgb(r, g, b) = color.over(Rgb(r, g, b), alpha);
        pixel.0 = [r, g, b];
    }

    /// The pixel rows or columns `[lo − margin, hi + margin]` that exist in an image of `len`.
    fn span(lo: f64, hi: f64, margin: f64, len: u32) -> std::ops::Range<i64> {
        let start = (lo - margin).floor().max(0.0);
        let end = (hi + margin).ceil().min(f64::from(len));
        if start.is_finite() && end.is_finite() && start < end {
            start as i64..end as i64
        } else {
            0..0
        }
    }

    fn draw(&mut self, shape: &Shape) {
        match shape {
            Shape::Line { from, to, stroke } => self.line(*from, *to, *stroke),
            Shape::Polyline { points, stroke } => {
                for pair in points.windows(2) {
                    self.line(pair[0], pair[1], *stroke);
                }
            }
            Shape::Rect {
                x,
                y,
                width,
                height,
                fill,
                stroke,
            } => {
                if let Some(paint) = fill {
                    self.rect(*x, *y, *width, *height, paint);
                }
                if let Some(stroke) = stroke {
                    let (l, t, r, b) = (*x, *y, x + width, y + height);
                    for (from, to) in [
                        ((l, t), (r, t)),
                        ((r, t), (r, b)),
                        ((r, b), (l, b)),
                        ((l, b), (l, t)),
                    ] {
                        self.line(from, to, *stroke);
                    }
                }
            }
            Shape::Circle {
                cx,
                cy,
                r,
                fill,
                stroke,
            } => self.circle(*cx, *cy, *r, *fill, *stroke),
            Shape::Text {
                x,
                y,
                text,
                scale,
                anchor,
                color,
                vertical,
            } => self.text(*x, *y, text, *scale, *anchor, *color, *vertical),
        }
    }

    /// A segment with round caps: a pixel is covered by how far its centre lies inside the
    /// half-width, softened over one pixel.
    fn line(&mut self, from: (f64, f64), to: (f64, f64), stroke: Stroke) {
        let half = stroke.width / 2.0;
        let (w, h) = self.image.dimensions();
        for py in Self::span(from.1.min(to.1), from.1.max(to.1), half + 1.0, h) {
            for px in Self::span(from.0.min(to.0), from.0.max(to.0), half + 1.0, w) {
                let centre = (px as f64 + 0.5, py as f64 + 0.5);
                let d = distance_to_segment(centre, from, to);
                self.blend(px, py, stroke.color, (half + 0.5 - d).min(1.0));
            }
        }
    }

    /// A filled rectangle, edge pixels covered by the share of their area inside it.
    fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, paint: &Paint) {
        let (w, h) = self.image.dimensions();
        let overlap = |p: i64, lo: f64, hi: f64| ((p + 1) as f64).min(hi) - (p as f64).max(lo);
        for py in Self::span(y, y + height, 0.0, h) {
            let cover_y = overlap(py, y, y + height).clamp(0.0, 1.0);
            let color_of_row = match paint {
                Paint::Gradient(map) => Some(map.at((y + height - (py as f64 + 0.5)) / height)),
                _ => None,
            };
            for px in Self::span(x, x + width, 0.0, w) {
                let cover = overlap(px, x, x + width).clamp(0.0, 1.0) * cover_y;
                let color = match paint {
                    Paint::Solid(color) => *color,
                    Paint::Gradient(_) => color_of_row.unwrap_or(Rgb::WHITE),
                    Paint::Hatch {
                        background,
                        stripe,
                        spacing,
                    } => {
                        // The SVG pattern's period across its 45° stripes is `spacing`; along
                        // x + y that is √2 times as long.
                        let period = (spacing * std::f64::consts::SQRT_2).max(2.0);
                        if ((px + py) as f64).rem_euclid(period) < period / 3.0 {
                            *stripe
                        } else {
                            *background
                        }
                    }
                };
                self.blend(px, py, color, cover);
            }
        }
    }

    fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: Option<Rgb>, stroke: Option<Stroke>) {
        let half = stroke.map_or(0.0, |s| s.width / 2.0);
        let (w, h) = self.image.dimensions();
        for py in Self::span(cy - r, cy + r, half + 1.0, h) {
            for px in Self::span(cx - r, cx + r, half + 1.0, w) {
                let d = length(px as f64 + 0.5 - cx, py as f64 + 0.5 - cy);
                if let Some(color) = fill {
                    self.blend(px, py, color, (r + 0.5 - d).min(1.0));
                }
                if let Some(stroke) = stroke {
                    self.blend(px, py, stroke.color, (half + 0.5 - (d - r).abs()).min(1.0));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn text(
        &mut self,
        x: f64,
        y: f64,
        text: &str,
        scale: u32,
        anchor: Anchor,
        color: Rgb,
        vertical: bool,
    ) {
        let s = i64::from(scale.max(1));
        let width = text_width(text, scale);
        let before = match anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => width / 2.0,
            Anchor::End => width,
        };
        let half_cap = (font::CAP_ROWS as i64 * s) as f64 / 2.0;
        // (along, across) in the text's own frame, from its start and its top, to pixels.
        let (origin_along, origin_across) = if vertical {
            ((y + before).round() as i64, (x - half_cap).round() as i64)
        } else {
            ((x - before).round() as i64, (y - half_cap).round() as i64)
        };
        let advance = i64::from(font::ADVANCE) * s;
        for (i, c) in text.chars().enumerate() {
            let glyph = font::glyph_of(c);
            for (row, bits) in glyph.iter().enumerate() {
                for column in 0..font::COLUMNS {
                    if bits >> (font::COLUMNS - 1 - column) & 1 == 0 {
                        continue;
                    }
                    let along = i as i64 * advance + column as i64 * s;
                    let across = row as i64 * s;
                    for dy in 0..s {
                        for dx in 0..s {
                            let (px, py) = if vertical {
                                (origin_across + across + dy, origin_along - along - dx - 1)
                            } else {
                                (origin_along + along + dx, origin_across + across + dy)
                            };
                            self.blend(px, py, color, 1.0);
                        }
                    }
                }
            }
        }
    }
}

/// The distance from `p` to the segment `a`–`b`.
fn distance_to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    length(p.0 - a.0 - t * dx, p.1 - a.1 - t * dy)
}

/// `√(x² + y²)` through `sqrt`, which IEEE 754 rounds exactly on every platform (`hypot` comes
/// from the platform's libm and may differ in the last bit, and so change a pixel).
fn length(x: f64, y: f64) -> f64 {
    (x * x + y * y).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::Element;

    fn scene(shapes: Vec<Shape>) -> Scene {
        Scene {
            width: 40,
            height: 30,
            title: String::new(),
            elements: shapes.into_iter().map(|s| Element::new("t", s)).collect(),
        }
    }

    #[test]
    fn rect_covers_its_pixels_exactly() {
        let image = scene(vec![Shape::Rect {
            x: 10.0,
            y: 5.0,
            width: 4.0,
            height: 3.0,
            fill: Some(Paint::Solid(Rgb::BLACK)),
            stroke: None,
        }])
        .rasterize();
        let dark: Vec<(u32, u32)> = image
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 != [255, 255, 255])
            .map(|(x, y, _)| (x, y))
            .collect();
        assert_eq!(dark.len(), 12);
        assert!(
            dark.iter()
                .all(|&(x, y)| (10..14).contains(&x) && (5..8).contains(&y))
        );
    }

    #[test]
    fn circle_is_centred() {
        let image = scene(vec![Shape::Circle {
            cx: 20.0,
            cy: 15.0,
            r: 4.0,
            fill: Some(Rgb::BLACK),
            stroke: None,
        }])
        .rasterize();
        assert_eq!(image.get_pixel(19, 14).0, [0, 0, 0]);
        assert_eq!(image.get_pixel(20, 15).0, [0, 0, 0]);
        assert_eq!(image.get_pixel(20, 9).0, [255, 255, 255]);
        assert_eq!(image.get_pixel(26, 15).0, [255, 255, 255]);
    }

    #[test]
    fn shapes_outside_are_clipped() {
        let image = scene(vec![
            Shape::Line {
                from: (-100.0, -100.0),
                to: (100.0, 100.0),
                stroke: Stroke {
                    color: Rgb::BLACK,
                    width: 2.0,
                },
            },
            Shape::Text {
                x: 38.0,
                y: 28.0,
                text: "outside".into(),
                scale: 2,
                anchor: Anchor::Start,
                color: Rgb::BLACK,
                vertical: true,
            },
        ])
        .rasterize();
        assert_eq!(image.get_pixel(15, 15).0, [0, 0, 0]);
    }

    #[test]
    fn text_is_drawn_where_anchored() {
        let image = scene(vec![Shape::Text {
            x: 20.0,
            y: 15.0,
            text: "I".into(),
            scale: 1,
            anchor: Anchor::Middle,
            color: Rgb::BLACK,
            vertical: false,
        }])
        .rasterize();
        // "I" is 5 columns wide with its stem in the middle one: the stem straddles x = 20.
        let stem: Vec<u32> = (0..40)
            .filter(|&x| image.get_pixel(x, 15).0 == [0, 0, 0])
            .collect();
        assert_eq!(stem, [20]);
    }
}
