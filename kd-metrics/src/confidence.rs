//! Per-sample confidence of a model: softmax entropy and the top logit difference (TLD), the two
//! measures of "When does Knowledge Distillation Help?" (kd-codebases.md A.9).

use crate::error::{MetricsError, Result};
use crate::rows::{
    check_temperature, labelled_rows, log_softmax_into, reject_non_finite, row_count,
};

/// The softmax entropy `H = −Σ_j p_j ln p_j` (nats) of each row of `logits` (`[n, classes]`,
/// row-major) at temperature 1; see [`entropy_at`].
///
/// # Errors
/// As [`entropy_at`].
pub fn entropy(logits: &[f32], classes: usize) -> Result<Vec<f64>> {
    entropy_at(logits, classes, 1.0)
}

/// The softmax entropy `H = −Σ_j p_j ln p_j` (nats), `p = softmax(z / temperature)`, of each row
/// of `logits` (`[n, classes]`, row-major); each value is in `[0, ln classes]`.
///
/// It is computed as `−Σ_j p_j · log_softmax_j` in f64, the numerics kd-codebases.md C.8 asks for:
/// the reference code's `−Σ p·log p` is NaN once a probability underflows to 0, whereas here
/// `log_softmax` stays finite and a term whose probability is 0 contributes 0.
///
/// # Errors
/// Zero classes, `logits` not whole rows, a non-finite logit, or a temperature that is not finite
/// and positive or is so small that a scaled logit overflows.
pub fn entropy_at(logits: &[f32], classes: usize, temperature: f64) -> Result<Vec<f64>> {
    row_count("logits", logits.len(), classes)?;
    check_temperature(temperature)?;
    reject_non_finite("logits", logits)?;
    let largest = logits
        .iter()
        .fold(0.0f64, |m, &z| m.max(f64::from(z).abs()));
    if !(largest / temperature).is_finite() {
        return Err(MetricsError::InvalidParameter {
            name: "temperature",
            value: temperature.to_string(),
            expected: "large enough that logits / temperature stays finite",
        });
    }
    let mut log_p = vec![0.0; classes];
    Ok(logits
        .chunks_exact(classes)
        .map(|row| {
            log_softmax_into(row, temperature, &mut log_p);
            -log_p
                .iter()
                .map(|&l| {
                    let p = l.exp();
                    if p == 0.0 { 0.0 } else { p * l }
                })
                .sum::<f64>()
        })
        .collect())
}

/// The top logit difference of each row of `logits` (`[labels.len(), classes]`, row-major):
/// `TLD = z[y] − max_{k≠y} z[k]`, the margin of the true class over its strongest rival. It is
/// positive when the label is the unique argmax and negative when the sample is misclassified;
/// the reference's `topk(z, 2)` form gives the same value, including 0 on a tie for the top.
///
/// # Errors
/// Fewer than two classes (there is no rival), `logits` not `[labels.len(), classes]`, a label not
/// below `classes`, or a non-finite logit.
pub fn tld(logits: &[f32], labels: &[usize], classes: usize) -> Result<Vec<f64>> {
    if classes == 1 {
        return Err(MetricsError::InvalidParameter {
            name: "classes",
            value: "1".into(),
            expected: "at least 2 for a top logit difference",
        });
    }
    labelled_rows(logits, labels, classes)?;
    reject_non_finite("logits", logits)?;
    Ok(logits
        .chunks_exact(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let rival = row
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != label)
                .map(|(_, &v)| v)
                .fold(f32::NEG_INFINITY, f32::max);
            f64::from(row[label]) - f64::from(rival)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_rows_have_entropy_ln_classes() {
        let h = entropy(&[0.5; 10], 5).unwrap();
        for v in h {
            assert!((v - 5f64.ln()).abs() < 1e-15);
        }
    }

    #[test]
    fn underflowing_probabilities_are_not_nan() {
        let h = entropy(&[1000.0, 0.0, -1000.0], 3).unwrap();
        assert_eq!(h, vec![0.0]);
        // At a high temperature the same row is nearly uniform.
        let h = entropy_at(&[1000.0, 0.0, -1000.0], 3, 1e6).unwrap();
        assert!((h[0] - 3f64.ln()).abs() < 1e-5, "{h:?}");
    }

    #[test]
    fn two_class_entropy() {
        // p = (1/(1+e), e/(1+e)).
        let h = entropy(&[0.0, 1.0], 2).unwrap()[0];
        let p: f64 = 1.0 / (1.0 + 1f64.exp());
        let want = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        assert!((h - want).abs() < 1e-15);
        let h2 = entropy_at(&[0.0, 2.0], 2, 2.0).unwrap()[0];
        assert!((h2 - want).abs() < 1e-15);
    }

    #[test]
    fn tld_signs() {
        let logits = [3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 2.0, 2.0, 0.0];
        let got = tld(&logits, &[0, 1, 1], 3).unwrap();
        assert_eq!(got, vec![1.0, -2.0, 0.0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            entropy_at(&[0.0; 4], 2, 0.0),
            Err(MetricsError::InvalidParameter {
                name: "temperature",
                ..
            })
        ));
        assert!(matches!(
            tld(&[0.0; 2], &[0, 0], 1),
            Err(MetricsError::InvalidParameter {
                name: "classes",
                ..
            })
        ));
        assert!(matches!(
            entropy_at(&[1e30, 0.0], 2, 1e-300),
            Err(MetricsError::InvalidParameter {
                name: "temperature",
                ..
            })
        ));
        assert_eq!(entropy(&[0.0; 3], 0), Err(MetricsError::ZeroClasses));
        assert!(matches!(
            entropy(&[0.0, f32::NAN], 2),
            Err(MetricsError::NonFinite { index: 1, .. })
        ));
    }
}
