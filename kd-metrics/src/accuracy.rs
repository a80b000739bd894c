//! Top-k accuracy.

/// How many rows of `logits` (`[labels.len(), classes]`, row-major) have their label among the
/// `k` largest values. Ties are broken towards the lower class index, as `torch.topk` does on CPU.
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
            let target = row[label];
            // The label is in the top k when fewer than k classes rank strictly above it.
            let above = row
                .iter()
                .enumerate()
                .filter(|&(c, &v)| v > target || (v == target && c < label))
                .count();
            above < k
        })
        .count()
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
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        let logits = [1.0, 1.0];
        assert_eq!(top_k_correct(&logits, &[0], 2, 1), 1);
        let logits = [1.0, 1.0];
        assert_eq!(top_k_correct(&logits, &[1], 2, 1), 0);
    }
}
