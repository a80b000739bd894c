//! Number formatting for tables, legends and labels: fixed decimals without a "-0.00", mean ±
//! std, p-values, and significant digits.

/// `value` with `decimals` decimals, with a value that rounds to zero printed without a minus
/// sign ("0.00", not "-0.00"). NaN prints as "NaN", infinities as "inf" / "-inf".
///
/// ```
/// assert_eq!(kd_report::fmt_fixed(-0.001, 2), "0.00");
/// assert_eq!(kd_report::fmt_fixed(75.614, 2), "75.61");
/// ```
pub fn fmt_fixed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
        _ => text,
    }
}

/// "mean ± std" with `decimals` decimals on both, e.g. `fmt_mean_std(75.614, 0.2251, 2)` is
/// "75.61 ± 0.23".
///
/// ```
/// assert_eq!(kd_report::fmt_mean_std(75.614, 0.2251, 2), "75.61 ± 0.23");
/// ```
pub fn fmt_mean_std(mean: f64, std: f64, decimals: usize) -> String {
    format!(
        "{} ± {}",
        fmt_fixed(mean, decimals),
        fmt_fixed(std, decimals)
    )
}

/// A p-value: three decimals from 0.001 up ("0.012", "0.500"), scientific notation with two
/// significant digits below ("3.2e-5"), "0" for exactly zero, "NaN" for NaN. Values outside
/// [0, 1] are printed as they are rather than hidden.
///
/// ```
/// assert_eq!(kd_report::fmt_p_value(0.0123), "0.012");
/// assert_eq!(kd_report::fmt_p_value(3.21e-5), "3.2e-5");
/// ```
pub fn fmt_p_value(p: f64) -> String {
    if p.is_nan() {
        "NaN".to_owned()
    } else if p == 0.0 {
        "0".to_owned()
    } else if p.abs() < 1e-3 {
        format!("{p:.1e}")
    } else {
        fmt_fixed(p, 3)
    }
}

/// `value` with `digits` significant digits (at least 1), in fixed notation for magnitudes in
/// [1e-3, 1e5) and scientific notation outside ("1.23e-5"). Used for a fit's slope and intercept.
///
/// ```
/// assert_eq!(kd_report::fmt_sig(0.012345, 3), "0.0123");
/// assert_eq!(kd_report::fmt_sig(-1234.5, 3), "-1234");
/// assert_eq!(kd_report::fmt_sig(6.02e23, 3), "6.02e23");
/// ```
pub fn fmt_sig(value: f64, digits: usize) -> String {
    let digits = digits.clamp(1, 17);
    if !value.is_finite() {
        return format!("{value}");
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor() as i32;
    if (-3..5).contains(&magnitude) {
        let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
        fmt_fixed(value, decimals)
    } else {
        let decimals = digits - 1;
        format!("{value:.decimals$e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_drops_negative_zero() {
        assert_eq!(fmt_fixed(-0.0, 1), "0.0");
        assert_eq!(fmt_fixed(-0.04, 1), "0.0");
        assert_eq!(fmt_fixed(-0.05001, 1), "-0.1");
        assert_eq!(fmt_fixed(-3.0, 0), "-3");
        assert_eq!(fmt_fixed(f64::NAN, 2), "NaN");
        assert_eq!(fmt_fixed(f64::NEG_INFINITY, 2), "-inf");
    }

    #[test]
    fn p_values() {
        assert_eq!(fmt_p_value(0.5), "0.500");
        assert_eq!(fmt_p_value(0.001), "0.001");
        assert_eq!(fmt_p_value(0.00099), "9.9e-4");
        assert_eq!(fmt_p_value(1e-300), "1.0e-300");
        assert_eq!(fmt_p_value(0.0), "0");
        assert_eq!(fmt_p_value(f64::NAN), "NaN");
    }

    #[test]
    fn significant_digits() {
        assert_eq!(fmt_sig(1.0, 3), "1.00");
        assert_eq!(fmt_sig(0.5, 2), "0.50");
        assert_eq!(fmt_sig(-0.000123, 2), "-1.2e-4");
        assert_eq!(fmt_sig(99999.0, 3), "99999");
        assert_eq!(fmt_sig(100000.0, 3), "1.00e5");
    }
}
