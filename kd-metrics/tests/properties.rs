//! Property tests: ranges and invariances of the metrics, and the fast paths against slow,
//! obviously correct references (Kendall's O(n log n) count against all pairs; its exact p-value
//! against enumerating every permutation; Spearman against Pearson of the ranks).

use kd_metrics::{
    Correlation, GaussianKde, Histogram, PValueMethod, average_ranks, ece, entropy_at,
    kendall_tau_b, mean_std, nll, pearson, spearman, tld, top_k_accuracy,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Logits `[rows, classes]` with labels, over a wide range so that softmax underflows.
fn labelled_logits() -> impl Strategy<Value = (Vec<f32>, Vec<usize>, usize)> {
    (1usize..12, 1usize..20).prop_flat_map(|(classes, rows)| {
        (
            vec(-60.0f32..60.0, rows * classes),
            vec(0..classes, rows),
            Just(classes),
        )
    })
}

/// Paired samples of `3..max` values; small integers when `tied`, so that ties are common.
fn pairs(max: usize, tied: bool) -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (3..max).prop_flat_map(move |n| {
        let value = if tied {
            (-3i32..4).prop_map(f64::from).boxed()
        } else {
            (-1e3f64..1e3).boxed()
        };
        (vec(value.clone(), n), vec(value, n))
    })
}

fn is_constant(v: &[f64]) -> bool {
    v.iter().all(|&x| x == v[0])
}

fn in_range(c: &Correlation) -> bool {
    (-1.0..=1.0).contains(&c.coefficient) && (0.0..=1.0).contains(&c.p_value)
}

