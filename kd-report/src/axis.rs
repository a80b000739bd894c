//! Axis ranges and their ticks by the 1-2-5 rule: ticks are the integer multiples of a step
//! `m·10^e` with `m` one of 1, 2, 5 that fall inside the range.

use crate::error::{ReportError, Result};

/// The most ticks an axis may have; a target above this is lowered to it.
const MAX_TICKS: usize = 50;

/// The fraction of the data's span added on each side by [`Axis::covering`], so that no point
/// sits on the frame.
const PADDING: f64 = 0.05;

/// A span this small relative to the values (or absolutely) is treated as a single value: ticks
/// finer than this would need more digits than a label can show.
const RELATIVE_DEGENERATE: f64 = 1e-9;
const ABSOLUTE_DEGENERATE: f64 = 1e-300;

/// A linear axis: its range, its step and its ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    lo: f64,
    hi: f64,
    mantissa: i64,
    exponent: i32,
    ticks: Vec<f64>,
}

impl Axis {
    /// An axis over `[min, max]` with 5 % to spare on each side, so that no point sits on the
    /// frame, and about `target_ticks` ticks inside it (2 ..= 50 are aimed at). `min > max` is
    /// read as the same range swapped. A single value or a range too narrow to label (relative
    /// width below 1e-9) is first widened to ±10 % of the value, or to [−1, 1] around zero.
    ///
    /// # Errors
    /// A bound that is not finite, or a range whose padding overflows `f64`; `what` names the
    /// axis in the error.
    pub fn covering(what: &'static str, min: f64, max: f64, target_ticks: usize) -> Result<Self> {
        let (min, max) = checked_range(what, min, max)?;
        let pad = PADDING * (max - min);
        Self::with_ticks(what, min - pad, max + pad, target_ticks)
    }

    /// An axis whose range is exactly `[min, max]` (after the same widening of a single value as
    /// [`Axis::covering`]), with the 1-2-5 ticks that fall inside it: for a colour bar.
    ///
    /// # Errors
    /// As [`Axis::covering`].
    pub fn within(what: &'static str, min: f64, max: f64, target_ticks: usize) -> Result<Self> {
        let (min, max) = checked_range(what, min, max)?;
        Self::with_ticks(what, min, max, target_ticks)
    }

    /// The axis `[lo, hi]` with the multiples of the step nearest `(hi − lo) / (target − 1)`
    /// that lie inside it, or of a finer 1-2-5 step where that leaves fewer than two ticks.
    fn with_ticks(what: &'static str, lo: f64, hi: f64, target_ticks: usize) -> Result<Self> {
        let too_wide = || ReportError::RangeTooWide { what, lo, hi };
        let (mut mantissa, mut exponent) = nice_step((hi - lo) / intervals(target_ticks));
        loop {
            let step = step_value(mantissa, exponent);
            let first = (lo / step).ceil();
            let last = (hi / step).floor();
            // `checked_range` keeps |value| / span below about 1e9, so `k` is far inside i64
            // and exact in f64; the bound on the count guards the loop whatever happens.
            if !(first.is_finite() && last.is_finite()) || last - first > (3 * MAX_TICKS) as f64 {
                return Err(too_wide());
            }
            let ticks: Vec<f64> = (first as i64..=last as i64)
                .map(|k| multiple(k, mantissa, exponent))
                .filter(|t| (lo..=hi).contains(t))
                .collect();
            if !ticks.iter().all(|t| t.is_finite()) {
                return Err(too_wide());
            }
            // A range always holds two multiples of a step below half its width, so this ends
            // within three rounds.
            if ticks.len() >= 2 || step < (hi - lo) / 4.0 {
                return Ok(Self {
                    lo,
                    hi,
                    mantissa,
                    exponent,
                    ticks,
                });
            }
            (mantissa, exponent) = finer(mantissa, exponent);
        }
    }

    /// The lower end of the axis.
    pub fn lo(&self) -> f64 {
        self.lo
    }

    /// The upper end of the axis (always above [`Axis::lo`]).
    pub fn hi(&self) -> f64 {
        self.hi
    }

