//! What the figures draw, read back from their SVG: points, bars, lines and cells at the pixels
//! their values map to, axes that hold the data with 1-2-5 ticks, the fit's numbers, every
//! heatmap value printed and coloured in order, and the errors for data that cannot be drawn.

mod common;

use common::{Tag, assert_close, is_one_two_five, of_class, one_of_class, parse, plot_area};
use kd_report::{
    Colormap, Heatmap, LinePlot, Plot, Point, ReportError, Rgb, ScatterPlot, Series, ValueFormat,
    palette,
};

fn svg_tags(plot: &impl Plot) -> Vec<Tag> {
    parse(&plot.to_svg().unwrap()).unwrap()
}

/// The data coordinates of a pixel, from the plot area drawn in the SVG and the axis ranges:
/// independent of the library's own mapping.
fn to_data(tags: &[Tag], x_range: (f64, f64), y_range: (f64, f64), px: f64, py: f64) -> (f64, f64) {
    let (left, top, right, bottom) = plot_area(tags);
    (
        x_range.0 + (px - left) / (right - left) * (x_range.1 - x_range.0),
        y_range.0 + (bottom - py) / (bottom - top) * (y_range.1 - y_range.0),
    )
}

/// The pixel of data `(x, y)`, likewise from the SVG's plot area.
fn to_pixel(tags: &[Tag], x_range: (f64, f64), y_range: (f64, f64), x: f64, y: f64) -> (f64, f64) {
    let (left, top, right, bottom) = plot_area(tags);
    (
        left + (x - x_range.0) / (x_range.1 - x_range.0) * (right - left),
        bottom - (y - y_range.0) / (y_range.1 - y_range.0) * (bottom - top),
    )
}

fn scatter(points: Vec<Point>) -> ScatterPlot {
    ScatterPlot {
        title: "T. stddev vs test loss".into(),
        x_label: "T. stddev".into(),
        y_label: "test loss".into(),
        points,
        fit_line: false,
    }
}

mod scatter {
    use super::*;

    fn points() -> Vec<Point> {
        vec![
            Point::new(0.41, 1.34, "identity"),
            Point::new(0.45, 1.30, "flip"),
            Point::new(f64::NAN, 1.2, "nan x"),
            Point::new(0.55, 1.22, "autoaugment"),
            Point::new(0.6, f64::INFINITY, "inf y"),
            Point::new(0.63, 1.16, "cutmix_pick"),
            Point::new(0.5, 1.25, "nan err").with_err_y(f64::NAN),
        ]
    }

    #[test]
    fn one_circle_per_finite_point_at_its_pixel() {
        let plot = scatter(points());
        let tags = svg_tags(&plot);
        let frame = plot.frame(640, 480).unwrap();
        let (xr, yr) = ((frame.x.lo(), frame.x.hi()), (frame.y.lo(), frame.y.hi()));
        let circles = of_class(&tags, "point");
        let finite: Vec<&Point> = plot.points.iter().filter(|p| p.is_finite()).collect();
        assert_eq!(circles.len(), 4);
        assert_eq!(circles.len(), finite.len());
        for (circle, point) in circles.iter().zip(finite) {
            assert_eq!(circle.key(), point.label);
            let (px, py) = to_pixel(&tags, xr, yr, point.x, point.y);
            assert_close(circle.num("cx"), px, &point.label);
            assert_close(circle.num("cy"), py, &point.label);
        }
        assert_eq!(plot.non_finite(), 3);
        let note = one_of_class(&tags, "note");
        assert_eq!(note.text, "3 non-finite points skipped");
        assert!(
            tags[1].text.contains("3 non-finite points skipped"),
            "{}",
            tags[1].text
        );
    }

    #[test]
    fn axes_hold_every_point_and_tick_by_one_two_five() {
        let plot = scatter(points());
        let frame = plot.frame(640, 480).unwrap();
        for p in plot.points.iter().filter(|p| p.is_finite()) {
            assert!(frame.x.lo() < p.x && p.x < frame.x.hi());
            assert!(frame.y.lo() < p.y && p.y < frame.y.hi());
        }
        for axis in [&frame.x, &frame.y] {
            assert!(axis.ticks().len() >= 3, "{:?}", axis.ticks());
            assert!(
                is_one_two_five(axis.step(), axis.ticks()),
                "{:?}",
                axis.ticks()
            );
            assert!(
                axis.ticks()
                    .iter()
                    .all(|t| (axis.lo()..=axis.hi()).contains(t))
            );
        }
    }

