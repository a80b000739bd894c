//! Subset selection: the δ/ζ counts of kd_data, by-score slices, validation and the index files.

use kd_data::subset::{ClassRef, ClassSelection, Pick, Quantiles, Scope, Subset, SubsetSpec};
use kd_data::{DataError, Dataset, ImageShape};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// `classes × per_class` one-pixel samples; labels interleave (`i % classes`) so that class
/// membership is not a contiguous index block.
fn labelled(classes: usize, per_class: usize) -> Dataset {
    let n = classes * per_class;
    let labels = (0..n).map(|i| (i % classes) as u32).collect();
    let names = (0..classes).map(|c| format!("c{c}")).collect();
    Dataset::new(
        "synthetic-labels",
        ImageShape::new(1, 1, 1),
        vec![0; n],
        labels,
        names,
    )
    .unwrap()
}

fn counts_per_class(d: &Dataset, s: &Subset) -> Vec<usize> {
    let mut counts = vec![0; d.num_classes()];
    for &i in s.indices() {
        counts[d.label(i) as usize] += 1;
    }
    counts
}

fn random(d: &Dataset, delta: f64, zeta: f64, seed: u64) -> Subset {
    Subset::select(d, &SubsetSpec::random(delta, zeta, seed), None).unwrap()
}

fn invalid_message(r: kd_data::Result<Subset>) -> String {
    match r {
        Err(e @ DataError::InvalidArgument { .. }) => e.to_string(),
        other => panic!("expected an InvalidArgument error, got {other:?}"),
    }
}

#[test]
fn delta_0_1_keeps_ten_whole_classes() {
    let d = labelled(100, 500);
    let s = random(&d, 0.1, 1.0, 1);
    let counts = counts_per_class(&d, &s);
    assert_eq!(counts.iter().filter(|&&c| c > 0).count(), 10);
    assert!(counts.iter().all(|&c| c == 0 || c == 500), "{counts:?}");
    assert_eq!(s.len(), 5000);
    assert_eq!(s.classes().len(), 10);
}

#[test]
fn zeta_0_1_keeps_fifty_samples_of_every_class() {
    let d = labelled(100, 500);
    let s = random(&d, 1.0, 0.1, 1);
    assert_eq!(counts_per_class(&d, &s), vec![50; 100]);
}

#[test]
fn delta_0_9_keeps_exactly_ninety_classes_despite_float_error() {
    // 100·(1 − 0.9) = 9.999…: truncating it would hold out 9 classes and keep 91.
    let delta = std::hint::black_box(0.9_f64);
    assert_eq!((100.0 * (1.0 - delta)) as usize, 9);
    let d = labelled(100, 5);
    let s = random(&d, 0.9, 1.0, 7);
    assert_eq!(s.classes().len(), 90);
    assert_eq!(s.len(), 450);
}

#[test]
fn delta_and_zeta_combine() {
    let d = labelled(20, 50);
    let s = random(&d, 0.5, 0.2, 3);
    let counts = counts_per_class(&d, &s);
    assert_eq!(counts.iter().filter(|&&c| c == 10).count(), 10);
    assert_eq!(counts.iter().filter(|&&c| c == 0).count(), 10);
}

#[test]
fn same_seed_same_subset_and_different_seeds_differ() {
    let d = labelled(100, 50);
    assert_eq!(random(&d, 0.3, 0.5, 11), random(&d, 0.3, 0.5, 11));
    assert_ne!(
        random(&d, 0.3, 0.5, 11).indices(),
        random(&d, 0.3, 0.5, 12).indices()
    );
    assert_ne!(
        random(&d, 1.0, 0.5, 11).indices(),
        random(&d, 1.0, 0.5, 12).indices()
    );
}

#[test]
fn samples_kept_in_a_class_do_not_depend_on_which_classes_are_kept() {
    let d = labelled(30, 40);
    let all_classes = random(&d, 1.0, 0.25, 5);
    let some_classes = random(&d, 0.4, 0.25, 5);
    for (class, members) in some_classes.by_class() {
        assert_eq!(members, &all_classes.by_class()[class], "class {class}");
    }
}

#[test]
fn selections_are_ascending_and_complement_holds_the_rest() {
    let d = labelled(10, 30);
    let s = random(&d, 0.5, 0.5, 2);
    assert!(s.indices().windows(2).all(|w| w[0] < w[1]));
    let held = s.complement();
    assert_eq!(held.len() + s.len(), d.len());
    let union: BTreeSet<usize> = s.indices().iter().chain(&held).copied().collect();
    assert_eq!(union.len(), d.len());
}

