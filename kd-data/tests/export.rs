//! PNG export: single images round-trip through the `image` decoder, grids have the documented
//! geometry, and dataset samples get safe file names.

use kd_data::export::{PAD_VALUE, export_samples, grid, sanitize_file_name, write_grid, write_png};
use kd_data::{DataError, Dataset, ImageShape};
use std::path::Path;

/// A CHW image whose every byte differs from its neighbours, so a transposed layout shows.
fn ramp(shape: ImageShape, seed: u8) -> Vec<u8> {
    (0..shape.len())
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Decodes a PNG back to CHW with the `image` crate.
fn read_chw(path: &Path, channels: usize) -> (Vec<u8>, u32, u32) {
    let img = image::open(path).unwrap();
    let (w, h) = (img.width(), img.height());
    let hwc = if channels == 1 {
        img.into_luma8().into_raw()
    } else {
        img.into_rgb8().into_raw()
    };
    let plane = (w * h) as usize;
    let mut chw = vec![0u8; hwc.len()];
    for (i, &v) in hwc.iter().enumerate() {
        chw[(i % channels) * plane + i / channels] = v;
    }
    (chw, w, h)
}

#[test]
fn write_png_round_trips_rgb_and_gray() {
    let tmp = tempfile::tempdir().unwrap();
    for shape in [ImageShape::new(3, 5, 7), ImageShape::new(1, 4, 9)] {
        let image = ramp(shape, 3);
        let path = tmp.path().join(format!("{}.png", shape.channels));
        write_png(&path, &image, shape).unwrap();
        let (back, w, h) = read_chw(&path, shape.channels);
        assert_eq!((w as usize, h as usize), (shape.width, shape.height));
        assert_eq!(back, image, "{shape}");
    }
}

#[test]
fn write_png_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.png");
    let e = write_png(&path, &[0; 8], ImageShape::new(2, 2, 2)).unwrap_err();
    assert!(e.to_string().contains("channels = 2"), "{e}");
    let e = write_png(&path, &[0; 5], ImageShape::new(1, 2, 2)).unwrap_err();
    assert!(
        e.to_string().contains("5 bytes") && e.to_string().contains("has 4"),
        "{e}"
    );
    let e = write_png(
        &tmp.path().join("no/such/dir/x.png"),
        &[0; 4],
        ImageShape::new(1, 2, 2),
    )
    .unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e}");
}

#[test]
fn grid_geometry_and_pixel_positions() {
    let shape = ImageShape::new(3, 2, 3);
    let images: Vec<Vec<u8>> = (0..5).map(|k| ramp(shape, 40 * k)).collect();
    let refs: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
    let (scale, padding, columns) = (2, 1, 3);
    let (pixels, g) = grid(&refs, shape, columns, scale, padding).unwrap();
    // 3 columns × (3·2 + 1) + 1 wide, 2 rows × (2·2 + 1) + 1 high.
    assert_eq!(g, ImageShape::new(3, 11, 22));
    let at = |c: usize, y: usize, x: usize| pixels[c * g.plane() + y * g.width + x];
    let src =
        |k: usize, c: usize, y: usize, x: usize| images[k][c * shape.plane() + y * shape.width + x];
    // Image 4 is row 1, column 1: its top-left cell starts at (1 + 5, 1 + 7).
    for c in 0..3 {
        for (y, x) in [(0, 0), (1, 2), (0, 1)] {
            for (dy, dx) in [(0, 0), (1, 1), (0, 1)] {
                assert_eq!(
                    at(c, 6 + 2 * y + dy, 8 + 2 * x + dx),
                    src(4, c, y, x),
                    "c{c} y{y} x{x}"
                );
            }
        }
    }
    assert_eq!(at(1, 1, 1), src(0, 1, 0, 0));
    // Padding between cells, on the border, and the empty last cell.
    assert_eq!(at(0, 0, 0), PAD_VALUE);
    assert_eq!(at(2, 3, 7), PAD_VALUE);
    assert_eq!(at(0, 5, 3), PAD_VALUE);
    assert!((6..10).all(|y| (15..21).all(|x| at(0, y, x) == PAD_VALUE)));
}