    /// The distance between ticks, `m·10^e` with `m` ∈ {1, 2, 5}.
    pub fn step(&self) -> f64 {
        step_value(self.mantissa, self.exponent)
    }

    /// The step as `(m, e)`: `step = m·10^e`, `m` ∈ {1, 2, 5}.
    pub fn step_parts(&self) -> (i64, i32) {
        (self.mantissa, self.exponent)
    }

    /// The tick values, ascending, each an integer multiple of the step.
    pub fn ticks(&self) -> &[f64] {
        &self.ticks
    }

    /// Where `value` lies on the axis: 0 at [`Axis::lo`], 1 at [`Axis::hi`].
    pub fn fraction(&self, value: f64) -> f64 {
        // Halves, so that a range near f64::MAX does not overflow.
        (value / 2.0 - self.lo / 2.0) / (self.hi / 2.0 - self.lo / 2.0)
    }

    /// The tick labels, with as many decimals as the step needs (`0.25` is impossible, so a step
    /// of `0.2` or `0.5` needs one), in scientific notation for very large or very fine ticks.
    pub fn labels(&self) -> Vec<String> {
        self.ticks.iter().map(|&t| self.label(t)).collect()
    }

    /// The label of one value in this axis's format (see [`Axis::labels`]).
    pub fn label(&self, value: f64) -> String {
        let largest = self.lo.abs().max(self.hi.abs());
        if largest >= 1e6 || self.exponent <= -5 {
            if value == 0.0 {
                return "0".to_owned();
            }
            let digits = (largest.log10().floor() as i32 - self.exponent).clamp(0, 15) as usize;
            format!("{value:.digits$e}")
        } else {
            let decimals = (-self.exponent).max(0) as usize;
            crate::format::fmt_fixed(value, decimals)
        }
    }
}

/// The range `[min, max]` ordered, with a degenerate one widened; an error for non-finite bounds
/// or a span that overflows.
fn checked_range(what: &'static str, a: f64, b: f64) -> Result<(f64, f64)> {
    let (min, max) = if a <= b { (a, b) } else { (b, a) };
    let too_wide = || ReportError::RangeTooWide {
        what,
        lo: min,
        hi: max,
    };
    if !(min.is_finite() && max.is_finite()) {
        return Err(too_wide());
    }
    let mid = min / 2.0 + max / 2.0;
    let span = max - min;
    let (min, max) = if span < ABSOLUTE_DEGENERATE || span <= RELATIVE_DEGENERATE * mid.abs() {
        if mid.abs() < ABSOLUTE_DEGENERATE {
            (-1.0, 1.0)
        } else {
            (mid - 0.1 * mid.abs(), mid + 0.1 * mid.abs())
        }
    } else {
        (min, max)
    };
    // Padding adds 10 % of the span, and the ticks may round out by one more step.
    if !(max - min).is_finite()
        || !(min - (max - min)).is_finite()
        || !(max + (max - min)).is_finite()
    {
        return Err(too_wide());
    }
    Ok((min, max))
}

/// How many intervals `target_ticks` ticks make, at least one.
fn intervals(target_ticks: usize) -> f64 {
    (target_ticks.clamp(2, MAX_TICKS) - 1) as f64
}

/// The step `m·10^e` nearest `raw` (Heckbert's "nice numbers": the mantissa is rounded at 1.5,
/// 3 and 7), as `(m, e)` with `m` ∈ {1, 2, 5}.
fn nice_step(raw: f64) -> (i64, i32) {
    let exponent = raw.log10().floor() as i32;
    match raw / pow10(exponent) {
        s if s < 1.5 => (1, exponent),
        s if s < 3.0 => (2, exponent),
        s if s < 7.0 => (5, exponent),
        _ => (1, exponent + 1),
    }
}

/// The next smaller 1-2-5 step: 5 → 2 → 1 → 0.5.
fn finer(mantissa: i64, exponent: i32) -> (i64, i32) {
    match mantissa {
        5 => (2, exponent),
        2 => (1, exponent),
        _ => (5, exponent - 1),
    }
}