/// Scores with a per-class offset (class `c` has mean ≈ 1000·rank(c)) and a per-sample
/// pseudo-random part, so both the class order and the sample order are known but not the
/// index order.
fn scores(d: &Dataset, class_rank: impl Fn(u32) -> f32) -> Vec<f32> {
    (0..d.len())
        .map(|i| 1000.0 * class_rank(d.label(i)) + ((i * 7919) % 997) as f32 / 997.0)
        .collect()
}

#[test]
fn by_score_keeps_the_lowest_scoring_samples_of_each_class() {
    let d = labelled(10, 100);
    let sc = scores(&d, |_| 0.0);
    let spec = SubsetSpec::by_score(Quantiles::ALL, Quantiles::fraction(0.2));
    let s = Subset::select(&d, &spec, Some(&sc)).unwrap();
    assert_eq!(counts_per_class(&d, &s), vec![20; 10]);
    let held = s.complement();
    for (&class, kept) in s.by_class() {
        let max_kept = kept.iter().map(|&i| sc[i]).fold(f32::MIN, f32::max);
        let min_held = held
            .iter()
            .filter(|&&i| d.label(i) == class)
            .map(|&i| sc[i])
            .fold(f32::MAX, f32::min);
        assert!(
            max_kept < min_held,
            "class {class}: kept up to {max_kept}, held out from {min_held}"
        );
    }
}

#[test]
fn by_score_keeps_the_classes_with_the_lowest_mean_score() {
    let d = labelled(10, 20);
    // Class c ranks (c·3) mod 10: classes 0, 7, 4 have the three lowest means.
    let sc = scores(&d, |c| ((c * 3) % 10) as f32);
    let spec = SubsetSpec::by_score(Quantiles::fraction(0.3), Quantiles::ALL);
    let s = Subset::select(&d, &spec, Some(&sc)).unwrap();
    assert_eq!(s.classes(), vec![0, 4, 7]);
    assert_eq!(s.len(), 60);
}

#[test]
fn by_score_middle_slice_takes_the_sorted_positions() {
    let d = labelled(1, 500);
    let sc: Vec<f32> = (0..500).map(|i| ((i * 7919) % 500) as f32).collect();
    let spec = SubsetSpec::by_score(Quantiles::ALL, Quantiles::range(0.2, 0.5));
    let s = Subset::select(&d, &spec, Some(&sc)).unwrap();
    let mut kept: Vec<f32> = s.indices().iter().map(|&i| sc[i]).collect();
    kept.sort_by(f32::total_cmp);
    assert_eq!(kept, (100..250).map(|v| v as f32).collect::<Vec<_>>());
}

#[test]
fn by_score_ties_keep_the_lowest_indices() {
    let d = labelled(1, 10);
    let spec = SubsetSpec::by_score(Quantiles::ALL, Quantiles::fraction(0.3));
    let s = Subset::select(&d, &spec, Some(&[1.0; 10])).unwrap();
    assert_eq!(s.indices(), &[0, 1, 2]);
}

#[test]
fn global_by_score_ignores_classes_and_per_class_balances_them() {
    let d = labelled(4, 25);
    // Class 0 has all the lowest scores.
    let sc = scores(&d, |c| c as f32);
    let global =
        SubsetSpec::by_score(Quantiles::ALL, Quantiles::fraction(0.25)).with_scope(Scope::Global);
    let s = Subset::select(&d, &global, Some(&sc)).unwrap();
    assert_eq!(counts_per_class(&d, &s), vec![25, 0, 0, 0]);
    let per_class = SubsetSpec::by_score(Quantiles::ALL, Quantiles::fraction(0.25));
    let s = Subset::select(&d, &per_class, Some(&sc)).unwrap();
    assert_eq!(counts_per_class(&d, &s), vec![6, 6, 6, 6]);
}

