//! Pearson, Spearman and Kendall tau-b correlations with two-sided p-values, computed as
//! `scipy.stats.pearsonr`, `spearmanr` and `kendalltau` (scipy 1.17, default arguments) compute
//! them: the numbers of the good-DA-in-KD paper's T. stddev ↔ S. test loss plots (§4.2) come from
//! those functions. `tests/fixtures/correlation.json` holds scipy's values for the cases checked.
//!
//! All three need at least 3 pairs (scipy accepts 2 and then returns ±1 with p = 1, which carries no
//! information) and finite values (scipy propagates NaN); a constant input is an error where scipy
//! warns and returns NaN.

use crate::error::{MetricsError, Result};
use crate::rows::reject_non_finite_f64;
use crate::special::{beta_inc, gamma_inc_upper};
use std::cmp::Ordering;

/// How a p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PValueMethod {
    /// From Student's t distribution with `n − 2` degrees of freedom, `t = r √((n−2)/(1−r²))`:
    /// `p = I_{1−r²}((n−2)/2, 1/2)`. Exact for Pearson's r under bivariate normality; an
    /// approximation for Spearman's rho.
    StudentT,
    /// From the exact null distribution of Kendall's statistic: every permutation of the ranks
    /// equally likely, so `P(C ≤ c)` is the share of permutations with at most `c` inversions.
    ExactPermutation,
    /// From the normal approximation of `concordant − discordant`, with the tie-corrected variance.
    Normal,
}

/// A correlation coefficient and its two-sided p-value (null hypothesis: no association).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correlation {
    /// The coefficient, in `[−1, 1]`.
    pub coefficient: f64,
    /// The two-sided p-value, in `[0, 1]`.
    pub p_value: f64,
    /// How the p-value was computed.
    pub method: PValueMethod,
}

/// The fewest pairs a correlation accepts.
const MIN_PAIRS: usize = 3;

/// Pearson's product-moment correlation `r = Σ (x−x̄)(y−ȳ) / (‖x−x̄‖ ‖y−ȳ‖)`, with the p-value
/// of the t test ([`PValueMethod::StudentT`]), as `scipy.stats.pearsonr`. The centred vectors are
/// scaled by their largest magnitude before the norms, as scipy does, so huge values do not
/// overflow.
///
/// # Errors
/// Different lengths, fewer than 3 pairs, a non-finite value, or a constant input.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<Correlation> {
    check_pairs(x, y)?;
    let x = unit_centred(x).ok_or_else(|| constant("x", "a correlation"))?;
    let y = unit_centred(y).ok_or_else(|| constant("y", "a correlation"))?;
    let r: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    Ok(t_test(r.clamp(-1.0, 1.0), x.len()))
}

/// Spearman's rank correlation: Pearson's r of the average ranks ([`average_ranks`]), so tied
/// values share the mean of their ranks (`Σ dx·dy / √(Σ dx² Σ dy²)` with `d` the ranks minus
/// their mean `(n+1)/2`); the p-value is scipy's default t approximation
/// ([`PValueMethod::StudentT`] with `n − 2` degrees of freedom), as `scipy.stats.spearmanr`.
///
/// # Errors
/// Different lengths, fewer than 3 pairs, a non-finite value, or a constant input.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Correlation> {
    check_pairs(x, y)?;
    let rx = average_ranks(x)?;
    let ry = average_ranks(y)?;
    // Ranks, their mean (n + 1)/2 and the centred products are multiples of 1/4, so these sums
    // are exact (below 2^53, n up to about 10^5) and a perfect ranking gives exactly ±1.
    let mean = (x.len() + 1) as f64 / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (dx, dy) = (a - mean, b - mean);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 {
        return Err(constant("x", "a correlation"));
    }
    if syy == 0.0 {
        return Err(constant("y", "a correlation"));
    }
    let r = (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0);
    Ok(t_test(r, x.len()))
}

