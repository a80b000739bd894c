//! The PNG renderer and the files: requested sizes, ink where the SVG puts shapes and none
//! where it puts nothing, `write` leaving exactly two whole files, and the same bytes every time.

mod common;

use common::{of_class, parse, plot_area};
use kd_report::{
    Heatmap, LinePlot, PNG_SIZE, Plot, Point, ReportError, Rgb, SVG_SIZE, ScatterPlot, Series,
    palette,
};
use std::path::Path;

fn scatter() -> ScatterPlot {
    ScatterPlot {
        title: "T. stddev vs test loss".into(),
        x_label: "T. stddev".into(),
        y_label: "test loss".into(),
        points: vec![
            Point::new(0.41, 1.34, "identity").with_err_y(0.02),
            Point::new(0.47, 1.29, "flip").with_err_y(0.03),
            Point::new(0.55, 1.22, "autoaugment").with_err_y(0.01),
            Point::new(0.63, 1.16, "cutmix").with_err_y(0.02),
            Point::new(f64::NAN, 1.0, "diverged"),
        ],
        fit_line: true,
    }
}

fn heatmap() -> Heatmap {
    Heatmap {
        title: "accuracy".into(),
        x_label: "τ".into(),
        y_label: "α".into(),
        x_ticks: vec!["1".into(), "4".into()],
        y_ticks: vec!["0.1".into(), "0.9".into()],
        values: vec![vec![Some(70.0), None], vec![Some(72.5), Some(71.0)]],
        ..Default::default()
    }
}

fn lines() -> LinePlot {
    LinePlot {
        title: "density".into(),
        x_label: "TLD".into(),
        y_label: "density".into(),
        series: vec![Series::new("a", vec![0.0, 1.0, 2.0], vec![0.0, 1.0, 0.5])],
    }
}

const WHITE: [u8; 3] = [255, 255, 255];

#[test]
fn png_has_the_requested_size() {
    for (width, height) in [(640, 480), (160, 120), (1000, 300), (1280, 960)] {
        assert_eq!(
            scatter().to_png(width, height).unwrap().dimensions(),
            (width, height)
        );
        assert_eq!(
            heatmap().to_png(width, height).unwrap().dimensions(),
            (width, height)
        );
        assert_eq!(
            lines().to_png(width, height).unwrap().dimensions(),
            (width, height)
        );
    }
    for (width, height) in [(0, 480), (159, 480), (640, 119), (9000, 480)] {
        assert!(matches!(
            scatter().to_png(width, height),
            Err(ReportError::ImageSize { .. })
        ));
    }
}

#[test]
fn png_points_are_painted_where_the_svg_puts_them() {
    let plot = scatter();
    let (width, height) = (800, 600);
    let image = plot.to_png(width, height).unwrap();
    let tags = parse(&plot.to_svg_sized(width, height).unwrap()).unwrap();
    let circles = of_class(&tags, "point");
    assert_eq!(circles.len(), 4);
    for circle in circles {
        let (x, y) = (
            circle.num("cx").floor() as u32,
            circle.num("cy").floor() as u32,
        );
        assert_eq!(
            image.get_pixel(x, y).0,
            [0x1f, 0x77, 0xb4],
            "{}",
            circle.key()
        );
    }
    // The corners and the inside of the plot area away from everything stay white.
    assert_eq!(image.get_pixel(0, 0).0, WHITE);
    assert_eq!(image.get_pixel(width - 1, height - 1).0, WHITE);
    let (left, top, _, _) = plot_area(&tags);
    assert_eq!(image.get_pixel(left as u32 + 3, top as u32 + 3).0, WHITE);
    // The frame of the plot area is drawn.
    let frame = image
        .get_pixel(left as u32, (top as u32 + 200).min(height - 1))
        .0;
    assert_ne!(frame, WHITE);
}