/// `m·10^e`.
fn step_value(mantissa: i64, exponent: i32) -> f64 {
    multiple(1, mantissa, exponent)
}

/// `k·m·10^e`, rounded once: the integer `k·m` times or divided by an exact power of ten, so
/// that `3 × 0.1` is the `f64` nearest 0.3.
fn multiple(k: i64, mantissa: i64, exponent: i32) -> f64 {
    let integer = (k * mantissa) as f64;
    if exponent >= 0 {
        integer * pow10(exponent)
    } else {
        integer / pow10(-exponent)
    }
}

/// `10^e`, correctly rounded (`powi` multiplies and drifts).
fn pow10(exponent: i32) -> f64 {
    format!("1e{exponent}").parse().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_one_two_five() {
        assert_eq!(nice_step(0.9), (1, 0));
        assert_eq!(nice_step(1.4), (1, 0));
        assert_eq!(nice_step(2.2), (2, 0));
        assert_eq!(nice_step(3.0), (5, 0));
        assert_eq!(nice_step(7.0), (1, 1));
        assert_eq!(nice_step(0.04), (5, -2));
    }

    #[test]
    fn multiples_are_rounded_once() {
        assert_eq!(multiple(3, 1, -1), 0.3);
        assert_eq!(multiple(7, 2, -2), 0.14);
        assert_eq!(multiple(-4, 5, 3), -20_000.0);
    }

    #[test]
    fn unit_range() {
        let axis = Axis::covering("x", 0.0, 1.0, 6).unwrap();
        assert_eq!(axis.step_parts(), (2, -1));
        assert_eq!((axis.lo(), axis.hi()), (-0.05, 1.05));
        assert_eq!(axis.ticks(), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(axis.labels(), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    }

    #[test]
    fn within_keeps_the_range() {
        let axis = Axis::within("c", 0.13, 0.87, 5).unwrap();
        assert_eq!((axis.lo(), axis.hi()), (0.13, 0.87));
        assert_eq!(axis.ticks(), &[0.2, 0.4, 0.6, 0.8]);
    }

    #[test]
    fn at_least_two_ticks() {
        // The nearest step to a third of [2.67, 3.33] is 0.5, which leaves only 3.0 inside.
        let axis = Axis::covering("x", 3.0, 3.0, 3).unwrap();
        assert_eq!(axis.step_parts(), (2, -1));
        assert_eq!(axis.labels(), ["2.8", "3.0", "3.2"]);
        for target in 2..12 {
            for (lo, hi) in [(0.0, 1.0), (0.1, 0.35), (7.0, 7.9), (-1e-7, 3e-7)] {
                assert!(Axis::within("c", lo, hi, target).unwrap().ticks().len() >= 2);
            }
        }
    }

    #[test]
    fn degenerate_ranges_widen() {
        let single = Axis::covering("x", 5.0, 5.0, 6).unwrap();
        assert!(single.lo() < 5.0 && single.hi() > 5.0);
        let zero = Axis::covering("x", 0.0, 0.0, 6).unwrap();
        assert!(zero.lo() <= -1.0 && zero.hi() >= 1.0);
        let near = Axis::covering("x", 1.0, 1.0 + 1e-15, 6).unwrap();
        assert!(near.lo() < 1.0 && near.hi() > 1.0 && near.ticks().len() <= 12);
    }

    #[test]
    fn scientific_labels_for_large_and_fine_ticks() {
        let large = Axis::covering("x", 1e6, 2e6, 6).unwrap();
        assert!(
            large.labels().iter().any(|l| l == "1.0e6"),
            "{:?}",
            large.labels()
        );
        let fine = Axis::covering("x", 1e-7, 3e-7, 6).unwrap();
        assert!(fine.labels().iter().all(|l| l == "0" || l.contains('e')));
    }

    #[test]
    fn overflowing_ranges_are_errors() {
        assert!(Axis::covering("x", -f64::MAX, f64::MAX, 6).is_err());
        assert!(Axis::covering("x", 0.0, f64::NAN, 6).is_err());
        assert!(Axis::covering("x", 0.0, 1e300, 6).is_ok());
    }
}