/// Kendall's tau-b, `(C − D) / √((P − T_x)(P − T_y))`, where `C` and `D` count the concordant and
/// discordant pairs, `P = n(n−1)/2` all pairs, and `T_x`, `T_y` the pairs tied in x and in y. It
/// counts in `O(n log n)` (Knight's algorithm: sort by (x, y), then count the inversions of y by
/// merge sort), as `scipy.stats.kendalltau`.
///
/// The p-value follows scipy's default `method='auto'`:
/// - with no ties, and `n ≤ 33` or `min(D, P − D) ≤ 1`: **exact**
///   ([`PValueMethod::ExactPermutation`]), `p = min(1, 2·P(C' ≤ c))` with `c = min(C, P − C)` and
///   `C'` the inversion count of a uniformly random permutation; `p = 1` when `4c = n(n−1)`;
/// - otherwise the **normal approximation** ([`PValueMethod::Normal`]): `z = (C − D)/√v`,
///   `p = erfc(|z|/√2)`, with the tie-corrected variance (m = n(n−1); sums over groups of `t`
///   tied x values and `u` tied y values)
///   `v = (m(2n+5) − Σt(t−1)(2t+5) − Σu(u−1)(2u+5))/18 + 2·T_x·T_y/m
///   + Σt(t−1)(t−2)·Σu(u−1)(u−2)/(9m(n−2))`.
///
/// # Errors
/// Different lengths, fewer than 3 pairs, a non-finite value, or a constant input.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Result<Correlation> {
    check_pairs(x, y)?;
    let counts = KendallCounts::new(x, y);
    let n = counts.n;
    let total = n * (n - 1) / 2;
    if counts.x_ties == total {
        return Err(constant("x", "Kendall's tau"));
    }
    if counts.y_ties == total {
        return Err(constant("y", "Kendall's tau"));
    }
    // C − D = P − T_x − T_y + T_xy − 2D, since P = C + D + T_x + T_y − T_xy.
    let c_minus_d = total as f64 - counts.x_ties as f64 - counts.y_ties as f64
        + counts.joint_ties as f64
        - 2.0 * counts.discordant as f64;
    // One square root of the product (scipy takes two) keeps a perfect ordering at exactly ±1.
    let untied = (total - counts.x_ties) as f64 * (total - counts.y_ties) as f64;
    let tau = (c_minus_d / untied.sqrt()).clamp(-1.0, 1.0);

    let no_ties = counts.x_ties == 0 && counts.y_ties == 0;
    let extreme = counts.discordant.min(total - counts.discordant) <= 1;
    if no_ties && (n <= 33 || extreme) {
        let concordant = total - counts.discordant;
        return Ok(Correlation {
            coefficient: tau,
            p_value: kendall_exact_p(n, concordant.min(total - concordant)),
            method: PValueMethod::ExactPermutation,
        });
    }
    let nf = n as f64;
    let m = nf * (nf - 1.0);
    let variance = (m * (2.0 * nf + 5.0) - counts.x_cubic - counts.y_cubic) / 18.0
        + 2.0 * counts.x_ties as f64 * counts.y_ties as f64 / m
        + counts.x_falling * counts.y_falling / (9.0 * m * (nf - 2.0));
    let z = c_minus_d / variance.sqrt();
    Ok(Correlation {
        coefficient: tau,
        // 2·Φ(−|z|) = erfc(|z|/√2) = Q(1/2, z²/2).
        p_value: gamma_inc_upper(0.5, z * z / 2.0),
        method: PValueMethod::Normal,
    })
}

