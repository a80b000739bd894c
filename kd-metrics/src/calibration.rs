//! Negative log-likelihood and expected calibration error, from logits.

use crate::error::{MetricsError, Result};
use crate::rows::{labelled_rows, log_softmax_into, reject_non_finite, require_rows};

/// The number of confidence bins of the usual ECE (Guo et al. 2017, and the `_ECELoss` copied
/// around PyTorch code bases).
pub const ECE_BINS: usize = 15;

/// The mean cross-entropy `−(1/n) Σ_i log softmax(z_i)[y_i]` of `logits` (`[labels.len(),
/// classes]`, row-major) against `labels`, in nats: `F.cross_entropy` with mean reduction. The
/// log-softmax subtracts each row's maximum first and runs in f64, so large logits neither overflow
/// nor lose the small probabilities.
///
/// # Errors
/// Zero classes, `logits` not `[labels.len(), classes]`, a label not below `classes`, no rows, or a
/// non-finite logit.
pub fn nll(logits: &[f32], labels: &[usize], classes: usize) -> Result<f64> {
    let rows = labelled_rows(logits, labels, classes)?;
    require_rows("nll", rows)?;
    reject_non_finite("logits", logits)?;
    let mut log_p = vec![0.0; classes];
    let total: f64 = logits
        .chunks_exact(classes)
        .zip(labels)
        .map(|(row, &label)| {
            log_softmax_into(row, 1.0, &mut log_p);
            -log_p[label]
        })
        .sum();
    Ok(total / rows as f64)
}

/// One confidence bin of a reliability diagram: the rows whose max-softmax confidence lies in
/// `(lower, upper]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationBin {
    /// The bin's lower edge (excluded).
    pub lower: f64,
    /// The bin's upper edge (included).
    pub upper: f64,
    /// How many rows fell in the bin.
    pub count: usize,
    /// How many of them were predicted correctly (argmax equal to the label).
    pub correct: usize,
    /// The sum of their confidences.
    pub confidence_sum: f64,
}

impl CalibrationBin {
    /// The fraction of the bin's rows predicted correctly; `None` for an empty bin.
    pub fn accuracy(&self) -> Option<f64> {
        (self.count > 0).then(|| self.correct as f64 / self.count as f64)
    }

    /// The mean confidence of the bin's rows; `None` for an empty bin.
    pub fn mean_confidence(&self) -> Option<f64> {
        (self.count > 0).then(|| self.confidence_sum / self.count as f64)
    }
}

/// The expected calibration error and the per-bin table it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Ece {
    /// `Σ_b |accuracy_b − confidence_b| · n_b / n`, in `[0, 1]`.
    pub ece: f64,
    /// The bins, in increasing confidence.
    pub bins: Vec<CalibrationBin>,
}

/// The expected calibration error with [`ECE_BINS`] (15) equal-width bins; see [`ece_with_bins`].
///
/// # Errors
/// As [`ece_with_bins`].
pub fn ece(logits: &[f32], labels: &[usize], classes: usize) -> Result<Ece> {
    ece_with_bins(logits, labels, classes, ECE_BINS)
}

