//! Writing images out as PNG: single images, grids, and samples of a [`Dataset`].
//!
//! Images are `u8` CHW with 1 or 3 channels, as everywhere in kd. A grid takes a flat list of
//! images laid out row-major, so a caller decides what a row means (`kd data export` fills rows
//! with samples; an augmentation preview can put an original and its augmented versions on one
//! row).

use crate::dataset::{Dataset, ImageShape};
use crate::error::{DataError, Result};
use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// The value of padding pixels in a grid, and of cells the last row leaves empty (black, like
/// torchvision's `make_grid`).
pub const PAD_VALUE: u8 = 0;

/// The longest class-name part of an exported file name, in bytes.
const MAX_NAME_LEN: usize = 64;

fn check_shape(shape: ImageShape) -> Result<()> {
    if shape.channels != 1 && shape.channels != 3 {
        return Err(DataError::invalid(
            "channels",
            shape.channels,
            "PNG export takes 1 (gray) or 3 (RGB) channels",
        ));
    }
    if shape.is_empty() || shape.height > u32::MAX as usize || shape.width > u32::MAX as usize {
        return Err(DataError::invalid(
            "image shape",
            shape,
            "height and width must be in 1..2³²",
        ));
    }
    Ok(())
}

fn check_len(what: &str, image: &[u8], shape: ImageShape) -> Result<()> {
    if image.len() != shape.len() {
        return Err(DataError::invalid(
            what,
            format!("{} bytes", image.len()),
            format!("a {shape} image has {}", shape.len()),
        ));
    }
    Ok(())
}

/// CHW planes to the interleaved (HWC) layout PNG stores.
fn interleave(image: &[u8], shape: ImageShape) -> Vec<u8> {
    let plane = shape.plane();
    let mut out = vec![0u8; image.len()];
    for (c, channel) in image.chunks_exact(plane).enumerate() {
        for (i, &v) in channel.iter().enumerate() {
            out[i * shape.channels + c] = v;
        }
    }
    out
}

/// Writes one CHW image (1 or 3 channels) as a PNG file.
pub fn write_png(path: &Path, image: &[u8], shape: ImageShape) -> Result<()> {
    check_shape(shape)?;
    check_len("image", image, shape)?;
    let color = if shape.channels == 1 {
        ExtendedColorType::L8
    } else {
        ExtendedColorType::Rgb8
    };
    let file = fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    PngEncoder::new(BufWriter::new(file))
        .write_image(
            &interleave(image, shape),
            shape.width as u32,
            shape.height as u32,
            color,
        )
        .map_err(|e| match e {
            image::ImageError::IoError(io) => DataError::io(path, io),
            other => DataError::format(path, format!("cannot encode PNG: {other}")),
        })
}

/// How a grid is laid out: cells of `scale`-times enlarged images with `padding` pixels between
/// them and around the border.
#[derive(Clone, Copy, Debug)]
struct GridLayout {
    cell_h: usize,
    cell_w: usize,
    columns: usize,
    rows: usize,
    padding: usize,
}

impl GridLayout {
    fn shape(&self, channels: usize) -> ImageShape {
        let side = |cells: usize, cell: usize| cells * (cell + self.padding) + self.padding;
        ImageShape::new(
            channels,
            side(self.rows, self.cell_h),
            side(self.columns, self.cell_w),
        )
    }
}

/// Lays out `images` row-major, `columns` per row (fewer when there are fewer images),
/// each enlarged `scale` times by pixel repetition (nearest neighbour), with `padding` pixels of
/// [`PAD_VALUE`] between and around them. Returns the grid as one CHW image and its shape.
pub fn grid(
    images: &[&[u8]],
    shape: ImageShape,
    columns: usize,
    scale: usize,
    padding: usize,
) -> Result<(Vec<u8>, ImageShape)> {
    if images.is_empty() {
        return Err(DataError::invalid(
            "images",
            0,
            "a grid needs at least one image",
        ));
    }
    if columns == 0 {
        return Err(DataError::invalid("columns", columns, "must be at least 1"));
    }
    if scale == 0 {
        return Err(DataError::invalid("scale", scale, "must be at least 1"));
    }
    for (i, img) in images.iter().enumerate() {
        check_len(&format!("image {i}"), img, shape)?;
    }
    let columns = columns.min(images.len());
    let layout = GridLayout {
        cell_h: shape.height * scale,
        cell_w: shape.width * scale,
        columns,
        rows: images.len().div_ceil(columns),
        padding,
    };
    let out_shape = layout.shape(shape.channels);
    let mut out = vec![PAD_VALUE; out_shape.len()];
    for (i, img) in images.iter().enumerate() {
        let top = padding + (i / columns) * (layout.cell_h + padding);
        let left = padding + (i % columns) * (layout.cell_w + padding);
        blit_scaled(img, shape, scale, &mut out, out_shape, (top, left));
    }
    Ok((out, out_shape))
}

/// Copies `img` into `out` at `(top, left)`, each pixel repeated `scale × scale` times.
fn blit_scaled(
    img: &[u8],
    shape: ImageShape,
    scale: usize,
    out: &mut [u8],
    out_shape: ImageShape,
    (top, left): (usize, usize),
) {
    for c in 0..shape.channels {
        let src = &img[c * shape.plane()..(c + 1) * shape.plane()];
        let dst = &mut out[c * out_shape.plane()..(c + 1) * out_shape.plane()];
        for y in 0..shape.height * scale {
            let src_row = &src[(y / scale) * shape.width..(y / scale + 1) * shape.width];
            let start = (top + y) * out_shape.width + left;
            let dst_row = &mut dst[start..start + shape.width * scale];
            for (x, px) in dst_row.iter_mut().enumerate() {
                *px = src_row[x / scale];
            }
        }
    }
}

/// Writes `images` as one PNG grid; see [`grid`] for the layout.
pub fn write_grid(
    path: &Path,
    images: &[&[u8]],
    shape: ImageShape,
    columns: usize,
    scale: usize,
    padding: usize,
) -> Result<()> {
    check_shape(shape)?;
    let (pixels, grid_shape) = grid(images, shape, columns, scale, padding)?;
    write_png(path, &pixels, grid_shape)
}

/// A class name made safe for a file name on any system: ASCII letters, digits, `-` and `.`
/// kept, every other run of characters becomes one `_`, no leading dot, at most 64 bytes.
/// An empty result becomes `class`.
pub fn sanitize_file_name(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() || ch == '-' || ch == '.' {
            out.push(ch);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches(|c| c == '_' || c == '.');
    let cut = &trimmed[..trimmed.len().min(MAX_NAME_LEN)];
    if cut.is_empty() {
        "class".to_string()
    } else {
        cut.to_string()
    }
}

/// Writes the samples at `indices` of `ds` into `dir` (created if needed) as
/// `<index>_<class name>.png`, and returns the paths in the order of `indices`.
pub fn export_samples(ds: &Dataset, indices: &[usize], dir: &Path) -> Result<Vec<PathBuf>> {
    if let Some(&bad) = indices.iter().find(|&&i| i >= ds.len()) {
        return Err(DataError::invalid(
            "sample index",
            bad,
            format!("{} has {} samples", ds.name(), ds.len()),
        ));
    }
    check_shape(ds.shape())?;
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    indices
        .iter()
        .map(|&i| {
            let class = &ds.classes()[ds.label(i) as usize];
            let path = dir.join(format!("{i}_{}.png", sanitize_file_name(class)));
            write_png(&path, ds.image(i), ds.shape())?;
            Ok(path)
        })
        .collect()
}