/// A teacher's entropy and TLD on 18 samples of 3 classes (`i % 3`), written out by hand, with
/// the picks worked out by hand from kd_data's rule: sort ascending, keep the sorted positions
/// `[int(n·lower) : int(n·upper)]` of each class (or of all samples, or of the class means).
const HAND_ENTROPY: [f32; 18] = [
    0.90, 0.10, 1.50, 0.20, 0.70, 1.20, 0.50, 0.05, 2.00, //
    0.05, 0.40, 1.80, 0.60, 0.30, 1.10, 0.30, 0.90, 1.40,
];
const HAND_TLD: [f32; 18] = [
    2.0, -1.0, 0.5, 3.0, -0.5, 1.0, 1.5, 4.0, -2.0, //
    0.2, 2.5, -0.3, -1.5, 0.8, 3.5, 1.2, 0.1, 2.2,
];

fn hand_pick(spec: SubsetSpec, scores: &[f32]) -> Vec<usize> {
    Subset::select(&labelled(3, 6), &spec, Some(scores))
        .unwrap()
        .indices()
        .to_vec()
}

#[test]
fn entropy_and_tld_quantile_picks_keep_exactly_the_hand_worked_samples() {
    let half = Quantiles::fraction(0.5);
    let upper_half = Quantiles::range(0.5, 1.0);
    // Entropy, per class, lowest half: class 0 {9, 3, 15}, class 1 {7, 1, 13}, class 2
    // {14, 5, 17} — the most confident samples.
    assert_eq!(
        hand_pick(SubsetSpec::by_score(Quantiles::ALL, half), &HAND_ENTROPY),
        vec![1, 3, 5, 7, 9, 13, 14, 15, 17]
    );
    // Entropy, per class, highest half: the rest.
    assert_eq!(
        hand_pick(
            SubsetSpec::by_score(Quantiles::ALL, upper_half),
            &HAND_ENTROPY
        ),
        vec![0, 2, 4, 6, 8, 10, 11, 12, 16]
    );
    // Entropy, global, lowest half: the 9 lowest of all 18 (ties 7 and 9 at 0.05, 13 and 15 at
    // 0.30), none of class 2, whose entropies are all above 1.
    assert_eq!(
        hand_pick(
            SubsetSpec::by_score(Quantiles::ALL, half).with_scope(Scope::Global),
            &HAND_ENTROPY
        ),
        vec![1, 3, 6, 7, 9, 10, 12, 13, 15]
    );
    // δ = 1/3 by mean entropy: class 1 (mean 0.408) before class 0 (0.425) and class 2 (1.5).
    assert_eq!(
        hand_pick(
            SubsetSpec::by_score(Quantiles::fraction(1.0 / 3.0), Quantiles::ALL),
            &HAND_ENTROPY
        ),
        vec![1, 4, 7, 10, 13, 16]
    );
    assert_eq!(
        hand_pick(
            SubsetSpec::by_score(Quantiles::range(2.0 / 3.0, 1.0), Quantiles::ALL),
            &HAND_ENTROPY
        ),
        vec![2, 5, 8, 11, 14, 17]
    );
    // TLD ascending is the least confident first: per class lowest half {12, 9, 15},
    // {1, 4, 16}, {8, 11, 2}; the highest half is the most confident rest.
    assert_eq!(
        hand_pick(SubsetSpec::by_score(Quantiles::ALL, half), &HAND_TLD),
        vec![1, 2, 4, 8, 9, 11, 12, 15, 16]
    );
    assert_eq!(
        hand_pick(SubsetSpec::by_score(Quantiles::ALL, upper_half), &HAND_TLD),
        vec![0, 3, 5, 6, 7, 10, 13, 14, 17]
    );
}

#[test]
fn global_random_holds_out_the_rounded_count() {
    let d = labelled(7, 100);
    let spec = SubsetSpec {
        samples: Quantiles::fraction(0.9),
        scope: Scope::Global,
        ..SubsetSpec::default()
    };
    let s = Subset::select(&d, &spec, None).unwrap();
    assert_eq!(s.len(), 700 - 70);
    assert!(
        counts_per_class(&d, &s).iter().any(|&c| c != 90),
        "a global pick is not balanced"
    );
}

#[test]
fn explicit_class_list_by_index_and_name() {
    let d = labelled(10, 20);
    let spec = SubsetSpec::random(1.0, 0.5, 1)
        .with_class_list(vec![ClassRef::Name("c7".into()), ClassRef::Index(2)]);
    let s = Subset::select(&d, &spec, None).unwrap();
    assert_eq!(s.classes(), vec![2, 7]);
    assert_eq!(counts_per_class(&d, &s)[2], 10);
}