/// The ranks of `values`, 1-based, with tied values given the mean of the ranks they span:
/// `scipy.stats.rankdata(values, method='average')`. `-0.0` and `0.0` are tied.
///
/// # Errors
/// A non-finite value.
pub fn average_ranks(values: &[f64]) -> Result<Vec<f64>> {
    reject_non_finite_f64("values", values)?;
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_unstable_by(|&a, &b| cmp(values[a], values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let v = values[order[start]];
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| values[i] == v)
                .count();
        // Positions start..end hold ranks start+1..=end; their mean is (start + 1 + end) / 2.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    Ok(ranks)
}

/// A total order on finite values that ties `-0.0` with `0.0`, as `==` does.
fn cmp(a: f64, b: f64) -> Ordering {
    (a + 0.0).total_cmp(&(b + 0.0))
}

/// Checks what every correlation needs: equal lengths, at least 3 pairs, finite values.
fn check_pairs(x: &[f64], y: &[f64]) -> Result<()> {
    if x.len() != y.len() {
        return Err(MetricsError::LengthMismatch {
            left: "x",
            left_len: x.len(),
            right: "y",
            right_len: y.len(),
        });
    }
    if x.len() < MIN_PAIRS {
        return Err(MetricsError::TooFewSamples {
            what: "a correlation",
            n: x.len(),
            min: MIN_PAIRS,
        });
    }
    reject_non_finite_f64("x", x)?;
    reject_non_finite_f64("y", y)
}

fn constant(what: &'static str, statistic: &'static str) -> MetricsError {
    MetricsError::ConstantInput { what, statistic }
}

/// `(v − v̄) / ‖v − v̄‖`, the norm taken after dividing by the largest magnitude (as scipy);
/// `None` when the values are all equal.
fn unit_centred(values: &[f64]) -> Option<Vec<f64>> {
    if values.iter().all(|&v| v == values[0]) {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let centred: Vec<f64> = values.iter().map(|&v| v - mean).collect();
    let largest = centred.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let norm = largest
        * centred
            .iter()
            .map(|v| (v / largest).powi(2))
            .sum::<f64>()
            .sqrt();
    Some(centred.iter().map(|v| v / norm).collect())
}

/// The coefficient `r` of `n` pairs with its two-sided t-test p-value
/// `p = I_{1−r²}((n−2)/2, 1/2)`, `1 − r²` formed as `(1 − |r|)(1 + |r|)` to keep its digits near
/// |r| = 1.
fn t_test(r: f64, n: usize) -> Correlation {
    let dof = (n - 2) as f64;
    let one_minus_r2 = (1.0 - r.abs()) * (1.0 + r.abs());
    Correlation {
        coefficient: r,
        p_value: beta_inc(dof / 2.0, 0.5, one_minus_r2),
        method: PValueMethod::StudentT,
    }
}

/// Two-sided exact p-value of Kendall's statistic with `c = min(C, P − C)` concordant pairs among
/// `n ≥ 3` untied samples: `min(1, 2·P(C' ≤ c))` (scipy's `_kendall_p_exact`), 1 at the centre.
fn kendall_exact_p(n: usize, c: usize) -> f64 {
    if 4 * c == n * (n - 1) {
        return 1.0;
    }
    // dist[k] = P(a random permutation of j elements has k inversions), for k ≤ c. Inserting
    // element j adds 0..j−1 inversions, each with probability 1/j.
    let mut dist = vec![0.0; c + 1];
    dist[0] = 1.0;
    for j in 2..=n {
        let mut next = vec![0.0; c + 1];
        for (k, slot) in next.iter_mut().enumerate() {
            let lowest = k.saturating_sub(j - 1);
            *slot = dist[lowest..=k].iter().sum::<f64>() / j as f64;
        }
        dist = next;
    }
    (2.0 * dist.iter().sum::<f64>()).min(1.0)
}

/// The pair counts of Kendall's tau (Knight's algorithm), as `scipy.stats.kendalltau` forms them.
struct KendallCounts {
    n: usize,
    /// Pairs tied in x (`Σ t(t−1)/2` over groups of `t` tied x values).
    x_ties: usize,
    /// Pairs tied in y.
    y_ties: usize,
    /// Pairs tied in both.
    joint_ties: usize,
    /// Pairs with `(x_i − x_j)(y_i − y_j) < 0`.
    discordant: usize,
    /// `Σ t(t−1)(2t+5)` over x tie groups.
    x_cubic: f64,
    /// `Σ u(u−1)(2u+5)` over y tie groups.
    y_cubic: f64,
    /// `Σ t(t−1)(t−2)` over x tie groups.
    x_falling: f64,
    /// `Σ u(u−1)(u−2)` over y tie groups.
    y_falling: f64,
}

impl KendallCounts {
    fn new(x: &[f64], y: &[f64]) -> Self {
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_unstable_by(|&a, &b| cmp(x[a], x[b]).then(cmp(y[a], y[b])));
        let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
        let mut ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();

        let x_groups = TieGroups::of(&xs, |a, b| a == b);
        let pairs: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
        let joint = TieGroups::of(&pairs, |a, b| a == b);
        // Sorted by (x, y), a discordant pair is an inversion of y: pairs with equal x are in
        // increasing y, and equal y values are not inversions.
        let mut scratch = vec![0.0; ys.len()];
        let discordant = count_inversions(&mut ys, &mut scratch);
        // The merge sort has left y sorted.
        let y_groups = TieGroups::of(&ys, |a, b| a == b);
        Self {
            n: x.len(),
            x_ties: x_groups.pairs,
            y_ties: y_groups.pairs,
            joint_ties: joint.pairs,
            discordant,
            x_cubic: x_groups.cubic,
            y_cubic: y_groups.cubic,
            x_falling: x_groups.falling,
            y_falling: y_groups.falling,
        }
    }
}

/// Sums over the runs of equal values of a sorted slice.
struct TieGroups {
    /// `Σ t(t−1)/2`.
    pairs: usize,
    /// `Σ t(t−1)(2t+5)`.
    cubic: f64,
    /// `Σ t(t−1)(t−2)`.
    falling: f64,
}

impl TieGroups {
    fn of<T>(sorted: &[T], eq: impl Fn(&T, &T) -> bool) -> Self {
        let mut groups = Self {
            pairs: 0,
            cubic: 0.0,
            falling: 0.0,
        };
        let mut start = 0;
        while start < sorted.len() {
            let run = sorted[start..]
                .iter()
                .take_while(|v| eq(v, &sorted[start]))
                .count();
            start += run;
            if run > 1 {
                let t = run as f64;
                groups.pairs += run * (run - 1) / 2;
                groups.cubic += t * (t - 1.0) * (2.0 * t + 5.0);
                groups.falling += t * (t - 1.0) * (t - 2.0);
            }
        }
        groups
    }
}

/// Sorts `values` (finite) and returns how many pairs `i < j` had `values[i] > values[j]`.
fn count_inversions(values: &mut [f64], scratch: &mut [f64]) -> usize {
    let n = values.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let (left_scratch, right_scratch) = scratch.split_at_mut(mid);
    let mut inversions = count_inversions(&mut values[..mid], left_scratch)
        + count_inversions(&mut values[mid..], right_scratch);
    let (mut i, mut j) = (0, mid);
    for slot in scratch.iter_mut() {
        // Take from the left on ties: equal values are not inversions.
        if j == n || (i < mid && values[i] <= values[j]) {
            *slot = values[i];
            i += 1;
        } else {
            *slot = values[j];
            j += 1;
            inversions += mid - i;
        }
    }
    values.copy_from_slice(scratch);
    inversions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        let r = average_ranks(&[10.0, 20.0, 10.0, 30.0, 20.0, 20.0, -0.0, 0.0]).unwrap();
        assert_eq!(r, vec![3.5, 6.0, 3.5, 8.0, 6.0, 6.0, 1.5, 1.5]);
    }

    #[test]
    fn inversions() {
        let mut v = vec![3.0, 1.0, 2.0, 2.0, 0.0];
        let mut s = vec![0.0; 5];
        assert_eq!(count_inversions(&mut v, &mut s), 7);
        assert_eq!(v, vec![0.0, 1.0, 2.0, 2.0, 3.0]);
    }

    #[test]
    fn exact_kendall_distribution() {
        // n = 3: inversion counts 0,1,1,2,2,3 over the 6 permutations.
        assert!((kendall_exact_p(3, 0) - 2.0 / 6.0).abs() < 1e-15);
        assert!((kendall_exact_p(3, 1) - 1.0).abs() < 1e-15);
        // n = 4: counts 1,3,5,6,5,3,1 for 0..=6 inversions; c = 3 is the centre.
        assert!((kendall_exact_p(4, 1) - 2.0 * 4.0 / 24.0).abs() < 1e-15);
        assert_eq!(kendall_exact_p(4, 3), 1.0);
    }

    #[test]
    fn perfect_and_reversed() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 4.0, 8.0, 16.0, 32.0];
        let rev: Vec<f64> = y.iter().rev().copied().collect();
        assert_eq!(spearman(&x, &y).unwrap().coefficient, 1.0);
        assert_eq!(spearman(&x, &y).unwrap().p_value, 0.0);
        assert_eq!(kendall_tau_b(&x, &rev).unwrap().coefficient, -1.0);
        // Exact: 2 of the 120 permutations are as extreme.
        let k = kendall_tau_b(&x, &y).unwrap();
        assert!((k.p_value - 2.0 / 120.0).abs() < 1e-15);
        assert_eq!(k.method, PValueMethod::ExactPermutation);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            pearson(&[1.0, 2.0, 3.0], &[1.0, 2.0]),
            Err(MetricsError::LengthMismatch {
                left: "x",
                left_len: 3,
                right: "y",
                right_len: 2
            })
        );
        assert!(matches!(
            spearman(&[1.0, 2.0], &[1.0, 2.0]),
            Err(MetricsError::TooFewSamples { n: 2, min: 3, .. })
        ));
        assert!(matches!(
            kendall_tau_b(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]),
            Err(MetricsError::NonFinite {
                what: "x",
                index: 1,
                ..
            })
        ));
        for f in [pearson, spearman, kendall_tau_b] {
            assert!(matches!(
                f(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]),
                Err(MetricsError::ConstantInput { what: "y", .. })
            ));
        }
    }
}