    #[test]
    fn tick_labels_sit_on_their_ticks() {
        let plot = scatter(points());
        let tags = svg_tags(&plot);
        let frame = plot.frame(640, 480).unwrap();
        let (xr, yr) = ((frame.x.lo(), frame.x.hi()), (frame.y.lo(), frame.y.hi()));
        let labels: Vec<&Tag> = of_class(&tags, "tick-label");
        let x_labels: Vec<&&Tag> = labels.iter().filter(|t| t.key() == "x").collect();
        let y_labels: Vec<&&Tag> = labels.iter().filter(|t| t.key() == "y").collect();
        assert_eq!(x_labels.len(), frame.x.ticks().len());
        assert_eq!(y_labels.len(), frame.y.ticks().len());
        for (label, tick) in x_labels.iter().zip(frame.x.ticks()) {
            assert_eq!(label.text.parse::<f64>().unwrap(), *tick);
            let (px, _) = to_pixel(&tags, xr, yr, *tick, 0.0);
            assert_close(label.num("x"), px, &label.text);
        }
        for (label, tick) in y_labels.iter().zip(frame.y.ticks()) {
            assert!((label.text.parse::<f64>().unwrap() - tick).abs() < 1e-12);
            let (_, py) = to_pixel(&tags, xr, yr, 0.0, *tick);
            assert_close(label.num("y"), py, &label.text);
        }
    }

