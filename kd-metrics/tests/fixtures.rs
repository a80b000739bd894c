//! kd-metrics against reference values from scipy, numpy and torch, made by
//! `fixtures/make_fixtures.py` (see its docstring for versions and how to run it).
//!
//! Tolerances: correlation coefficients 1e-12 absolute; p-values and special functions 1e-9
//! relative (p-values as small as 1e-100 included); NLL, entropy, ECE, T. stddev (f64) 1e-12;
//! KDE densities 1e-12 relative; histogram counts, TLD and the Kendall p-value method exactly.

use kd_metrics::special::{beta_inc, erfc, gamma_inc_upper, ln_gamma};
use kd_metrics::{
    GaussianKde, Histogram, PValueMethod, TStddev, TStddevConfig, average_ranks, ece_with_bins,
    entropy, entropy_at, kendall_tau_b, mean_std, nll, pearson, spearman, tld, top_k_accuracy,
};
use kd_metrics::{NonFiniteGroups, agreement};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// f32 values; `null` (the fixtures' NaN) reads as NaN.
fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().map_or(f32::NAN, |x| x as f32))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Asserts `|got − want| ≤ abs + rel·|want|`.
#[track_caller]
fn assert_close(got: f64, want: f64, abs: f64, rel: f64, what: &str) {
    let tolerance = abs + rel * want.abs();
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got:e}, want {want:e} (difference {:e}, tolerance {tolerance:e})",
        (got - want).abs()
    );
}

#[test]
fn special_functions_match_scipy() {
    let f = load("special.json");
    for row in f["gammaln"].as_array().unwrap() {
        let [x, want] = f64s(row)[..] else { panic!() };
        assert_close(ln_gamma(x), want, 1e-13, 1e-13, &format!("gammaln({x})"));
    }
    for row in f["betainc"].as_array().unwrap() {
        let [a, b, x, want] = f64s(row)[..] else {
            panic!()
        };
        let what = format!("betainc({a}, {b}, {x})");
        assert_close(beta_inc(a, b, x), want, 1e-300, 1e-9, &what);
    }
    for row in f["gammaincc"].as_array().unwrap() {
        let [a, x, want] = f64s(row)[..] else {
            panic!()
        };
        let what = format!("gammaincc({a}, {x})");
        assert_close(gamma_inc_upper(a, x), want, 1e-300, 1e-9, &what);
    }
    for row in f["erfc"].as_array().unwrap() {
        let [x, want] = f64s(row)[..] else { panic!() };
        assert_close(erfc(x), want, 1e-300, 1e-9, &format!("erfc({x})"));
    }
}

#[test]
fn correlations_match_scipy() {
    let f = load("correlation.json");
    for case in f["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let x = f64s(&case["x"]);
        let y = f64s(&case["y"]);
        assert_eq!(average_ranks(&x).unwrap(), f64s(&case["ranks_x"]), "{name}");
        assert_eq!(average_ranks(&y).unwrap(), f64s(&case["ranks_y"]), "{name}");
        for (label, got) in [
            ("pearson", pearson(&x, &y).unwrap()),
            ("spearman", spearman(&x, &y).unwrap()),
            ("kendall", kendall_tau_b(&x, &y).unwrap()),
        ] {
            let want = f64s(&case[label]);
            let what = format!("{name} {label}");
            assert_close(got.coefficient, want[0], 1e-12, 0.0, &what);
            assert_close(got.p_value, want[1], 1e-300, 1e-9, &format!("{what} p"));
        }
        let method = kendall_tau_b(&x, &y).unwrap().method;
        let want = match case["kendall_method"].as_str().unwrap() {
            "exact" => PValueMethod::ExactPermutation,
            _ => PValueMethod::Normal,
        };
        assert_eq!(method, want, "{name}");
        assert_eq!(pearson(&x, &y).unwrap().method, PValueMethod::StudentT);
    }
}

#[test]
fn calibration_and_confidence_match_torch() {
    let f = load("calibration.json");
    let classes = f["classes"].as_u64().unwrap() as usize;
    let logits = f32s(&f["logits"]);
    let teacher = f32s(&f["teacher_logits"]);
    let labels = usizes(&f["labels"]);

    let top1 = top_k_accuracy(&logits, &labels, classes, 1).unwrap();
    assert_eq!(top1, f["top1"].as_f64().unwrap());
    let top5 = top_k_accuracy(&logits, &labels, classes, 5).unwrap();
    assert_eq!(top5, f["top5"].as_f64().unwrap());
    let agree = agreement(&teacher, &logits, classes).unwrap();
    assert_eq!(agree, f["agreement"].as_f64().unwrap());

    let want = f["nll"].as_f64().unwrap();
    assert_close(
        nll(&logits, &labels, classes).unwrap(),
        want,
        0.0,
        1e-12,
        "nll",
    );
    let cases = [
        ("entropy", entropy(&logits, classes).unwrap()),
        ("entropy_t4", entropy_at(&logits, classes, 4.0).unwrap()),
    ];
    for (key, got) in cases {
        for (i, (g, w)) in got.iter().zip(f64s(&f[key])).enumerate() {
            assert_close(*g, w, 1e-12, 0.0, &format!("{key}[{i}]"));
        }
    }
    assert_eq!(tld(&logits, &labels, classes).unwrap(), f64s(&f["tld"]));

    for bins in [15, 10] {
        let got = ece_with_bins(&logits, &labels, classes, bins).unwrap();
        let want = f[format!("ece{bins}")].as_f64().unwrap();
        assert_close(got.ece, want, 1e-12, 0.0, &format!("ece{bins}"));
        let table = f[format!("ece{bins}_bins")].as_array().unwrap();
        assert_eq!(got.bins.len(), bins);
        for (b, (bin, row)) in got.bins.iter().zip(table).enumerate() {
            let row = f64s(row);
            assert_eq!(bin.count, row[0] as usize, "ece{bins} bin {b}");
            assert_eq!(bin.correct, row[1] as usize, "ece{bins} bin {b}");
            let what = format!("ece{bins} bin {b} confidence");
            assert_close(bin.confidence_sum, row[2], 1e-12, 1e-12, &what);
        }
    }
}

