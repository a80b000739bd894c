//! Top-k accuracy and teacher–student agreement.

use crate::error::{MetricsError, Result};
use crate::rows::{argmax, labelled_rows, reject_nan, require_rows, row_count};

/// How many rows of `logits` (`[labels.len(), classes]`, row-major) have their label among the
/// `k` largest values. Ties are broken towards the lower class index, the order of a stable
/// descending sort and of `torch.argmax`. (`torch.topk` does not promise an order among ties; on
/// CPU `topk(zeros(10), 5)` gives indices 8, 6, 7, 5, 9, so it can differ on exactly tied rows.)
///
/// This is the evaluation loop's fast path for trusted shapes; [`top_k_accuracy`] checks its input
/// and returns an error instead.
///
/// # Panics
/// If `logits.len()` is not `labels.len() * classes`, or a label is not below `classes`.
pub fn top_k_correct(logits: &[f32], labels: &[usize], classes: usize, k: usize) -> usize {
    assert_eq!(
        logits.len(),
        labels.len() * classes,
        "logits are not [n, classes]"
    );
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|&(row, &label)| {
            assert!(label < classes, "label {label} is not below {classes}");
            in_top_k(row, label, k)
        })
        .count()
}

/// Whether `label` is among the `k` largest values of `row` (ties towards the lower index).
fn in_top_k(row: &[f32], label: usize, k: usize) -> bool {
    let target = row[label];
    // The label is in the top k when fewer than k classes rank strictly above it.
    let above = row
        .iter()
        .enumerate()
        .filter(|&(c, &v)| v > target || (v == target && c < label))
        .count();
    above < k
}

/// The fraction of rows of `logits` (`[labels.len(), classes]`) whose label is among the `k`
/// largest values, in `[0, 1]`; ties as [`top_k_correct`]. Infinite logits are allowed, NaN is not.
///
/// # Errors
/// Zero classes, `logits` not `[labels.len(), classes]`, a label not below `classes`, no rows, or a
/// NaN logit.
pub fn top_k_accuracy(logits: &[f32], labels: &[usize], classes: usize, k: usize) -> Result<f64> {
    let rows = labelled_rows(logits, labels, classes)?;
    require_rows("top-k accuracy", rows)?;
    reject_nan("logits", logits)?;
    let correct = logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|&(row, &label)| in_top_k(row, label, k))
        .count();
    Ok(correct as f64 / rows as f64)
}

/// The fraction of rows on which teacher and student predict the same class (the same argmax,
/// ties towards the lower index), in `[0, 1]`. Both are `[n, classes]`, row-major.
///
/// # Errors
/// Zero classes, a slice that is not whole rows, different row counts, no rows, or a NaN logit.
pub fn agreement(teacher: &[f32], student: &[f32], classes: usize) -> Result<f64> {
    let rows = row_count("teacher logits", teacher.len(), classes)?;
    let student_rows = row_count("student logits", student.len(), classes)?;
    if rows != student_rows {
        return Err(MetricsError::LengthMismatch {
            left: "teacher logits (rows)",
            left_len: rows,
            right: "student logits (rows)",
            right_len: student_rows,
        });
    }
    require_rows("agreement", rows)?;
    reject_nan("teacher logits", teacher)?;
    reject_nan("student logits", student)?;
    let same = teacher
        .chunks_exact(classes)
        .zip(student.chunks_exact(classes))
        .filter(|&(t, s)| argmax(t) == argmax(s))
        .count();
    Ok(same as f64 / rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_and_top2() {
        let logits = [0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.0, 0.1, 1.0];
        let labels = [1, 1, 0];
        assert_eq!(top_k_correct(&logits, &labels, 3, 1), 1);
        assert_eq!(top_k_correct(&logits, &labels, 3, 2), 2);
        assert_eq!(top_k_correct(&logits, &labels, 3, 3), 3);
        assert_eq!(top_k_accuracy(&logits, &labels, 3, 2), Ok(2.0 / 3.0));
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        let logits = [1.0, 1.0];
        assert_eq!(top_k_correct(&logits, &[0], 2, 1), 1);
        let logits = [1.0, 1.0];
        assert_eq!(top_k_correct(&logits, &[1], 2, 1), 0);
        assert_eq!(agreement(&[1.0, 1.0], &[2.0, 1.0], 2), Ok(1.0));
        assert_eq!(agreement(&[1.0, 1.0], &[1.0, 2.0], 2), Ok(0.0));
    }

    #[test]
    fn agreement_counts_matching_argmax() {
        let teacher = [0.0, 1.0, 5.0, 0.0, 0.0, 0.0];
        let student = [0.0, 9.0, 0.0, 1.0, 3.0, -1.0];
        assert_eq!(agreement(&teacher, &student, 2), Ok(2.0 / 3.0));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            top_k_accuracy(&[0.0; 6], &[0, 1], 2, 1),
            Err(MetricsError::LengthMismatch {
                left: "logits (rows)",
                left_len: 3,
                right: "labels",
                right_len: 2
            })
        );
        assert_eq!(
            top_k_accuracy(&[0.0; 4], &[0, 2], 2, 1),
            Err(MetricsError::LabelOutOfRange {
                row: 1,
                label: 2,
                classes: 2
            })
        );
        assert_eq!(
            top_k_accuracy(&[], &[], 0, 1),
            Err(MetricsError::ZeroClasses)
        );
        assert!(matches!(
            top_k_accuracy(&[], &[], 3, 1),
            Err(MetricsError::TooFewSamples { n: 0, .. })
        ));
        assert!(matches!(
            agreement(&[0.0, f32::NAN], &[0.0, 1.0], 2),
            Err(MetricsError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            agreement(&[0.0; 4], &[0.0; 3], 2),
            Err(MetricsError::NotRows { len: 3, .. })
        ));
    }
}
