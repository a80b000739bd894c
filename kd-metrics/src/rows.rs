//! Input checks and per-row helpers shared by the metrics on `[n, classes]` slices.

use crate::error::{MetricsError, Result};

/// The number of rows of a flat `[n, classes]` slice.
pub(crate) fn row_count(what: &'static str, len: usize, classes: usize) -> Result<usize> {
    if classes == 0 {
        return Err(MetricsError::ZeroClasses);
    }
    if len % classes != 0 {
        return Err(MetricsError::NotRows { what, len, classes });
    }
    Ok(len / classes)
}

/// The number of rows of `logits`, checked against `labels` (one per row, each a class index).
pub(crate) fn labelled_rows(logits: &[f32], labels: &[usize], classes: usize) -> Result<usize> {
    let rows = row_count("logits", logits.len(), classes)?;
    if rows != labels.len() {
        return Err(MetricsError::LengthMismatch {
            left: "logits (rows)",
            left_len: rows,
            right: "labels",
            right_len: labels.len(),
        });
    }
    if let Some((row, &label)) = labels.iter().enumerate().find(|&(_, &l)| l >= classes) {
        return Err(MetricsError::LabelOutOfRange {
            row,
            label,
            classes,
        });
    }
    Ok(rows)
}

/// Fails on the first NaN.
pub(crate) fn reject_nan(what: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| v.is_nan()) {
        Some(index) => Err(MetricsError::NonFinite {
            what,
            index,
            value: f64::NAN,
        }),
        None => Ok(()),
    }
}

/// Fails on the first NaN or infinity.
pub(crate) fn reject_non_finite(what: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MetricsError::NonFinite {
            what,
            index,
            value: f64::from(values[index]),
        }),
        None => Ok(()),
    }
}

/// Fails on the first NaN or infinity.
pub(crate) fn reject_non_finite_f64(what: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MetricsError::NonFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// The index of the largest value; ties go to the lower index, as `torch.argmax` on CPU. The row
/// must be non-empty and free of NaN.
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (c, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = c;
        }
    }
    best
}

/// `log_softmax(row / temperature)` in f64 into `out`, by subtracting the maximum before the
/// exponentials so that no exponential overflows. The row must be non-empty and finite.
pub(crate) fn log_softmax_into(row: &[f32], temperature: f64, out: &mut [f64]) {
    for (o, &z) in out.iter_mut().zip(row) {
        *o = f64::from(z) / temperature;
    }
    let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    for o in out.iter_mut() {
        *o -= max;
    }
    let log_sum = out.iter().map(|&s| s.exp()).sum::<f64>().ln();
    for o in out.iter_mut() {
        *o -= log_sum;
    }
}

/// Fails unless `temperature` is finite and positive.
pub(crate) fn check_temperature(temperature: f64) -> Result<()> {
    if temperature.is_finite() && temperature > 0.0 {
        Ok(())
    } else {
        Err(MetricsError::InvalidParameter {
            name: "temperature",
            value: temperature.to_string(),
            expected: "finite and positive",
        })
    }
}

/// Fails when there are no rows to average over.
pub(crate) fn require_rows(what: &'static str, rows: usize) -> Result<()> {
    if rows == 0 {
        Err(MetricsError::TooFewSamples { what, n: 0, min: 1 })
    } else {
        Ok(())
    }
}
