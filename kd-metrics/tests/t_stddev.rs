//! `TStddev` against a plain reference that does what good-da-in-kd.md §1.2's pseudo-code does:
//! keep the tensors, `cat` a group's rows, take their column mean, and recompute the std over all
//! group means from scratch (two passes) whenever a group closes.

use kd_metrics::{NonFiniteGroups, TStddev, TStddevConfig};
use proptest::prelude::*;

/// One iteration: the probability tensors it pushes (row-major `[rows, classes]` each).
type Iteration = Vec<Vec<f32>>;

/// The reference loop: the T. stddev printed at each step where a group closes (`None` while
/// there is a single group, as the reference's NaN of a one-sample std), and the groups kept.
fn reference(
    stream: &[Iteration],
    classes: usize,
    tensors_per_group: usize,
    skip_non_finite: bool,
) -> (Vec<Option<f64>>, usize) {
    let mut buf: Vec<&[f32]> = Vec::new();
    let mut groups: Vec<Vec<f64>> = Vec::new();
    let mut printed = Vec::new();
    for iteration in stream {
        buf.extend(iteration.iter().map(Vec::as_slice));
        if buf.len() < tensors_per_group {
            continue;
        }
        // cat(buf).mean(dim=0)
        let rows: Vec<&[f32]> = buf.iter().flat_map(|t| t.chunks_exact(classes)).collect();
        let group: Vec<f64> = (0..classes)
            .map(|c| rows.iter().map(|r| f64::from(r[c])).sum::<f64>() / rows.len() as f64)
            .collect();
        buf.clear();
        if skip_non_finite && group.iter().any(|v| !v.is_finite()) {
            printed.push(std_mean(&groups, classes));
            continue;
        }
        groups.push(group);
        printed.push(std_mean(&groups, classes));
    }
    (printed, groups.len())
}

/// stack(groups).std(dim=0, unbiased=True).mean(), in two passes.
fn std_mean(groups: &[Vec<f64>], classes: usize) -> Option<f64> {
    if groups.len() < 2 {
        return None;
    }
    let g = groups.len() as f64;
    let per_class = (0..classes).map(|c| {
        let mean = groups.iter().map(|m| m[c]).sum::<f64>() / g;
        (groups.iter().map(|m| (m[c] - mean).powi(2)).sum::<f64>() / (g - 1.0)).sqrt()
    });
    Some(per_class.sum::<f64>() / classes as f64)
}

/// Feeds `stream` and returns the value after each closed group.
fn run(stream: &[Iteration], classes: usize, config: TStddevConfig) -> (Vec<Option<f64>>, TStddev) {
    let mut acc = TStddev::new(classes, config).unwrap();
    let mut printed = Vec::new();
    for iteration in stream {
        let tensors: Vec<&[f32]> = iteration.iter().map(Vec::as_slice).collect();
        if acc.push_iteration(&tensors).unwrap() {
            printed.push(acc.value());
        }
    }
    (printed, acc)
}

fn same(got: &[Option<f64>], want: &[Option<f64>]) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| match (g, w) {
            (None, None) => true,
            (Some(g), Some(w)) if g.is_nan() || w.is_nan() => g.is_nan() && w.is_nan(),
            (Some(g), Some(w)) => (g - w).abs() <= 1e-12 * w.abs().max(1e-300),
            _ => false,
        })
}

/// A small xorshift generator, so the fixed stream needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    /// `rows` softmax rows of random logits in [−4, 4).
    fn probabilities(&mut self, rows: usize, classes: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows * classes);
        for _ in 0..rows {
            let logits: Vec<f32> = (0..classes).map(|_| 8.0 * self.next_f32() - 4.0).collect();
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = logits.iter().map(|z| (z - max).exp()).sum();
            out.extend(logits.iter().map(|z| (z - max).exp() / sum));
        }
        out
    }
}

/// Ten epochs of a 10-sample data set in batches of 4 (4, 4, then the short last batch of 2),
/// each iteration pushing an original and an augmented tensor: 30 iterations, so groups of 5
/// iterations close at 5, 10, …, 30 and straddle the epoch boundaries.
fn paper_like_stream(classes: usize) -> Vec<Iteration> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut stream = Vec::new();
    for _epoch in 0..10 {
        for batch in [4, 4, 2] {
            stream.push(vec![
                rng.probabilities(batch, classes),
                rng.probabilities(batch, classes),
            ]);
        }
    }
    stream
}

