//! The figure trait: every plot lays itself out as a [`Scene`], which renders to SVG and PNG.

use crate::chart::{PNG_SIZE, SVG_SIZE};
use crate::error::Result;
use crate::output;
use crate::scene::Scene;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// A figure that can be drawn at any size in [`crate::MIN_SIZE`] ..= [`crate::MAX_SIDE`].
///
/// Only [`Plot::scene`] is required; the outputs follow from it, so a figure's SVG and PNG
/// always show the same layout, and the same figure always gives the same bytes.
pub trait Plot {
    /// The figure laid out in a `width × height` image.
    ///
    /// # Errors
    /// Data that cannot be drawn (nothing finite to draw, mismatched lengths, a negative error
    /// bar, a range too wide for an axis) or a size outside the limits.
    fn scene(&self, width: u32, height: u32) -> Result<Scene>;

    /// The figure as SVG at [`crate::SVG_SIZE`].
    ///
    /// # Errors
    /// As [`Plot::scene`].
    fn to_svg(&self) -> Result<String> {
        self.to_svg_sized(SVG_SIZE.0, SVG_SIZE.1)
    }

    /// The figure as SVG at `width × height`.
    ///
    /// # Errors
    /// As [`Plot::scene`].
    fn to_svg_sized(&self, width: u32, height: u32) -> Result<String> {
        Ok(self.scene(width, height)?.to_svg())
    }

    /// The figure as a `width × height` RGB image.
    ///
    /// # Errors
    /// As [`Plot::scene`].
    fn to_png(&self, width: u32, height: u32) -> Result<RgbImage> {
        Ok(self.scene(width, height)?.rasterize())
    }

    /// Writes `<stem>.svg` (at [`crate::SVG_SIZE`]) and `<stem>.png` (at [`crate::PNG_SIZE`]),
    /// each through a temporary file in the same directory renamed into place, so a reader
    /// never sees half a file; creates the directory if needed. Both are rendered before
    /// either is written. Returns the two paths, SVG first.
    ///
    /// # Errors
    /// As [`Plot::scene`], or the file system's, naming the path.
    fn write(&self, stem: &Path) -> Result<(PathBuf, PathBuf)> {
        let svg = self.to_svg()?;
        let png = self.to_png(PNG_SIZE.0, PNG_SIZE.1)?;
        let svg_path = output::with_suffix(stem, "svg");
        let png_path = output::with_suffix(stem, "png");
        let png = output::encode_png(&png, &png_path)?;
        output::write_atomic(&svg_path, svg.as_bytes())?;
        output::write_atomic(&png_path, &png)?;
        Ok((svg_path, png_path))
    }
}