    #[test]
    fn fit_line_is_least_squares() {
        // x̄ = 2.5, ȳ = 3.5, Sxx = 5, Sxy = 4, Syy = 5: slope 0.8, intercept 1.5, r = 0.8.
        let mut plot = scatter(vec![
            Point::new(1.0, 2.0, "a"),
            Point::new(2.0, 3.0, "b"),
            Point::new(3.0, 5.0, "c"),
            Point::new(4.0, 4.0, "d"),
            Point::new(f64::NAN, 100.0, "skipped"),
        ]);
        plot.fit_line = true;
        let fit = plot.fit().unwrap().unwrap();
        assert!((fit.slope - 0.8).abs() < 1e-12);
        assert!((fit.intercept - 1.5).abs() < 1e-12);
        assert!((fit.r.unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(fit.n, 4);

        let tags = svg_tags(&plot);
        let legend: Vec<&str> = of_class(&tags, "legend-text")
            .iter()
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(legend, ["y = 0.800x + 1.50", "r = 0.800, n = 4"]);
        let frame = plot.frame(640, 480).unwrap();
        let (xr, yr) = ((frame.x.lo(), frame.x.hi()), (frame.y.lo(), frame.y.hi()));
        let line = one_of_class(&tags, "fit");
        let from = to_data(&tags, xr, yr, line.num("x1"), line.num("y1"));
        let to = to_data(&tags, xr, yr, line.num("x2"), line.num("y2"));
        // From the smallest x to the largest, on y = 0.8x + 1.5 (to a hundredth of a pixel).
        assert!(
            (from.0 - 1.0).abs() < 1e-3 && (from.1 - 2.3).abs() < 1e-3,
            "{from:?}"
        );
        assert!(
            (to.0 - 4.0).abs() < 1e-3 && (to.1 - 4.7).abs() < 1e-3,
            "{to:?}"
        );
    }

    #[test]
    fn fit_without_two_distinct_x_says_so() {
        let mut plot = scatter(vec![Point::new(1.0, 2.0, "a"), Point::new(1.0, 3.0, "b")]);
        plot.fit_line = true;
        assert_eq!(plot.fit().unwrap(), None);
        let tags = svg_tags(&plot);
        assert!(of_class(&tags, "fit").is_empty());
        assert_eq!(
            one_of_class(&tags, "legend-text").text,
            "no fit: < 2 distinct x"
        );
    }

    #[test]
    fn error_bars_span_mean_plus_minus_std() {
        let plot = scatter(vec![
            Point::new(1.0, 10.0, "a").with_err_y(1.5),
            Point::new(2.0, 12.0, "b").with_err_y(0.5),
            Point::new(3.0, 11.0, "c"),
        ]);
        let tags = svg_tags(&plot);
        let frame = plot.frame(640, 480).unwrap();
        assert!(frame.y.lo() < 8.5 && frame.y.hi() > 12.5);
        let (xr, yr) = ((frame.x.lo(), frame.x.hi()), (frame.y.lo(), frame.y.hi()));
        for (label, x, y, err) in [("a", 1.0, 10.0, 1.5), ("b", 2.0, 12.0, 0.5)] {
            let bars: Vec<&Tag> = of_class(&tags, "error-bar")
                .into_iter()
                .filter(|t| t.key() == label)
                .collect();
            // The vertical bar, then its two caps.
            assert_eq!(bars.len(), 3);
            let (px, top) = to_pixel(&tags, xr, yr, x, y + err);
            let (_, bottom) = to_pixel(&tags, xr, yr, x, y - err);
            assert_close(bars[0].num("x1"), px, label);
            assert_close(bars[0].num("y1"), top, label);
            assert_close(bars[0].num("y2"), bottom, label);
        }
        assert!(of_class(&tags, "error-bar").iter().all(|t| t.key() != "c"));
    }

    #[test]
    fn groups_share_a_colour_and_a_legend_entry() {
        let plot = scatter(vec![
            Point::new(1.0, 1.0, "a").with_group("cutmix"),
            Point::new(2.0, 2.0, "b").with_group("others"),
            Point::new(3.0, 1.5, "c").with_group("cutmix"),
        ]);
        let tags = svg_tags(&plot);
        let fills: Vec<&str> = of_class(&tags, "point")
            .iter()
            .map(|t| t.attr("fill"))
            .collect();
        let (first, second) = (palette(0).to_string(), palette(1).to_string());
        assert_eq!(fills, [first.as_str(), second.as_str(), first.as_str()]);
        let legend: Vec<&str> = of_class(&tags, "legend-text")
            .iter()
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(legend, ["cutmix", "others"]);
    }

    #[test]
    fn labels_are_written_beside_their_points() {
        let tags = svg_tags(&scatter(points()));
        let labels: Vec<&str> = of_class(&tags, "point-label")
            .iter()
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(labels, ["identity", "flip", "autoaugment", "cutmix_pick"]);
        for (label, circle) in of_class(&tags, "point-label")
            .iter()
            .zip(of_class(&tags, "point"))
        {
            assert!((label.num("x") - circle.num("cx")).abs() < 15.0);
            assert!((label.num("y") - circle.num("cy")).abs() < 15.0);
        }
    }

    #[test]
    fn one_point_and_equal_values_still_have_an_axis() {
        for points in [
            vec![Point::new(3.0, -2.0, "only")],
            vec![Point::new(0.0, 0.0, "a"), Point::new(0.0, 0.0, "b")],
            vec![Point::new(1e9, 7.0, "a"), Point::new(1e9, 7.0, "b")],
        ] {
            let plot = scatter(points.clone());
            let frame = plot.frame(640, 480).unwrap();
            for p in &points {
                assert!(frame.x.lo() < p.x && p.x < frame.x.hi(), "{:?}", frame.x);
                assert!(frame.y.lo() < p.y && p.y < frame.y.hi(), "{:?}", frame.y);
            }
            assert!(frame.x.ticks().len() >= 2 && frame.y.ticks().len() >= 2);
            let tags = svg_tags(&plot);
            let (left, top, right, bottom) = plot_area(&tags);
            for circle in of_class(&tags, "point") {
                assert_close(circle.num("cx"), (left + right) / 2.0, "centred x");
                assert_close(circle.num("cy"), (top + bottom) / 2.0, "centred y");
            }
        }
    }

    #[test]
    fn data_that_cannot_be_drawn_is_an_error() {
        assert!(matches!(
            scatter(vec![]).to_svg(),
            Err(ReportError::Empty { .. })
        ));
        let all_nan = scatter(vec![
            Point::new(f64::NAN, 1.0, "a"),
            Point::new(1.0, f64::NAN, "b"),
        ]);
        assert!(matches!(all_nan.to_svg(), Err(ReportError::Empty { .. })));
        let negative = scatter(vec![Point::new(1.0, 1.0, "a").with_err_y(-0.1)]);
        let error = negative.to_svg().unwrap_err();
        assert!(matches!(error, ReportError::InvalidValue { .. }));
        assert!(error.to_string().contains("err_y of point 0"), "{error}");
        let huge = scatter(vec![
            Point::new(-f64::MAX, 0.0, "a"),
            Point::new(f64::MAX, 0.0, "b"),
        ]);
        assert!(matches!(
            huge.to_svg(),
            Err(ReportError::RangeTooWide { .. })
        ));
        assert!(matches!(
            scatter(points()).to_png(100, 100),
            Err(ReportError::ImageSize { .. })
        ));
    }

    #[test]
    fn a_title_too_long_for_the_image_is_cut() {
        let mut plot = scatter(points());
        plot.title = "T. stddev against the student's test loss, one point per scheme".into();
        let tags = parse(&plot.to_svg_sized(200, 150).unwrap()).unwrap();
        let shown = &one_of_class(&tags, "title").text;
        assert!(
            shown.ends_with('…') && shown.chars().count() < plot.title.chars().count(),
            "{shown}"
        );
        assert!(tags[1].text.starts_with(&plot.title));
        // At 640 pixels it fits whole at the size of the other text; a short title at twice it.
        let title = one_of_class(&svg_tags(&plot), "title").clone();
        assert_eq!(
            (title.text.as_str(), title.attr("font-size")),
            (plot.title.as_str(), "10")
        );
        plot.title = "T. stddev vs test loss".into();
        let tags = svg_tags(&plot);
        let title = one_of_class(&tags, "title");
        assert_eq!(title.text, plot.title);
        assert_eq!(title.attr("font-size"), "20");
    }

    #[test]
    fn text_is_escaped() {
        let mut plot = scatter(vec![Point::new(1.0, 1.0, "a<b & \"c\"")]);
        plot.title = "<script>".into();
        let svg = plot.to_svg().unwrap();
        assert!(!svg.contains("<script>"));
        let tags = parse(&svg).unwrap();
        assert_eq!(one_of_class(&tags, "point-label").text, "a<b & \"c\"");
        assert_eq!(one_of_class(&tags, "title").text, "<script>");
    }
}

mod heatmap {
    use super::*;

    fn grid() -> Heatmap {
        Heatmap {
            title: "accuracy".into(),
            x_label: "τ".into(),
            y_label: "α".into(),
            x_ticks: vec!["1".into(), "4".into(), "16".into()],
            y_ticks: vec!["0.1".into(), "0.5".into(), "0.9".into()],
            values: vec![
                vec![Some(70.12), Some(71.5), None],
                vec![Some(72.0), Some(f64::NAN), Some(69.875)],
                vec![Some(73.25), Some(74.0), Some(71.5)],
            ],
            value_format: ValueFormat::Fixed(2),
            ..Default::default()
        }
    }

    fn finite_cells(map: &Heatmap) -> Vec<(String, f64)> {
        let mut cells = Vec::new();
        for (r, row) in map.values.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    cells.push((format!("{r},{c}"), v));
                }
            }
        }
        cells
    }

    #[test]
    fn every_value_is_printed_in_its_cell() {
        let map = grid();
        let tags = svg_tags(&map);
        let texts = of_class(&tags, "cell-value");
        let cells = finite_cells(&map);
        assert_eq!(texts.len(), cells.len());
        for (key, value) in &cells {
            let text = texts.iter().find(|t| t.key() == key).unwrap();
            assert_eq!(text.text, format!("{value:.2}"));
            let rect = of_class(&tags, "cell")
                .into_iter()
                .find(|t| t.key() == key)
                .unwrap();
            assert_close(text.num("x"), rect.num("x") + rect.num("width") / 2.0, key);
            assert_close(text.num("y"), rect.num("y") + rect.num("height") / 2.0, key);
        }
        let sig = Heatmap {
            value_format: ValueFormat::Significant(3),
            ..grid()
        };
        let texts: Vec<String> = of_class(&svg_tags(&sig), "cell-value")
            .iter()
            .map(|t| t.text.clone())
            .collect();
        assert!(
            texts.contains(&"69.9".to_owned()) && texts.contains(&"70.1".to_owned()),
            "{texts:?}"
        );
    }

    #[test]
    fn colours_follow_the_values() {
        let map = grid();
        let tags = svg_tags(&map);
        let mut cells: Vec<(f64, Rgb)> = finite_cells(&map)
            .into_iter()
            .map(|(key, value)| {
                let rect = of_class(&tags, "cell")
                    .into_iter()
                    .find(|t| t.key() == key)
                    .unwrap();
                let hex = u32::from_str_radix(&rect.attr("fill")[1..], 16).unwrap();
                (value, Rgb::hex(hex))
            })
            .collect();
        cells.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in cells.windows(2) {
            assert!(pair[1].1.luma() >= pair[0].1.luma() - 0.5, "{pair:?}");
        }
        for (value, color) in &cells {
            assert_eq!(*color, map.color_of(*value).unwrap());
        }
        // The ends of the colour map at the smallest and largest value, equal values alike.
        let viridis = Colormap::viridis();
        assert_eq!(cells.first().unwrap().1, viridis.at(0.0));
        assert_eq!(cells.last().unwrap().1, viridis.at(1.0));
        let equal: Vec<Rgb> = cells.iter().filter(|c| c.0 == 71.5).map(|c| c.1).collect();
        assert_eq!(equal.len(), 2);
        assert_eq!(equal[0], equal[1]);
    }

    #[test]
    fn missing_and_non_finite_cells_are_hatched() {
        let map = grid();
        let tags = svg_tags(&map);
        let missing: Vec<&str> = of_class(&tags, "cell-missing")
            .iter()
            .map(|t| t.key())
            .collect();
        assert_eq!(missing, ["0,2", "1,1"]);
        for cell in of_class(&tags, "cell-missing") {
            let fill = cell.attr("fill");
            let id = fill
                .strip_prefix("url(#")
                .and_then(|f| f.strip_suffix(')'))
                .unwrap();
            let pattern = tags
                .iter()
                .find(|t| t.attrs.get("id").map(String::as_str) == Some(id))
                .unwrap();
            assert_eq!(pattern.name, "pattern");
        }
        assert!(
            of_class(&tags, "cell-value")
                .iter()
                .all(|t| t.key() != "0,2" && t.key() != "1,1")
        );
        assert_eq!(map.non_finite(), 1);
        assert_eq!(
            one_of_class(&tags, "note").text,
            "1 non-finite value shown as missing"
        );
    }

    #[test]
    fn cells_tile_the_grid_row_zero_on_top() {
        let map = grid();
        let tags = svg_tags(&map);
        let rect = |key: &str| {
            tags.iter()
                .find(|t| t.name == "rect" && t.key() == key)
                .map(|t| (t.num("x"), t.num("y"), t.num("width"), t.num("height")))
                .unwrap()
        };
        for r in 0..3 {
            for c in 0..3 {
                let (x, y, w, h) = rect(&format!("{r},{c}"));
                assert!(w > 0.0 && h > 0.0);
                if c < 2 {
                    assert_eq!(rect(&format!("{r},{}", c + 1)).0, x + w);
                }
                if r < 2 {
                    assert_eq!(rect(&format!("{},{c}", r + 1)).1, y + h);
                }
            }
        }
        let y_labels: Vec<&str> = of_class(&tags, "tick-label")
            .iter()
            .filter(|t| t.key() == "y")
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(y_labels, ["0.1", "0.5", "0.9"]);
        let bar = one_of_class(&tags, "colorbar");
        assert!(bar.num("x") > rect("0,2").0 + rect("0,2").2);
    }

    #[test]
    fn a_fixed_range_clamps() {
        let map = Heatmap {
            range: Some((71.0, 73.0)),
            ..grid()
        };
        let viridis = Colormap::viridis();
        assert_eq!(map.color_of(60.0).unwrap(), viridis.at(0.0));
        assert_eq!(map.color_of(72.0).unwrap(), viridis.at(0.5));
        assert_eq!(map.color_of(99.0).unwrap(), viridis.at(1.0));
        let axis = map.color_axis().unwrap();
        assert_eq!((axis.lo(), axis.hi()), (71.0, 73.0));
        let bad = Heatmap {
            range: Some((2.0, 1.0)),
            ..grid()
        };
        assert!(matches!(
            bad.to_svg(),
            Err(ReportError::InvalidValue { .. })
        ));
    }

    #[test]
    fn one_value_is_a_valid_map() {
        let map = Heatmap {
            x_ticks: vec!["x".into()],
            y_ticks: vec!["y".into()],
            values: vec![vec![Some(5.0)]],
            ..Default::default()
        };
        let tags = svg_tags(&map);
        assert_eq!(
            one_of_class(&tags, "cell").attr("fill"),
            Colormap::viridis().at(0.5).to_string()
        );
        assert_eq!(one_of_class(&tags, "cell-value").text, "5.00");
    }

    #[test]
    fn shapes_that_do_not_match_are_errors() {
        let short_row = Heatmap {
            values: vec![vec![Some(1.0); 3], vec![Some(1.0); 2], vec![Some(1.0); 3]],
            ..grid()
        };
        let error = short_row.to_svg().unwrap_err();
        assert!(
            matches!(
                &error,
                ReportError::LengthMismatch {
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{error}"
        );
        let rows = Heatmap {
            y_ticks: vec!["only".into()],
            ..grid()
        };
        assert!(matches!(
            rows.to_svg(),
            Err(ReportError::LengthMismatch { .. })
        ));
        let empty = Heatmap::default();
        assert!(matches!(empty.to_svg(), Err(ReportError::Empty { .. })));
        let all_missing = Heatmap {
            values: vec![vec![None, Some(f64::NAN), None]; 3],
            ..grid()
        };
        assert!(matches!(
            all_missing.to_svg(),
            Err(ReportError::Empty { .. })
        ));
    }
}

mod line {
    use super::*;

    fn densities() -> LinePlot {
        let xs: Vec<f64> = (0..=20).map(|i| f64::from(i) * 0.5).collect();
        LinePlot {
            title: "TLD density".into(),
            x_label: "TLD".into(),
            y_label: "density".into(),
            series: vec![
                Series::new(
                    "resnet32x4",
                    xs.clone(),
                    xs.iter().map(|x| (-(x - 5.0f64).powi(2)).exp()).collect(),
                ),
                Series::new(
                    "wrn_40_2",
                    xs.clone(),
                    xs.iter()
                        .map(|x| 0.5 * (-(x - 3.0f64).powi(2) / 4.0).exp())
                        .collect(),
                ),
            ],
        }
    }

    #[test]
    fn one_polyline_per_series_through_its_points() {
        let plot = densities();
        let tags = svg_tags(&plot);
        let frame = plot.frame(640, 480).unwrap();
        let (xr, yr) = ((frame.x.lo(), frame.x.hi()), (frame.y.lo(), frame.y.hi()));
        let lines = of_class(&tags, "series");
        assert_eq!(lines.len(), 2);
        for (line, (i, series)) in lines.iter().zip(plot.series.iter().enumerate()) {
            assert_eq!(line.key(), series.name);
            assert_eq!(line.attr("stroke"), palette(i).to_string());
            let points = common::anchor_points(line);
            assert_eq!(points.len(), series.xs.len());
            for ((px, py), (x, y)) in points.iter().zip(series.xs.iter().zip(&series.ys)) {
                let expected = to_pixel(&tags, xr, yr, *x, *y);
                assert_close(*px, expected.0, "x");
                assert_close(*py, expected.1, "y");
            }
        }
        let legend: Vec<&str> = of_class(&tags, "legend-text")
            .iter()
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(legend, ["resnet32x4", "wrn_40_2"]);
        assert!(is_one_two_five(frame.y.step(), frame.y.ticks()));
        assert!(frame.y.lo() < 0.0 && frame.y.hi() > 1.0);
    }

    #[test]
    fn non_finite_points_split_the_curve() {
        let plot = LinePlot {
            series: vec![Series::new(
                "a",
                vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                vec![0.0, 1.0, f64::NAN, 1.0, f64::NEG_INFINITY, 2.0],
            )],
            ..Default::default()
        };
        let tags = svg_tags(&plot);
        let runs: Vec<usize> = of_class(&tags, "series")
            .iter()
            .map(|t| common::anchor_points(t).len())
            .collect();
        assert_eq!(runs, [2]);
        // 3.0 and 5.0 stand alone between gaps: dots.
        assert_eq!(of_class(&tags, "series-point").len(), 2);
        assert_eq!(plot.non_finite(), 2);
        assert_eq!(
            one_of_class(&tags, "note").text,
            "2 non-finite points skipped"
        );
    }

    #[test]
    fn bad_series_are_errors() {
        let mismatch = LinePlot {
            series: vec![Series::new("a", vec![0.0, 1.0], vec![0.0])],
            ..Default::default()
        };
        let error = mismatch.to_svg().unwrap_err();
        assert!(error.to_string().contains("\"a\""), "{error}");
        assert!(matches!(
            LinePlot::default().to_svg(),
            Err(ReportError::Empty { .. })
        ));
        let nothing_finite = LinePlot {
            series: vec![
                Series::new("a", vec![f64::NAN], vec![0.0]),
                Series::new("b", vec![], vec![]),
            ],
            ..Default::default()
        };
        assert!(matches!(
            nothing_finite.to_svg(),
            Err(ReportError::Empty { .. })
        ));
    }
}