#[test]
fn png_heatmap_cells_have_their_colours() {
    let map = heatmap();
    let image = map.to_png(640, 480).unwrap();
    let tags = parse(&map.to_svg().unwrap()).unwrap();
    for cell in of_class(&tags, "cell") {
        // A point inside the cell, off its centred value text.
        let x = (cell.num("x") + 4.0) as u32;
        let y = (cell.num("y") + 4.0) as u32;
        let hex = u32::from_str_radix(&cell.attr("fill")[1..], 16).unwrap();
        let Rgb(r, g, b) = Rgb::hex(hex);
        assert_eq!(image.get_pixel(x, y).0, [r, g, b], "{}", cell.key());
    }
    let missing = of_class(&tags, "cell-missing")[0];
    let (x0, y0) = (missing.num("x") as u32, missing.num("y") as u32);
    let inside: Vec<[u8; 3]> = (4..40)
        .map(|d| image.get_pixel(x0 + d, y0 + 20).0)
        .collect();
    // Hatched: two greys, both present.
    assert!(
        inside.iter().any(|p| p[0] < 0xe0) && inside.iter().any(|p| p[0] >= 0xe0),
        "{inside:?}"
    );
}

#[test]
fn png_lines_are_painted() {
    let plot = lines();
    let image = plot.to_png(640, 480).unwrap();
    let tags = parse(&plot.to_svg().unwrap()).unwrap();
    let line = of_class(&tags, "series")[0];
    let Rgb(r, g, b) = palette(0);
    let distance = |p: [u8; 3], q: [u8; 3]| -> i32 {
        p.iter()
            .zip(q)
            .map(|(a, b)| (i32::from(*a) - i32::from(b)).abs())
            .sum()
    };
    for (x, y) in common::anchor_points(line) {
        // Anti-aliased: the pixel holding a vertex is mostly the line's colour.
        let pixel = image.get_pixel(x as u32, y as u32).0;
        assert!(
            distance(pixel, [r, g, b]) * 3 < distance(pixel, WHITE),
            "{pixel:?}"
        );
    }
}

#[test]
fn write_creates_both_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("figures").join("fig.1b");
    let (svg, png) = scatter().write(&stem).unwrap();
    assert_eq!(svg, dir.path().join("figures/fig.1b.svg"));
    assert_eq!(png, dir.path().join("figures/fig.1b.png"));
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("figures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["fig.1b.png", "fig.1b.svg"]);
    assert_eq!(
        std::fs::read_to_string(&svg).unwrap(),
        scatter().to_svg().unwrap()
    );
    let decoded = image::open(&png).unwrap().to_rgb8();
    assert_eq!(decoded.dimensions(), PNG_SIZE);
    assert_eq!(decoded, scatter().to_png(PNG_SIZE.0, PNG_SIZE.1).unwrap());
    let tags = parse(&std::fs::read_to_string(&svg).unwrap()).unwrap();
    assert_eq!(
        common::size(&tags),
        (f64::from(SVG_SIZE.0), f64::from(SVG_SIZE.1))
    );

    // Writing again replaces the files in place.
    heatmap().write(&stem).unwrap();
    assert!(
        std::fs::read_to_string(&svg)
            .unwrap()
            .contains(r#"class="cell""#)
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("figures"))
            .unwrap()
            .count(),
        2
    );
}

#[test]
fn write_fails_whole_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let error = scatter().write(&blocker.join("fig")).unwrap_err();
    assert!(matches!(error, ReportError::Io { .. }), "{error}");
    assert!(error.to_string().contains("not-a-dir"), "{error}");

    // Data that cannot be drawn writes nothing at all.
    let empty = ScatterPlot::default();
    assert!(empty.write(&dir.path().join("empty")).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

fn bytes_of(plot: &impl Plot, dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let (svg, png) = plot.write(&dir.join("figure")).unwrap();
    (std::fs::read(svg).unwrap(), std::fs::read(png).unwrap())
}

#[test]
fn output_is_deterministic() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert_eq!(
        bytes_of(&scatter(), a.path()),
        bytes_of(&scatter(), b.path())
    );
    assert_eq!(
        bytes_of(&heatmap(), a.path()),
        bytes_of(&heatmap(), b.path())
    );
    assert_eq!(bytes_of(&lines(), a.path()), bytes_of(&lines(), b.path()));
    assert_eq!(
        scatter().to_svg().unwrap(),
        scatter().clone().to_svg().unwrap()
    );
}
