//! Markdown tables and the number formats the reports print.

use kd_report::{Align, ReportError, Table, fmt_fixed, fmt_mean_std, fmt_p_value, fmt_sig};

#[test]
fn columns_line_up_with_their_alignment() {
    let mut table = Table::new(["scheme", "top-1", "ECE", "note"]).with_align(vec![
        Align::Left,
        Align::Right,
        Align::Center,
        Align::Left,
    ]);
    table.push_row(["identity", "73.09 ± 0.31", "0.052", ""]);
    table.push_row(["cutmix_pick", "75.61 ± 0.23", "0.1", "best"]);
    let text = table.to_markdown().unwrap();
    assert_eq!(
        text,
        "\
| scheme      |        top-1 |  ECE  | note |
| :---------- | -----------: | :---: | :--- |
| identity    | 73.09 ± 0.31 | 0.052 |      |
| cutmix_pick | 75.61 ± 0.23 |  0.1  | best |
"
    );
    // Every line has the same width in characters, so the pipes line up.
    let widths: Vec<usize> = text.lines().map(|l| l.chars().count()).collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "{widths:?}");
}

#[test]
fn default_alignment_is_left_and_cells_are_escaped() {
    let mut table = Table::new(["a|b", "c"]);
    table.push_row(["x\ny", "1"]);
    assert_eq!(
        table.to_markdown().unwrap(),
        "| a\\|b | c   |\n| :--- | :-- |\n| x y  | 1   |\n"
    );
}

#[test]
fn header_only_table() {
    assert_eq!(
        Table::new(["only"]).to_markdown().unwrap(),
        "| only |\n| :--- |\n"
    );
}

#[test]
fn mismatched_shapes_are_errors() {
    let mut table = Table::new(["a", "b"]);
    table.push_row(["1"]);
    let error = table.to_markdown().unwrap_err();
    assert!(
        matches!(
            &error,
            ReportError::LengthMismatch {
                expected: 2,
                found: 1,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("row 0"), "{error}");
    let align = Table::new(["a", "b"]).with_align(vec![Align::Right]);
    assert!(matches!(
        align.to_markdown(),
        Err(ReportError::LengthMismatch { .. })
    ));
    let empty = Table::new(Vec::<String>::new());
    assert!(matches!(
        empty.to_markdown(),
        Err(ReportError::Empty { .. })
    ));
}

#[test]
fn numbers() {
    assert_eq!(fmt_mean_std(75.614, 0.2251, 2), "75.61 ± 0.23");
    assert_eq!(fmt_mean_std(-0.0004, 0.0004, 3), "0.000 ± 0.000");
    assert_eq!(fmt_mean_std(1.0, f64::NAN, 1), "1.0 ± NaN");
    assert_eq!(fmt_fixed(2.5, 0), "2");
    assert_eq!(fmt_fixed(-1.25, 1), "-1.2");
    assert_eq!(fmt_p_value(0.049), "0.049");
    assert_eq!(fmt_p_value(0.0004), "4.0e-4");
    assert_eq!(fmt_p_value(2.2e-16), "2.2e-16");
    assert_eq!(fmt_sig(-0.755_123, 3), "-0.755");
    assert_eq!(fmt_sig(1.64, 3), "1.64");
    assert_eq!(fmt_sig(f64::INFINITY, 3), "inf");
}
