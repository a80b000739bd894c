//! Property tests: any finite data draws, as well-formed SVG with every shape inside the image
//! and every point inside the plot area; any data at all, NaN and extremes included, gives a
//! figure or an error and never a panic; axes hold their range with distinct 1-2-5 ticks.

mod common;

use common::{Tag, anchor_points, is_one_two_five, of_class, parse, plot_area};
use kd_report::{
    Axis, Heatmap, LinePlot, Plot, Point, ReportError, ScatterPlot, Series, ValueFormat,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Finite values over many magnitudes, with repeats likely (equal values are a corner case).
fn finite() -> BoxedStrategy<f64> {
    prop_oneof![
        -1e3f64..1e3,
        -1e-3f64..1e-3,
        -1e12f64..1e12,
        (-3i32..4).prop_map(f64::from),
        Just(0.0),
    ]
    .boxed()
}

/// Any `f64`, with the special values likely.
fn anything() -> BoxedStrategy<f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(f64::MIN_POSITIVE),
        finite(),
    ]
    .boxed()
}

/// Labels with markup characters, non-ASCII and control characters among them.
fn label() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_:+]{0,12}", "\\PC{0,6}", "[<>&\"'\\n\\t\u{0}ατ±]{0,4}"]
}

fn size() -> impl Strategy<Value = (u32, u32)> {
    (160u32..1400, 120u32..1000)
}

fn point(value: BoxedStrategy<f64>) -> impl Strategy<Value = Point> {
    (
        value.clone(),
        value,
        label(),
        proptest::option::of(prop_oneof![
            Just("a".to_owned()),
            Just("cutmix".to_owned()),
            "[a-z]{1,3}",
        ]),
        proptest::option::of(0.0f64..100.0),
    )
        .prop_map(|(x, y, label, group, err_y)| Point {
            x,
            y,
            label,
            group,
            err_y,
        })
}

/// The document parses, and every shape's coordinates lie in the image.
fn check_svg(svg: &str, width: u32, height: u32) -> Result<Vec<Tag>, TestCaseError> {
    let tags = parse(svg).map_err(TestCaseError::fail)?;
    let (w, h) = (f64::from(width), f64::from(height));
    prop_assert_eq!(common::size(&tags), (w, h));
    for tag in &tags {
        for (x, y) in anchor_points(tag) {
            prop_assert!(
                (-0.01..=w + 0.01).contains(&x) && (-0.01..=h + 0.01).contains(&y),
                "{} {:?} at ({}, {}) outside {}×{}",
                tag.name,
                tag.class(),
                x,
                y,
                w,
                h
            );
        }
    }
    Ok(tags)
}