#[test]
fn full_and_from_indices() {
    let d = labelled(3, 4);
    assert_eq!(
        Subset::full(&d).indices(),
        (0..12).collect::<Vec<_>>().as_slice()
    );
    let s = Subset::from_indices(&d, vec![5, 1, 9], "hand-picked").unwrap();
    assert_eq!(s.indices(), &[5, 1, 9]);
    assert_eq!(s.complement(), vec![0, 2, 3, 4, 6, 7, 8, 10, 11]);
    let e = invalid_message(Subset::from_indices(&d, vec![1, 12], "x"));
    assert!(e.contains("index 12") && e.contains("0..12"), "{e}");
    let e = invalid_message(Subset::from_indices(&d, vec![3, 1, 3], "x"));
    assert!(e.contains("index 3 appears more than once"), "{e}");
}

#[test]
fn rejects_fractions_outside_the_unit_interval() {
    let d = labelled(10, 10);
    for (delta, zeta, name) in [
        (0.0, 1.0, "δ"),
        (1.5, 1.0, "δ"),
        (-0.2, 1.0, "δ"),
        (1.0, 0.0, "ζ"),
        (1.0, 1.01, "ζ"),
    ] {
        let e = invalid_message(Subset::select(
            &d,
            &SubsetSpec::random(delta, zeta, 1),
            None,
        ));
        assert!(
            e.contains(name) && e.contains("(0, 1]"),
            "δ={delta} ζ={zeta}: {e}"
        );
    }
}

#[test]
fn rejects_bad_quantile_ranges() {
    let d = labelled(10, 10);
    let select = |classes, samples| {
        invalid_message(Subset::select(
            &d,
            &SubsetSpec::by_score(classes, samples),
            Some(&[0.0; 100]),
        ))
    };
    let e = select(Quantiles::range(0.5, 0.5), Quantiles::ALL);
    assert!(
        e.contains("δ (classes) = [0.5, 0.5)") && e.contains("below the upper"),
        "{e}"
    );
    let e = select(Quantiles::ALL, Quantiles::range(0.7, 0.2));
    assert!(e.contains("ζ (samples) = [0.7, 0.2)"), "{e}");
    let e = select(Quantiles::range(-0.1, 0.5), Quantiles::ALL);
    assert!(
        e.contains("δ (classes) lower quantile = -0.1") && e.contains("[0, 1]"),
        "{e}"
    );
    let e = select(Quantiles::ALL, Quantiles::range(0.2, 1.2));
    assert!(e.contains("ζ (samples) upper quantile = 1.2"), "{e}");
    let e = select(Quantiles::range(0.2, f64::NAN), Quantiles::ALL);
    assert!(e.contains("upper quantile = NaN"), "{e}");
}

#[test]
fn rejects_bad_class_lists() {
    let d = labelled(10, 10);
    let with = |list| {
        invalid_message(Subset::select(
            &d,
            &SubsetSpec::default().with_class_list(list),
            None,
        ))
    };
    let e = with(vec![ClassRef::Name("dog".into())]);
    assert!(e.contains("\"dog\"") && e.contains("no such class"), "{e}");
    let e = with(vec![ClassRef::Index(10)]);
    assert!(e.contains("classes = 10") && e.contains("0..10"), "{e}");
    let e = with(vec![ClassRef::Index(3), ClassRef::Name("c3".into())]);
    assert!(e.contains("\"c3\"") && e.contains("more than once"), "{e}");
    let e = with(vec![]);
    assert!(e.contains("at least one class"), "{e}");
}

#[test]
fn rejects_a_class_selection_in_a_global_scope() {
    let d = labelled(10, 10);
    let spec = SubsetSpec::random(0.5, 1.0, 1).with_scope(Scope::Global);
    let e = invalid_message(Subset::select(&d, &spec, None));
    assert!(
        e.contains("classes = [0, 0.5)") && e.contains("per_class"),
        "{e}"
    );
}

#[test]
fn rejects_missing_short_and_nan_scores() {
    let d = labelled(2, 5);
    let spec = SubsetSpec::by_score(Quantiles::ALL, Quantiles::fraction(0.5));
    let e = invalid_message(Subset::select(&d, &spec, None));
    assert!(e.contains("scores = none"), "{e}");
    let e = invalid_message(Subset::select(&d, &spec, Some(&[0.0; 9])));
    assert!(e.contains("9 values") && e.contains("10 samples"), "{e}");
    let mut sc = [0.5f32; 10];
    sc[6] = f32::NAN;
    let e = invalid_message(Subset::select(&d, &spec, Some(&sc)));
    assert!(e.contains("score of sample 6 = NaN"), "{e}");
}