/// Kendall's tau-b from all pairs.
fn kendall_reference(x: &[f64], y: &[f64]) -> f64 {
    let (mut concordant, mut discordant, mut x_only, mut y_only) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let s = (x[i] - x[j]).signum() * (y[i] - y[j]).signum();
            match (x[i] == x[j], y[i] == y[j]) {
                (true, true) => {}
                (true, false) => x_only += 1,
                (false, true) => y_only += 1,
                _ if s > 0.0 => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let untied_x = (concordant + discordant + y_only) as f64;
    let untied_y = (concordant + discordant + x_only) as f64;
    (concordant - discordant) as f64 / (untied_x * untied_y).sqrt()
}

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

fn inversions(p: &[usize]) -> usize {
    (0..p.len())
        .flat_map(|i| (i + 1..p.len()).map(move |j| (i, j)))
        .filter(|&(i, j)| p[i] > p[j])
        .count()
}

/// A strictly increasing map that is exact on integers up to 1e3 in magnitude.
fn monotone(v: f64) -> f64 {
    v * v * v + 5.0 * v
}

proptest! {
    #[test]
    fn entropy_is_between_zero_and_ln_classes(
        (logits, _, classes) in labelled_logits(),
        temperature in 0.05f64..20.0,
    ) {
        let ln_c = (classes as f64).ln();
        for h in entropy_at(&logits, classes, temperature).unwrap() {
            prop_assert!(h.is_finite());
            prop_assert!((-1e-12..=ln_c + 1e-12).contains(&h), "{} not in [0, {}]", h, ln_c);
        }
    }

    #[test]
    fn ece_is_a_fraction_and_bins_hold_every_row((logits, labels, classes) in labelled_logits()) {
        let e = ece(&logits, &labels, classes).unwrap();
        prop_assert!((0.0..=1.0).contains(&e.ece));
        prop_assert_eq!(e.bins.iter().map(|b| b.count).sum::<usize>(), labels.len());
        for b in &e.bins {
            if let Some(c) = b.mean_confidence() {
                prop_assert!(b.lower < c && c <= b.upper, "{} not in ({}, {}]", c, b.lower, b.upper);
            }
        }
    }

    #[test]
    fn nll_matches_a_plain_softmax((logits, labels, classes) in labelled_logits()) {
        let want: f64 = logits
            .chunks_exact(classes)
            .zip(&labels)
            .map(|(row, &y)| {
                let max = row.iter().map(|&v| f64::from(v)).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                max + sum.ln() - f64::from(row[y])
            })
            .sum::<f64>()
            / labels.len() as f64;
        let got = nll(&logits, &labels, classes).unwrap();
        prop_assert!(got >= 0.0);
        prop_assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{} vs {}", got, want);
    }

    #[test]
    fn tld_is_positive_exactly_when_the_label_wins((logits, labels, classes) in labelled_logits()) {
        prop_assume!(classes >= 2);
        let margins = tld(&logits, &labels, classes).unwrap();
        let top1 = top_k_accuracy(&logits, &labels, classes, 1).unwrap();
        let positive = margins.iter().filter(|&&m| m > 0.0).count();
        // A positive margin means the unique argmax; a zero margin (a tie) may still count as
        // top-1 under the lower-index rule.
        prop_assert!(positive as f64 / labels.len() as f64 <= top1);
        for (row, (&y, &m)) in logits.chunks_exact(classes).zip(labels.iter().zip(&margins)) {
            let unique_max = row.iter().enumerate().all(|(c, &v)| c == y || v < row[y]);
            prop_assert_eq!(m > 0.0, unique_max);
        }
    }

    #[test]
    fn top_k_accuracy_grows_with_k((logits, labels, classes) in labelled_logits()) {
        let mut last = 0.0;
        for k in 0..=classes {
            let a = top_k_accuracy(&logits, &labels, classes, k).unwrap();
            prop_assert!(a >= last && a <= 1.0);
            last = a;
        }
        prop_assert_eq!(last, 1.0);
    }

    #[test]
    fn correlations_are_in_range_and_symmetric((x, y) in pairs(40, true)) {
        prop_assume!(!is_constant(&x) && !is_constant(&y));
        for f in [pearson, spearman, kendall_tau_b] {
            let xy = f(&x, &y).unwrap();
            let yx = f(&y, &x).unwrap();
            prop_assert!(in_range(&xy), "{:?}", xy);
            prop_assert!((xy.coefficient - yx.coefficient).abs() < 1e-12);
            prop_assert!((xy.p_value - yx.p_value).abs() < 1e-12);
        }
    }

    #[test]
    fn rank_correlations_ignore_monotone_transforms((x, y) in pairs(60, true)) {
        prop_assume!(!is_constant(&x) && !is_constant(&y));
        let tx: Vec<f64> = x.iter().map(|&v| monotone(v)).collect();
        let ty: Vec<f64> = y.iter().map(|&v| monotone(v)).collect();
        prop_assert_eq!(spearman(&x, &y).unwrap(), spearman(&tx, &ty).unwrap());
        prop_assert_eq!(kendall_tau_b(&x, &y).unwrap(), kendall_tau_b(&tx, &ty).unwrap());
        // A decreasing transform flips the sign.
        let neg: Vec<f64> = ty.iter().map(|v| -v).collect();
        let k = kendall_tau_b(&x, &y).unwrap().coefficient;
        prop_assert!((kendall_tau_b(&x, &neg).unwrap().coefficient + k).abs() < 1e-12);
    }

    #[test]
    fn kendall_matches_all_pairs((x, y) in pairs(80, true)) {
        prop_assume!(!is_constant(&x) && !is_constant(&y));
        let got = kendall_tau_b(&x, &y).unwrap().coefficient;
        let want = kendall_reference(&x, &y);
        prop_assert!((got - want).abs() < 1e-12, "{} vs {}", got, want);
    }

    #[test]
    fn kendall_matches_all_pairs_without_ties((x, y) in pairs(80, false)) {
        prop_assume!(!is_constant(&x) && !is_constant(&y));
        let got = kendall_tau_b(&x, &y).unwrap().coefficient;
        prop_assert!((got - kendall_reference(&x, &y)).abs() < 1e-12);
    }

    #[test]
    fn spearman_is_pearson_of_ranks((x, y) in pairs(60, true)) {
        prop_assume!(!is_constant(&x) && !is_constant(&y));
        let got = spearman(&x, &y).unwrap();
        let want = pearson(&average_ranks(&x).unwrap(), &average_ranks(&y).unwrap()).unwrap();
        prop_assert!((got.coefficient - want.coefficient).abs() < 1e-12);
        prop_assert_eq!(got.method, PValueMethod::StudentT);
    }

    #[test]
    fn pearson_ignores_positive_affine_maps((x, y) in pairs(40, false), a in 0.01f64..100.0, b in -1e3f64..1e3) {
        prop_assume!(!is_constant(&x) && !is_constant(&y));
        let ax: Vec<f64> = x.iter().map(|v| a * v + b).collect();
        prop_assume!(!is_constant(&ax));
        let r = pearson(&x, &y).unwrap().coefficient;
        prop_assert!((pearson(&ax, &y).unwrap().coefficient - r).abs() < 1e-9);
    }

    #[test]
    fn histogram_bins_hold_their_values(values in vec(-5.0f64..5.0, 0..200), bins in 1usize..40) {
        let h = Histogram::new(&values, bins, -3.0, 3.0).unwrap();
        prop_assert_eq!(h.counts.iter().sum::<u64>() + h.outside, values.len() as u64);
        let inside = values.iter().filter(|v| (-3.0..=3.0).contains(*v)).count() as u64;
        prop_assert_eq!(h.outside, values.len() as u64 - inside);
        for (i, e) in h.edges.windows(2).enumerate() {
            let last = i + 1 == bins;
            let want = values
                .iter()
                .filter(|&&v| v >= e[0] && (v < e[1] || (last && v <= e[1])))
                .count() as u64;
            prop_assert_eq!(h.counts[i], want);
        }
    }

    #[test]
    fn kde_is_a_symmetric_density(half in vec(-10.0f64..10.0, 1..30), x in -20.0f64..20.0) {
        let data: Vec<f64> = half.iter().flat_map(|&v| [v, -v]).collect();
        prop_assume!(!is_constant(&data));
        let kde = GaussianKde::new(&data).unwrap();
        let (a, b) = (kde.density(x), kde.density(-x));
        prop_assert!(a >= 0.0);
        prop_assert!((a - b).abs() <= 1e-12 * a.max(1e-300));
    }

    #[test]
    fn mean_std_shifts_with_the_data(values in vec(-1e3f64..1e3, 2..30), shift in -1e3f64..1e3) {
        let s = mean_std(&values).unwrap();
        let moved: Vec<f64> = values.iter().map(|v| v + shift).collect();
        let t = mean_std(&moved).unwrap();
        prop_assert!((t.mean - s.mean - shift).abs() < 1e-9);
        prop_assert!((t.std.unwrap() - s.std.unwrap()).abs() < 1e-9);
    }
}

/// The exact Kendall p-value against counting inversions over all n! permutations.
#[test]
fn exact_kendall_p_values_by_enumeration() {
    for n in 3..=7 {
        let all = permutations(n);
        let total = n * (n - 1) / 2;
        // How many permutations have each inversion count.
        let mut histogram = vec![0usize; total + 1];
        for p in &all {
            histogram[inversions(p)] += 1;
        }
        let x: Vec<f64> = (0..n).map(|v| v as f64).collect();
        for p in &all {
            let y: Vec<f64> = p.iter().map(|&v| v as f64).collect();
            let c = total - inversions(p); // concordant pairs
            let c = c.min(total - c);
            let as_extreme: usize = histogram[..=c].iter().sum();
            let want = (2.0 * as_extreme as f64 / all.len() as f64).min(1.0);
            let got = kendall_tau_b(&x, &y).unwrap();
            assert_eq!(got.method, PValueMethod::ExactPermutation);
            assert!(
                (got.p_value - want).abs() < 1e-14,
                "{p:?}: {} vs {want}",
                got.p_value
            );
        }
    }
}

/// Named regression cases: shapes the strategies rarely produce.
#[test]
fn regression_cases() {
    // All but one value tied in x: tau-b is defined, the p-value normal.
    let x = [1.0, 1.0, 1.0, 1.0, 2.0];
    let y = [1.0, 2.0, 3.0, 4.0, 5.0];
    let k = kendall_tau_b(&x, &y).unwrap();
    assert!((k.coefficient - kendall_reference(&x, &y)).abs() < 1e-15);
    assert_eq!(k.method, PValueMethod::Normal);
    // -0.0 and 0.0 are the same value.
    let a = kendall_tau_b(&[-0.0, 0.0, 1.0], &[1.0, 2.0, 3.0]).unwrap();
    let b = kendall_tau_b(&[0.0, 0.0, 1.0], &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(a, b);
    // Exactly tied logits: confidence 1/C, prediction class 0, entropy ln C, TLD 0.
    let logits = [2.0f32; 4];
    assert_eq!(tld(&logits, &[3], 4).unwrap(), vec![0.0]);
    assert_eq!(top_k_accuracy(&logits, &[0], 4, 1).unwrap(), 1.0);
    assert!((entropy_at(&logits, 4, 1.0).unwrap()[0] - 4f64.ln()).abs() < 1e-15);
}