fn inside_area(tags: &[Tag], x: f64, y: f64) -> bool {
    let (left, top, right, bottom) = plot_area(tags);
    (left - 0.01..=right + 0.01).contains(&x) && (top - 0.01..=bottom + 0.01).contains(&y)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn finite_scatter_plots_draw((width, height) in size(), points in vec(point(finite()), 1..25), fit_line: bool) {
        let plot = ScatterPlot { title: "t".into(), x_label: "x".into(), y_label: "y".into(), points, fit_line };
        let svg = plot.to_svg_sized(width, height).unwrap();
        let tags = check_svg(&svg, width, height)?;
        let circles = of_class(&tags, "point");
        prop_assert_eq!(circles.len(), plot.points.len());
        for c in circles {
            prop_assert!(inside_area(&tags, c.num("cx"), c.num("cy")));
        }
        for tag in of_class(&tags, "error-bar").into_iter().chain(of_class(&tags, "fit")) {
            for (x, y) in anchor_points(tag) {
                // Error-bar caps stick out sideways by a few pixels; their y must be inside.
                prop_assert!(inside_area(&tags, x.clamp(plot_area(&tags).0, plot_area(&tags).2), y));
            }
        }
        let frame = plot.frame(width, height).unwrap();
        prop_assert!(is_one_two_five(frame.x.step(), frame.x.ticks()));
        prop_assert!(is_one_two_five(frame.y.step(), frame.y.ticks()));
    }

    #[test]
    fn small_scatter_pngs_have_their_size((width, height) in (160u32..400, 120u32..300), points in vec(point(finite()), 1..8)) {
        let plot = ScatterPlot { points, fit_line: true, ..Default::default() };
        prop_assert_eq!(plot.to_png(width, height).unwrap().dimensions(), (width, height));
    }

    #[test]
    fn any_scatter_data_gives_a_figure_or_an_error(points in vec(point(anything()), 0..10), err in proptest::option::of(anything())) {
        let mut points = points;
        if let Some(first) = points.first_mut() {
            first.err_y = err;
        }
        let plot = ScatterPlot { points, fit_line: true, ..Default::default() };
        if let Ok(svg) = plot.to_svg() {
            check_svg(&svg, 640, 480)?;
            prop_assert_eq!(of_class(&parse(&svg).unwrap(), "point").len(), plot.points.len() - plot.non_finite());
            prop_assert!(plot.to_png(200, 150).is_ok());
        }
    }

    #[test]
    fn heatmaps_draw_every_finite_value(
        (width, height) in size(),
        values in (1usize..8, 1usize..8).prop_flat_map(|(rows, columns)| {
            vec(vec(proptest::option::of(prop_oneof![4 => finite(), 1 => anything()]), columns), rows)
        }),
        digits in 0usize..4,
    ) {
        let columns = values[0].len();
        let map = Heatmap {
            title: "grid".into(),
            x_label: "τ".into(),
            y_label: "α".into(),
            x_ticks: (0..columns).map(|c| format!("c{c}")).collect(),
            y_ticks: (0..values.len()).map(|r| format!("r{r}")).collect(),
            values,
            value_format: ValueFormat::Fixed(digits),
            ..Default::default()
        };
        let finite_count = map.values.iter().flatten().flatten().filter(|v| v.is_finite()).count();
        match map.to_svg_sized(width, height) {
            Ok(svg) => {
                let tags = check_svg(&svg, width, height)?;
                prop_assert_eq!(of_class(&tags, "cell-value").len(), finite_count);
                prop_assert_eq!(of_class(&tags, "cell").len(), finite_count);
                prop_assert_eq!(
                    of_class(&tags, "cell-missing").len(),
                    map.values.len() * columns - finite_count
                );
            }
            Err(error) => prop_assert!(finite_count == 0 || error.to_string().contains("too wide"), "{}", error),
        }
    }

    #[test]
    fn line_plots_draw(
        (width, height) in size(),
        series in vec((label(), vec((finite(), prop_oneof![9 => finite(), 1 => anything()]), 0..40)), 1..12),
    ) {
        let plot = LinePlot {
            title: "density".into(),
            series: series
                .into_iter()
                .map(|(name, points)| {
                    let (xs, ys) = points.into_iter().unzip();
                    Series { name, xs, ys }
                })
                .collect(),
            ..Default::default()
        };
        let finite = plot.series.iter().map(|s| s.xs.len()).sum::<usize>() - plot.non_finite();
        match plot.to_svg_sized(width, height) {
            Ok(svg) => {
                let tags = check_svg(&svg, width, height)?;
                for tag in of_class(&tags, "series").into_iter().chain(of_class(&tags, "series-point")) {
                    for (x, y) in anchor_points(tag) {
                        prop_assert!(inside_area(&tags, x, y));
                    }
                }
            }
            Err(error) => prop_assert!(
                finite == 0 || matches!(error, ReportError::RangeTooWide { .. }),
                "{}",
                error
            ),
        }
    }

    #[test]
    fn axes_cover_their_range_with_distinct_one_two_five_ticks(a in anything(), b in anything(), target in 2usize..12) {
        match Axis::covering("x", a, b, target) {
            Ok(axis) => {
                prop_assert!(axis.lo() < a.min(b) || (a == b && axis.lo() < a), "{:?}", axis);
                prop_assert!(axis.hi() > a.max(b), "{:?}", axis);
                prop_assert!(axis.lo().is_finite() && axis.hi().is_finite());
                prop_assert!(is_one_two_five(axis.step(), axis.ticks()), "{:?}", axis);
                prop_assert!((2..=3 * target + 2).contains(&axis.ticks().len()), "{:?}", axis);
                let labels = axis.labels();
                let mut distinct = labels.clone();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), labels.len(), "{:?}", labels);
            }
            Err(_) => prop_assert!(!(a.is_finite() && b.is_finite()) || a.abs().max(b.abs()) > 1e300),
        }
    }
}

#[test]
fn long_legends_are_cut_to_the_plot_height() {
    let plot = LinePlot {
        series: (0..40)
            .map(|i| {
                Series::new(
                    format!("model {i}"),
                    vec![0.0, 1.0],
                    vec![0.0, f64::from(i)],
                )
            })
            .collect(),
        ..Default::default()
    };
    let tags = parse(&plot.to_svg_sized(640, 240).unwrap()).unwrap();
    let legend = of_class(&tags, "legend-text");
    assert!(legend.len() < 40);
    assert_eq!(
        legend.last().unwrap().text,
        format!("+ {} more", 40 - (legend.len() - 1))
    );
    assert!(check_svg(&plot.to_svg_sized(640, 240).unwrap(), 640, 240).is_ok());
}
