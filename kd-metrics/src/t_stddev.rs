//! T. stddev, the good-DA-in-KD paper's measure of a data augmentation: the standard deviation of
//! the teacher's mean probability (good-da-in-kd.md §1.2; `helper/loops.py`, `train_distill`,
//! block "Check teacher's avg probability", flag `--utils.check_ce_var`).

use crate::error::{MetricsError, Result};
use crate::rows::row_count;

/// Probability tensors per group in the paper's runs: with `--lw_mix` every iteration pushes the
/// teacher's probabilities on the original and on the augmented batch, and a group closes at
/// `len(buf) >= 10`, i.e. after 5 iterations.
pub const PAPER_TENSORS_PER_GROUP: usize = 10;

/// What a group containing a NaN or infinite probability does to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFiniteGroups {
    /// As the reference: the group's mean is non-finite in the affected classes, their std over
    /// groups is NaN from then on, and so is every later T. stddev (it is cumulative).
    #[default]
    Propagate,
    /// Leave the group out of the statistic (as if it had not been sampled) and count it in
    /// [`TStddev::skipped_groups`]; later groups continue the statistic.
    Skip,
}

/// How [`TStddev`] groups its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TStddevConfig {
    /// A group closes at the end of the first iteration after which at least this many
    /// probability tensors (batches) are buffered: the reference's `num`, 10 with `--lw_mix` (the
    /// paper), 5 without (original batches only).
    pub tensors_per_group: usize,
    /// What a group with a non-finite probability does.
    pub non_finite: NonFiniteGroups,
}

impl Default for TStddevConfig {
    /// The paper's setting: [`PAPER_TENSORS_PER_GROUP`] and [`NonFiniteGroups::Propagate`].
    fn default() -> Self {
        Self {
            tensors_per_group: PAPER_TENSORS_PER_GROUP,
            non_finite: NonFiniteGroups::Propagate,
        }
    }
}

/// The cumulative T. stddev of a stream of teacher probability batches, exactly as the reference
/// groups and averages them:
///
/// ```text
/// per iteration:   buf += [softmax(T(x)), softmax(T(x'))]          # [B, C] each, T = 1
///                  if len(buf) >= tensors_per_group:
///                      groups += [cat(buf).mean(dim=0)]; buf = []   # a [C] mean per group
/// T. stddev (after G ≥ 2 groups) = (1/C) Σ_c √( Σ_g (m_gc − m̄_c)² / (G − 1) )
/// ```
///
/// - A group's mean is over its **rows** (`cat` then `mean`), so a group holding the epoch's short
///   last batch weighs each row alike and has fewer rows than the others.
/// - The buffer is not reset at epoch boundaries, and tensors still buffered at the end of the
///   stream do not count.
/// - The std over groups is unbiased (`torch.std`), per class; T. stddev is its mean over the
///   classes and uses every group so far (cumulative). With one group it is undefined (the
///   reference prints NaN); [`TStddev::value`] returns `None`.
/// - The reference runs in f32 on the GPU; this accumulates in f64 (per-class running mean and
///   sum of squares by Welford's update), so it agrees with the reference to f32 rounding.
/// - A group with a NaN or infinite probability is handled by [`NonFiniteGroups`].
#[derive(Debug, Clone)]
pub struct TStddev {
    classes: usize,
    config: TStddevConfig,
    /// Column sums of the buffered rows.
    pending_sum: Vec<f64>,
    pending_rows: usize,
    pending_tensors: usize,
    pending_non_finite: bool,
    /// Groups in the statistic.
    groups: usize,
    skipped: usize,
    /// Welford's running mean and sum of squared deviations of the group means, per class.
    mean: Vec<f64>,
    squares: Vec<f64>,
}