#[test]
fn spec_reads_fractions_ranges_and_class_lists_from_json() {
    let spec: SubsetSpec = serde_json::from_str(
        r#"{"classes": 0.1, "samples": {"lower": 0.2, "upper": 0.5}, "pick": {"kind": "random", "seed": 3}}"#,
    )
    .unwrap();
    assert_eq!(
        spec.classes,
        ClassSelection::Quantiles(Quantiles::fraction(0.1))
    );
    assert_eq!(spec.samples, Quantiles::range(0.2, 0.5));
    assert_eq!(spec.pick, Pick::Random { seed: 3 });
    assert_eq!(spec.scope, Scope::PerClass);
    let spec: SubsetSpec = serde_json::from_str(
        r#"{"classes": ["c1", 4], "pick": {"kind": "by_score"}, "scope": "global"}"#,
    )
    .unwrap();
    assert_eq!(
        spec.classes,
        ClassSelection::List(vec![ClassRef::Name("c1".into()), ClassRef::Index(4)])
    );
    assert_eq!(spec.pick, Pick::ByScore);
    assert_eq!(spec.scope, Scope::Global);
    let back: SubsetSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    assert!(serde_json::from_str::<SubsetSpec>(r#"{"delta": 0.1}"#).is_err());
}

#[test]
fn save_and_load_round_trip() {
    let d = labelled(10, 20);
    let s = random(&d, 0.5, 0.3, 9);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("subset.json");
    s.save(&path).unwrap();
    let back = Subset::load(&path, &d).unwrap();
    assert_eq!(back, s);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["num_samples"], 200);
    assert_eq!(json["by_class"].as_object().unwrap().len(), 5);
    // Only the file itself is left behind: the temporary was renamed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Saves `s`, edits its JSON with `edit`, and returns the error of loading it into `d`.
fn load_error_after(d: &Dataset, s: &Subset, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edited.json");
    s.save(&path).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let e = Subset::load(&path, d).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::Format { .. }), "{msg}");
    assert!(msg.contains("edited.json"), "{msg}");
    msg
}

#[test]
fn load_rejects_an_index_out_of_range() {
    let d = labelled(4, 5);
    let s = Subset::from_indices(&d, vec![0, 1], "x").unwrap();
    let msg = load_error_after(&d, &s, |j| j["indices"][1] = 20.into());
    assert!(
        msg.contains("index 20 (position 1) is outside 0..20"),
        "{msg}"
    );
}

#[test]
fn load_rejects_another_dataset_size() {
    let d = labelled(4, 5);
    let s = Subset::full(&d);
    let msg = load_error_after(&labelled(4, 6), &s, |_| {});
    assert!(
        msg.contains("20 samples") && msg.contains("has 24"),
        "{msg}"
    );
}

#[test]
fn load_rejects_duplicates() {
    let d = labelled(4, 5);
    let s = Subset::from_indices(&d, vec![2, 3], "x").unwrap();
    let msg = load_error_after(&d, &s, |j| j["indices"][1] = 2.into());
    assert!(msg.contains("index 2 appears more than once"), "{msg}");
}

#[test]
fn load_rejects_a_class_map_that_disagrees_with_the_labels() {
    let d = labelled(4, 5);
    let s = Subset::from_indices(&d, vec![2, 3], "x").unwrap();
    let msg = load_error_after(&d, &s, |j| j["by_class"]["2"][0] = 7.into());
    assert!(
        msg.contains("sample 7 is listed under class 2 but has label 3"),
        "{msg}"
    );
    let msg = load_error_after(&d, &s, |j| j["by_class"]["2"][0] = 400.into());
    assert!(
        msg.contains("sample 400 listed under class 2 is outside 0..20"),
        "{msg}"
    );
    // Sample 6 does have label 2, but "indices" does not list it.
    let msg = load_error_after(&d, &s, |j| j["by_class"]["2"] = serde_json::json!([2, 6]));
    assert!(msg.contains("not list the same samples"), "{msg}");
    let msg = load_error_after(&d, &s, |j| {
        j["by_class"]
            .as_object_mut()
            .unwrap()
            .remove("3")
            .map(|_| ())
            .unwrap()
    });
    assert!(msg.contains("not list the same samples"), "{msg}");
}