#[test]
fn summaries_match_numpy_and_scipy() {
    let f = load("summary.json");
    let ms = &f["mean_std"];
    let s = mean_std(&f64s(&ms["values"])).unwrap();
    assert_close(s.mean, ms["mean"].as_f64().unwrap(), 1e-12, 0.0, "mean");
    assert_close(
        s.std.unwrap(),
        ms["std"].as_f64().unwrap(),
        1e-12,
        0.0,
        "std",
    );

    for case in f["histograms"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let values = f64s(&case["values"]);
        let bins = case["bins"].as_u64().unwrap() as usize;
        let (lo, hi) = (case["lo"].as_f64().unwrap(), case["hi"].as_f64().unwrap());
        let h = Histogram::new(&values, bins, lo, hi).unwrap();
        assert_eq!(h.edges, f64s(&case["edges"]), "{name}");
        let counts: Vec<u64> = usizes(&case["counts"]).iter().map(|&c| c as u64).collect();
        assert_eq!(h.counts, counts, "{name}");
        assert_eq!(
            h.outside as usize + counts.iter().sum::<u64>() as usize,
            values.len()
        );
        for (g, w) in h.density().iter().zip(f64s(&case["density"])) {
            assert_close(*g, w, 0.0, 1e-14, name);
        }
    }

    for case in f["kdes"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let data = f64s(&case["data"]);
        let kde = GaussianKde::new(&data).unwrap();
        let factor = case["factor"].as_f64().unwrap();
        assert_close(
            GaussianKde::scott_factor(data.len()),
            factor,
            0.0,
            1e-14,
            name,
        );
        let bandwidth = case["bandwidth"].as_f64().unwrap();
        assert_close(kde.bandwidth(), bandwidth, 0.0, 1e-13, name);
        let xs = f64s(&case["x"]);
        for (x, (g, w)) in xs
            .iter()
            .zip(kde.densities(&xs).iter().zip(f64s(&case["density"])))
        {
            assert_close(*g, w, 1e-300, 1e-12, &format!("{name} at {x}"));
        }
        // A Riemann sum over ±8 bandwidths beyond the data integrates the density to 1.
        let lo = data.iter().copied().fold(f64::INFINITY, f64::min) - 8.0 * bandwidth;
        let hi = data.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 8.0 * bandwidth;
        let steps = 20_000;
        let dx = (hi - lo) / steps as f64;
        let integral: f64 = (0..steps)
            .map(|i| kde.density(lo + (i as f64 + 0.5) * dx) * dx)
            .sum();
        assert_close(integral, 1.0, 1e-9, 0.0, &format!("{name} integral"));
    }
}

/// The T. stddev after each closed group; `None` for the reference's NaN.
fn t_stddev_run(
    stream: &Value,
    classes: usize,
    originals_only: bool,
    config: TStddevConfig,
) -> Vec<Option<f64>> {
    let mut acc = TStddev::new(classes, config).unwrap();
    let mut printed = Vec::new();
    for iteration in stream.as_array().unwrap() {
        let tensors: Vec<Vec<f32>> = iteration.as_array().unwrap().iter().map(f32s).collect();
        let take = if originals_only { 1 } else { tensors.len() };
        let refs: Vec<&[f32]> = tensors[..take].iter().map(Vec::as_slice).collect();
        if acc.push_iteration(&refs).unwrap() {
            printed.push(acc.value().filter(|v| !v.is_nan()));
        }
    }
    printed
}

#[track_caller]
fn assert_values(got: &[Option<f64>], want: &Value, rel: f64, what: &str) {
    let want: Vec<Option<f64>> = want.as_array().unwrap().iter().map(Value::as_f64).collect();
    assert_eq!(got.len(), want.len(), "{what}: groups");
    for (g, (got, want)) in got.iter().zip(&want).enumerate() {
        match (got, want) {
            (Some(g1), Some(w)) => assert_close(*g1, *w, 0.0, rel, &format!("{what} group {g}")),
            _ => assert_eq!(got, want, "{what} group {g}"),
        }
    }
}

#[test]
fn t_stddev_matches_the_torch_loop() {
    let f = load("t_stddev.json");
    let classes = f["classes"].as_u64().unwrap() as usize;
    let paper = TStddevConfig::default();
    let got = t_stddev_run(&f["stream"], classes, false, paper);
    assert_values(&got, &f["lw_mix_f64"], 1e-12, "lw_mix f64");
    // The reference's own float32 arithmetic differs only by its rounding.
    assert_values(&got, &f["lw_mix_f32"], 1e-5, "lw_mix f32");
    let five = TStddevConfig {
        tensors_per_group: 5,
        ..paper
    };
    let got = t_stddev_run(&f["stream"], classes, true, five);
    assert_values(&got, &f["originals_f64"], 1e-12, "originals");
    let got = t_stddev_run(&f["stream_with_nan"], classes, false, paper);
    assert_values(&got, &f["with_nan_f64"], 1e-12, "with NaN");
    let skip = TStddevConfig {
        non_finite: NonFiniteGroups::Skip,
        ..paper
    };
    let got = t_stddev_run(&f["stream_with_nan"], classes, false, skip);
    assert_values(&got, &f["with_nan_skip_f64"], 1e-12, "with NaN, skipped");
}
