//! Colours: 8-bit RGB, the categorical palette that tells groups and series apart, and colour
//! maps interpolated between anchor colours.

use crate::error::{ReportError, Result};
use std::fmt;

/// An opaque 8-bit sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// White, the figures' background.
    pub const WHITE: Rgb = Rgb(255, 255, 255);
    /// Black, for text and fit lines.
    pub const BLACK: Rgb = Rgb(0, 0, 0);

    /// The colour from `0xRRGGBB`.
    pub const fn hex(rgb: u32) -> Rgb {
        Rgb((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8)
    }

    /// The Rec. 709 luma of the gamma-encoded channels, 0 (black) to 255 (white): a cheap
    /// lightness that is linear in the channels, so it is linear along each segment of a colour
    /// map too.
    pub fn luma(self) -> f64 {
        0.2126 * f64::from(self.0) + 0.7152 * f64::from(self.1) + 0.0722 * f64::from(self.2)
    }

    /// `self` over `below` with opacity `alpha` ∈ [0, 1], rounded to the nearest channel value.
    pub fn over(self, below: Rgb, alpha: f64) -> Rgb {
        let alpha = alpha.clamp(0.0, 1.0);
        let mix =
            |a: u8, b: u8| (f64::from(a) * alpha + f64::from(b) * (1.0 - alpha)).round() as u8;
        Rgb(
            mix(self.0, below.0),
            mix(self.1, below.1),
            mix(self.2, below.2),
        )
    }
}

impl fmt::Display for Rgb {
    /// `#rrggbb`, as SVG writes colours.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Matplotlib's "tab10": the colour of the `i`-th group or series (cycling after ten).
pub fn palette(i: usize) -> Rgb {
    const TAB10: [Rgb; 10] = [
        Rgb::hex(0x1f77b4),
        Rgb::hex(0xff7f0e),
        Rgb::hex(0x2ca02c),
        Rgb::hex(0xd62728),
        Rgb::hex(0x9467bd),
        Rgb::hex(0x8c564b),
        Rgb::hex(0xe377c2),
        Rgb::hex(0x7f7f7f),
        Rgb::hex(0xbcbd22),
        Rgb::hex(0x17becf),
    ];
    TAB10[i % TAB10.len()]
}

/// A colour map: evenly spaced anchor colours with linear interpolation between neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colormap {
    anchors: Vec<Rgb>,
}

impl Colormap {
    /// A map through `anchors`, the first at 0 and the last at 1.
    ///
    /// # Errors
    /// Fewer than two anchors.
    pub fn new(anchors: Vec<Rgb>) -> Result<Self> {
        if anchors.len() < 2 {
            return Err(ReportError::Colormap {
                anchors: anchors.len(),
            });
        }
        Ok(Self { anchors })
    }

    /// Matplotlib's viridis at nine evenly spaced points (its values at 0, 1/8, …, 1): dark
    /// violet to yellow, with lightness rising along the whole map.
    pub fn viridis() -> Self {
        Self {
            anchors: [
                0x440154, 0x472d7b, 0x3b528b, 0x2c728e, 0x21918c, 0x28ae80, 0x5ec962, 0xaddc30,
                0xfde725,
            ]
            .map(Rgb::hex)
            .to_vec(),
        }
    }

    /// The anchor colours.
    pub fn anchors(&self) -> &[Rgb] {
        &self.anchors
    }

    /// The colour at `t` ∈ [0, 1]; `t` outside is clamped and NaN reads as 0.
    pub fn at(&self, t: f64) -> Rgb {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let segments = self.anchors.len() - 1;
        let position = t * segments as f64;
        let i = (position.floor() as usize).min(segments - 1);
        let within = position - i as f64;
        self.anchors[i + 1].over(self.anchors[i], within)
    }
}

impl Default for Colormap {
    /// [`Colormap::viridis`].
    fn default() -> Self {
        Self::viridis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_midpoints() {
        let map = Colormap::new(vec![Rgb(0, 0, 0), Rgb(200, 100, 50)]).unwrap();
        assert_eq!(map.at(0.0), Rgb(0, 0, 0));
        assert_eq!(map.at(1.0), Rgb(200, 100, 50));
        assert_eq!(map.at(0.5), Rgb(100, 50, 25));
        assert_eq!(map.at(-3.0), Rgb(0, 0, 0));
        assert_eq!(map.at(f64::NAN), Rgb(0, 0, 0));
        assert_eq!(Colormap::viridis().at(0.5), Rgb::hex(0x21918c));
    }

    #[test]
    fn viridis_lightness_rises() {
        let map = Colormap::viridis();
        let lumas: Vec<f64> = (0..=256)
            .map(|i| map.at(f64::from(i) / 256.0).luma())
            .collect();
        // Exactly monotone between anchors before rounding; rounding each channel to 8 bits can
        // take back less than half a level.
        assert!(lumas.windows(2).all(|w| w[1] >= w[0] - 0.5), "{lumas:?}");
        assert!(lumas[256] - lumas[0] > 150.0);
    }

    #[test]
    fn one_anchor_is_an_error() {
        assert!(Colormap::new(vec![Rgb::WHITE]).is_err());
    }

    #[test]
    fn hex_and_display() {
        assert_eq!(Rgb::hex(0x1f77b4), Rgb(0x1f, 0x77, 0xb4));
        assert_eq!(Rgb(1, 2, 255).to_string(), "#0102ff");
    }
}