impl TStddev {
    /// An empty accumulator for probability rows of `classes` classes.
    ///
    /// # Errors
    /// Zero classes or zero tensors per group.
    pub fn new(classes: usize, config: TStddevConfig) -> Result<Self> {
        if classes == 0 {
            return Err(MetricsError::ZeroClasses);
        }
        if config.tensors_per_group == 0 {
            return Err(MetricsError::InvalidParameter {
                name: "tensors_per_group",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        Ok(Self {
            classes,
            config,
            pending_sum: vec![0.0; classes],
            pending_rows: 0,
            pending_tensors: 0,
            pending_non_finite: false,
            groups: 0,
            skipped: 0,
            mean: vec![0.0; classes],
            squares: vec![0.0; classes],
        })
    }

    /// Adds one iteration's probability tensors (row-major `[rows, classes]` each; in the paper
    /// the original then the augmented batch), then closes a group if at least
    /// `tensors_per_group` tensors are buffered. Returns whether a group closed, i.e. whether the
    /// reference would print T. stddev at this step.
    ///
    /// # Errors
    /// A tensor that is not whole rows or has no rows; the accumulator is then unchanged.
    pub fn push_iteration(&mut self, tensors: &[&[f32]]) -> Result<bool> {
        for t in tensors {
            let rows = row_count("probabilities", t.len(), self.classes)?;
            if rows == 0 {
                return Err(MetricsError::TooFewSamples {
                    what: "a probability tensor",
                    n: 0,
                    min: 1,
                });
            }
        }
        for t in tensors {
            for row in t.chunks_exact(self.classes) {
                for (sum, &p) in self.pending_sum.iter_mut().zip(row) {
                    *sum += f64::from(p);
                }
                self.pending_non_finite |= row.iter().any(|p| !p.is_finite());
            }
            self.pending_rows += t.len() / self.classes;
            self.pending_tensors += 1;
        }
        if self.pending_tensors < self.config.tensors_per_group {
            return Ok(false);
        }
        self.close_group();
        Ok(true)
    }

    fn close_group(&mut self) {
        let skip = self.pending_non_finite && self.config.non_finite == NonFiniteGroups::Skip;
        if skip {
            self.skipped += 1;
        } else {
            self.groups += 1;
            let g = self.groups as f64;
            let rows = self.pending_rows as f64;
            for c in 0..self.classes {
                let group_mean = self.pending_sum[c] / rows;
                let delta = group_mean - self.mean[c];
                self.mean[c] += delta / g;
                self.squares[c] += delta * (group_mean - self.mean[c]);
            }
        }
        self.pending_sum.fill(0.0);
        self.pending_rows = 0;
        self.pending_tensors = 0;
        self.pending_non_finite = false;
    }

    /// T. stddev over the groups so far: the mean over classes of the unbiased std of the group
    /// means. `None` before the second group; NaN after a non-finite group under
    /// [`NonFiniteGroups::Propagate`].
    pub fn value(&self) -> Option<f64> {
        if self.groups < 2 {
            return None;
        }
        let dof = (self.groups - 1) as f64;
        let sum: f64 = self.squares.iter().map(|s| (s / dof).sqrt()).sum();
        Some(sum / self.classes as f64)
    }

    /// The groups in the statistic (`NumOfSampledStd` in the reference's log line).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The groups left out for a non-finite probability (always 0 under
    /// [`NonFiniteGroups::Propagate`]).
    pub fn skipped_groups(&self) -> usize {
        self.skipped
    }

    /// The tensors buffered towards the next group.
    pub fn pending_tensors(&self) -> usize {
        self.pending_tensors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_is_undefined_two_are_not() {
        let config = TStddevConfig {
            tensors_per_group: 2,
            ..Default::default()
        };
        let mut t = TStddev::new(2, config).unwrap();
        assert!(!t.push_iteration(&[&[1.0, 0.0]]).unwrap());
        assert!(t.push_iteration(&[&[1.0, 0.0]]).unwrap());
        assert_eq!(t.value(), None);
        // Group 2 has mean (0, 1): per-class std of {1, 0} is √0.5 in both classes.
        assert!(t.push_iteration(&[&[0.0, 1.0], &[0.0, 1.0]]).unwrap());
        assert!((t.value().unwrap() - 0.5f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn bad_tensors_leave_it_unchanged() {
        let mut t = TStddev::new(3, TStddevConfig::default()).unwrap();
        assert!(t.push_iteration(&[&[0.2, 0.3, 0.5], &[0.1]]).is_err());
        assert!(t.push_iteration(&[&[]]).is_err());
        assert_eq!(t.pending_tensors(), 0);
        assert!(TStddev::new(0, TStddevConfig::default()).is_err());
    }
}