#[test]
fn grid_with_fewer_images_than_columns_is_one_short_row() {
    let shape = ImageShape::new(1, 2, 2);
    let a = ramp(shape, 1);
    let (_, g) = grid(&[&a, &a], shape, 8, 1, 0).unwrap();
    assert_eq!(g, ImageShape::new(1, 2, 4));
}

#[test]
fn write_grid_writes_the_grid_as_png() {
    let tmp = tempfile::tempdir().unwrap();
    let shape = ImageShape::new(1, 3, 3);
    let images: Vec<Vec<u8>> = (0..4).map(|k| ramp(shape, 60 * k)).collect();
    let refs: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
    let path = tmp.path().join("grid.png");
    write_grid(&path, &refs, shape, 2, 3, 2).unwrap();
    let (back, w, h) = read_chw(&path, 1);
    assert_eq!((w, h), (2 * (9 + 2) + 2, 2 * (9 + 2) + 2));
    assert_eq!(back, grid(&refs, shape, 2, 3, 2).unwrap().0);
    // Image 3 (row 1, column 1), source pixel (2, 1), scaled 3×: rows 13+6.., columns 13+3...
    assert_eq!(back[(13 + 6) * w as usize + 13 + 3], images[3][2 * 3 + 1]);
}

#[test]
fn grid_rejects_bad_arguments() {
    let shape = ImageShape::new(1, 2, 2);
    let a = [0u8; 4];
    let e = grid(&[], shape, 1, 1, 0).unwrap_err();
    assert!(e.to_string().contains("at least one image"), "{e}");
    assert!(
        grid(&[&a], shape, 0, 1, 0)
            .unwrap_err()
            .to_string()
            .contains("columns = 0")
    );
    assert!(
        grid(&[&a], shape, 1, 0, 0)
            .unwrap_err()
            .to_string()
            .contains("scale = 0")
    );
    let e = grid(&[&a, &a[..3]], shape, 1, 1, 0).unwrap_err();
    assert!(e.to_string().contains("image 1 = 3 bytes"), "{e}");
}

#[test]
fn sanitized_names_are_safe() {
    assert_eq!(
        sanitize_file_name("goldfish, Carassius auratus"),
        "goldfish_Carassius_auratus"
    );
    assert_eq!(sanitize_file_name("../etc/passwd"), "etc_passwd");
    assert_eq!(sanitize_file_name("maple_tree"), "maple_tree");
    assert_eq!(sanitize_file_name("café au lait"), "caf_au_lait");
    assert_eq!(sanitize_file_name("///"), "class");
    assert_eq!(sanitize_file_name(&"x".repeat(200)).len(), 64);
}

fn two_class_dataset() -> Dataset {
    let shape = ImageShape::new(3, 2, 2);
    let images: Vec<u8> = (0..3).flat_map(|k| ramp(shape, 50 * k)).collect();
    Dataset::new(
        "t",
        shape,
        images,
        vec![1, 0, 1],
        vec!["pickup truck".into(), "sea/lion".into()],
    )
    .unwrap()
}

#[test]
fn export_samples_names_and_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = two_class_dataset();
    let dir = tmp.path().join("out/samples");
    let paths = export_samples(&ds, &[2, 1], &dir).unwrap();
    assert_eq!(
        paths,
        vec![dir.join("2_sea_lion.png"), dir.join("1_pickup_truck.png")]
    );
    for (path, i) in paths.iter().zip([2, 1]) {
        assert_eq!(read_chw(path, 3).0, ds.image(i), "{}", path.display());
    }
}

#[test]
fn export_samples_rejects_out_of_range_index() {
    let tmp = tempfile::tempdir().unwrap();
    let e = export_samples(&two_class_dataset(), &[0, 3], tmp.path()).unwrap_err();
    assert!(
        e.to_string().contains("sample index = 3") && e.to_string().contains("3 samples"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written before the check"
    );
}