#[test]
fn fixed_stream_matches_the_reference() {
    let classes = 5;
    let stream = paper_like_stream(classes);
    let (got, acc) = run(&stream, classes, TStddevConfig::default());
    let (want, groups) = reference(&stream, classes, 10, false);
    assert_eq!(got.len(), 6);
    assert_eq!(acc.groups(), 6);
    assert_eq!(groups, 6);
    assert_eq!(got[0], None);
    assert!(same(&got, &want), "{got:?}\n{want:?}");
    // The first group is iterations 1–5: batches 4, 4, 2, 4, 4, twice each.
    let mut first = TStddev::new(classes, TStddevConfig::default()).unwrap();
    for (i, iteration) in stream.iter().take(5).enumerate() {
        let tensors: Vec<&[f32]> = iteration.iter().map(Vec::as_slice).collect();
        assert_eq!(first.push_iteration(&tensors).unwrap(), i == 4);
    }
}

#[test]
fn leftover_tensors_do_not_count() {
    let classes = 3;
    let stream = paper_like_stream(classes);
    // 28 iterations: 5 groups closed, 3 iterations (6 tensors) pending.
    let (got, acc) = run(&stream[..28], classes, TStddevConfig::default());
    assert_eq!(acc.groups(), 5);
    assert_eq!(acc.pending_tensors(), 6);
    let (want, _) = reference(&stream[..28], classes, 10, false);
    assert!(same(&got, &want));
}

#[test]
fn without_lw_mix_groups_hold_five_original_batches() {
    let classes = 4;
    let originals: Vec<Iteration> = paper_like_stream(classes)
        .into_iter()
        .map(|mut it| vec![it.swap_remove(0)])
        .collect();
    let config = TStddevConfig {
        tensors_per_group: 5,
        ..Default::default()
    };
    let (got, acc) = run(&originals, classes, config);
    let (want, _) = reference(&originals, classes, 5, false);
    assert_eq!(acc.groups(), 6);
    assert!(same(&got, &want));
}

/// The stream with one NaN row (softmax of NaN logits is all NaN) in iteration 12, i.e. group 3.
fn stream_with_nan(classes: usize) -> Vec<Iteration> {
    let mut stream = paper_like_stream(classes);
    stream[11][1][classes..2 * classes].fill(f32::NAN);
    stream
}

#[test]
fn a_nan_group_propagates_like_the_reference() {
    let classes = 5;
    let stream = stream_with_nan(classes);
    let (got, acc) = run(&stream, classes, TStddevConfig::default());
    let (want, _) = reference(&stream, classes, 10, false);
    assert!(same(&got, &want), "{got:?}\n{want:?}");
    assert!(got[1].unwrap().is_finite());
    assert!(got[2..].iter().all(|v| v.unwrap().is_nan()));
    assert_eq!(acc.skipped_groups(), 0);
}

#[test]
fn a_nan_group_can_be_skipped() {
    let classes = 5;
    let stream = stream_with_nan(classes);
    let config = TStddevConfig {
        non_finite: NonFiniteGroups::Skip,
        ..Default::default()
    };
    let (got, acc) = run(&stream, classes, config);
    let (want, groups) = reference(&stream, classes, 10, true);
    assert_eq!(acc.groups(), 5);
    assert_eq!(groups, 5);
    assert_eq!(acc.skipped_groups(), 1);
    assert!(same(&got, &want), "{got:?}\n{want:?}");
    assert!(got[1..].iter().all(|v| v.unwrap().is_finite()));
    // Skipping the NaN group equals never having seen it.
    let mut without = stream.clone();
    without.drain(10..15);
    let (clean, _) = run(&without, classes, TStddevConfig::default());
    assert!(same(&got[3..], &clean[2..]));
}

/// A random stream: each iteration pushes one or two tensors of 1–5 rows of arbitrary
/// non-negative values (the accumulator does not need normalised rows).
fn stream_strategy(classes: usize) -> impl Strategy<Value = Vec<Iteration>> {
    let tensor = (1usize..=5)
        .prop_flat_map(move |rows| proptest::collection::vec(0.0f32..1.0, rows * classes));
    proptest::collection::vec(proptest::collection::vec(tensor, 1..=2), 0..40)
}

proptest! {
    #[test]
    fn random_streams_match_the_reference(
        (classes, stream) in (1usize..6).prop_flat_map(|c| (Just(c), stream_strategy(c))),
        tensors_per_group in 1usize..12,
    ) {
        let config = TStddevConfig { tensors_per_group, ..Default::default() };
        let (got, acc) = run(&stream, classes, config);
        let (want, groups) = reference(&stream, classes, tensors_per_group, false);
        prop_assert_eq!(acc.groups(), groups);
        prop_assert!(same(&got, &want), "{:?}\n{:?}", got, want);
    }
}