#[test]
fn load_reads_kd_data_class_maps() {
    let d = labelled(4, 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.json");
    std::fs::write(&path, r#"{"1": [1, 5, 9], "3": [3]}"#).unwrap();
    let s = Subset::load(&path, &d).unwrap();
    assert_eq!(s.indices(), &[1, 5, 9, 3]);
    assert_eq!(s.classes(), vec![1, 3]);
    assert!(s.spec().is_none());
    std::fs::write(&path, r#"{"1": [1, 2]}"#).unwrap();
    let msg = Subset::load(&path, &d).unwrap_err().to_string();
    assert!(
        msg.contains("train.json")
            && msg.contains("sample 2 is listed under class 1 but has label 2"),
        "{msg}"
    );
}

#[test]
fn load_reports_missing_and_malformed_files() {
    let d = labelled(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    assert!(matches!(
        Subset::load(&missing, &d),
        Err(DataError::NotFound { .. })
    ));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"indices\": [1,").unwrap();
    let msg = Subset::load(&bad, &d).unwrap_err().to_string();
    assert!(msg.contains("bad.json: not JSON"), "{msg}");
    std::fs::write(&bad, "[1, 2]").unwrap();
    let msg = Subset::load(&bad, &d).unwrap_err().to_string();
    assert!(
        msg.contains("bad.json") && msg.contains("neither a kd subset file"),
        "{msg}"
    );
}

#[test]
fn save_reports_an_unwritable_path() {
    let d = labelled(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("s.json");
    let msg = Subset::full(&d).save(&path).unwrap_err().to_string();
    assert!(msg.contains("missing-dir"), "{msg}");
}

/// kd_data's count of kept items for a random pick: all but `int(round(n·(1 − f), 2))`.
fn random_kept(n: usize, fraction: f64) -> usize {
    let held = ((n as f64 * (1.0 - fraction) * 100.0).round() / 100.0).floor() as usize;
    n - held
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_subsets_are_consistent(
        classes in 1usize..12,
        per_class in 0usize..40,
        delta_pct in 1u32..=100,
        zeta_pct in 1u32..=100,
        seed in any::<u64>(),
    ) {
        let d = labelled(classes, per_class);
        let (delta, zeta) = (delta_pct as f64 / 100.0, zeta_pct as f64 / 100.0);
        let s = random(&d, delta, zeta, seed);
        let set: BTreeSet<usize> = s.indices().iter().copied().collect();
        prop_assert_eq!(set.len(), s.len(), "no duplicates");
        prop_assert!(s.indices().iter().all(|&i| i < d.len()));
        let held = s.complement();
        prop_assert!(held.iter().all(|i| !set.contains(i)));
        prop_assert_eq!(held.len() + s.len(), d.len());
        let counts = counts_per_class(&d, &s);
        let kept_classes = if per_class == 0 { 0 } else { random_kept(classes, delta) };
        prop_assert_eq!(counts.iter().filter(|&&c| c > 0).count(), kept_classes);
        prop_assert!(counts.iter().all(|&c| c == 0 || c == random_kept(per_class, zeta)));
    }

    #[test]
    fn score_subsets_take_the_sorted_slice(
        classes in 1usize..8,
        per_class in 1usize..30,
        lower_pct in 0u32..100,
        width_pct in 1u32..=100,
        raw in proptest::collection::vec(-5i32..5, 240),
    ) {
        let d = labelled(classes, per_class);
        let sc: Vec<f32> = raw[..d.len()].iter().map(|&v| v as f32).collect();
        let lower = lower_pct as f64 / 100.0;
        let upper = ((lower_pct + width_pct).min(100)) as f64 / 100.0;
        prop_assume!(lower < upper);
        let spec = SubsetSpec::by_score(Quantiles::ALL, Quantiles::range(lower, upper)).with_scope(Scope::Global);
        let s = Subset::select(&d, &spec, Some(&sc)).unwrap();
        // The plain reference: sort (score, index) pairs and slice.
        let mut order: Vec<usize> = (0..d.len()).collect();
        order.sort_by(|&a, &b| sc[a].total_cmp(&sc[b]).then(a.cmp(&b)));
        let pos = |q: f64| ((d.len() as f64 * q * 100.0).round() / 100.0).floor() as usize;
        let mut expected = order[pos(lower)..pos(upper)].to_vec();
        expected.sort_unstable();
        prop_assert_eq!(s.indices(), expected.as_slice());
    }
}