/// The expected calibration error of `logits` (`[labels.len(), classes]`, row-major) against
/// `labels`: each row's confidence is its largest softmax probability and its prediction is the
/// argmax (ties towards the lower index); the confidences fall into `bins` equal-width bins
/// `(b/bins, (b+1)/bins]` (the edges as `linspace(0, 1, bins + 1)`); and
/// `ECE = Σ_b |acc_b − conf_b| · n_b / n`, where `acc_b` and `conf_b` are the bin's accuracy and
/// mean confidence and `n_b` its size.
///
/// # Errors
/// Zero classes, zero bins, `logits` not `[labels.len(), classes]`, a label not below `classes`,
/// no rows, or a non-finite logit.
pub fn ece_with_bins(logits: &[f32], labels: &[usize], classes: usize, bins: usize) -> Result<Ece> {
    if bins == 0 {
        return Err(MetricsError::InvalidParameter {
            name: "bins",
            value: "0".into(),
            expected: "at least 1",
        });
    }
    let rows = labelled_rows(logits, labels, classes)?;
    require_rows("ece", rows)?;
    reject_non_finite("logits", logits)?;

    let edges = unit_edges(bins);
    let mut table: Vec<CalibrationBin> = edges
        .windows(2)
        .map(|e| CalibrationBin {
            lower: e[0],
            upper: e[1],
            count: 0,
            correct: 0,
            confidence_sum: 0.0,
        })
        .collect();
    let mut log_p = vec![0.0; classes];
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        log_softmax_into(row, 1.0, &mut log_p);
        // The first maximum of log_p is the first maximum of the row: the shift is monotone.
        let (predicted, max_log_p) =
            log_p
                .iter()
                .copied()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (c, v)| {
                    if v > best.1 { (c, v) } else { best }
                });
        let confidence = max_log_p.exp();
        let bin = &mut table[bin_of(confidence, &edges)];
        bin.count += 1;
        bin.correct += usize::from(predicted == label);
        bin.confidence_sum += confidence;
    }
    // |acc_b − conf_b| · n_b / n = |correct_b − Σ conf| / n.
    let ece = table
        .iter()
        .map(|b| (b.correct as f64 - b.confidence_sum).abs())
        .sum::<f64>()
        / rows as f64;
    Ok(Ece { ece, bins: table })
}

/// `numpy.linspace(0, 1, bins + 1)`: `i · (1/bins)`, with the last edge exactly 1.
fn unit_edges(bins: usize) -> Vec<f64> {
    let step = 1.0 / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step).collect();
    edges[bins] = 1.0;
    edges
}

/// The bin `b` with `edges[b] < confidence <= edges[b + 1]`. A confidence is at least 1/classes,
/// so it is above the first edge (0); rounding can only move the guess by one.
fn bin_of(confidence: f64, edges: &[f64]) -> usize {
    let bins = edges.len() - 1;
    let mut b = ((confidence * bins as f64).ceil() as usize).clamp(1, bins) - 1;
    if b > 0 && confidence <= edges[b] {
        b -= 1;
    }
    if b + 1 < bins && confidence > edges[b + 1] {
        b += 1;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_uniform_logits_is_ln_classes() {
        let got = nll(&[3.0; 8], &[0, 3], 4).unwrap();
        assert!((got - 4f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn nll_survives_huge_logits() {
        let got = nll(&[1000.0, 0.0, -1000.0, 0.0, 1000.0, 0.0], &[1, 0], 3).unwrap();
        assert!((got - (1000.0 + 1000.0) / 2.0).abs() < 1e-9, "{got}");
    }

    #[test]
    fn perfectly_confident_and_right_is_calibrated() {
        let e = ece(&[100.0, 0.0, 0.0, 100.0], &[0, 1], 2).unwrap();
        assert_eq!(e.ece, 0.0);
        assert_eq!(e.bins.len(), 15);
        assert_eq!(e.bins[14].count, 2);
        assert_eq!(e.bins[14].accuracy(), Some(1.0));
        assert_eq!(e.bins[0].accuracy(), None);
    }

    #[test]
    fn confidence_on_an_edge_goes_to_the_lower_bin() {
        let edges = unit_edges(4);
        assert_eq!(bin_of(0.25, &edges), 0);
        assert_eq!(bin_of(0.2500001, &edges), 1);
        assert_eq!(bin_of(1.0, &edges), 3);
        assert_eq!(bin_of(0.5, &edges), 1);
        let edges = unit_edges(15);
        for (b, &e) in edges.iter().enumerate().skip(1) {
            assert_eq!(bin_of(e, &edges), b - 1);
        }
    }

    #[test]
    fn half_confident_and_always_wrong() {
        // Two classes with equal logits: confidence 0.5, prediction class 0, labels 1.
        let e = ece_with_bins(&[0.0; 6], &[1, 1, 1], 2, 10).unwrap();
        assert!((e.ece - 0.5).abs() < 1e-15);
        assert_eq!(e.bins[4].count, 3);
        assert_eq!(e.bins[4].mean_confidence(), Some(0.5));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            nll(&[0.0, f32::INFINITY], &[0], 2),
            Err(MetricsError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            ece_with_bins(&[0.0; 2], &[0], 2, 0),
            Err(MetricsError::InvalidParameter { name: "bins", .. })
        ));
    }
}
