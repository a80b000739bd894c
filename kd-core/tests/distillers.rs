//! RepDistiller's distillers against PyTorch: each loss, and its gradient with respect to every
//! student feature, on fixed features, for a same-width and a cross pair (different channels,
//! sides and numbers of stages), the four FitNet regressors, AB's, FT's and FSP's init losses,
//! and two CRD steps (loss, gradient, memories and normalisation constants after each).
//!
//! The fixture `tests/fixtures/distillers.npz` is committed; `tests/parity/distillers.py`
//! wrote it with the project's PyTorch (`.venv/bin/python kd-core/tests/parity/distillers.py
//! kd-core/tests/fixtures`). Everything is float64; kd matches to [`TOL`] relative to the largest
//! reference magnitude (at least 1).
//!
//! Also: the pairs a method refuses, and CRD's sampling of positives and negatives.

use std::collections::HashMap;

use kd_augment::Rng;
use kd_core::distill::contrast::ContrastSampler;
use kd_core::distill::crd::{Crd, CrdMode};
use kd_core::distill::{self, Contrast, DistillError, Distiller, Method, Params, Setup};
use tch::{Device, Kind, Tensor, nn};

/// Largest difference tolerated, relative to the largest absolute reference value (≥ 1).
const TOL: f64 = 1e-5;

fn fixture() -> HashMap<String, Tensor> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/distillers.npz");
    Tensor::read_npz(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn check(what: &str, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.size(), theirs.size(), "{what}: shape");
    let scale = f64::try_from(theirs.abs().max()).unwrap().max(1.0);
    let d = f64::try_from((ours.to_kind(Kind::Double) - theirs).abs().max()).unwrap();
    assert!(d <= TOL * scale, "{what}: differs by {d:e} (scale {scale})");
}

/// The features `<case>.<side><i>`, in order.
fn features(f: &HashMap<String, Tensor>, case: &str, side: &str) -> Vec<Tensor> {
    (0..)
        .map_while(|i| {
            f.get(&format!("{case}.{side}{i}"))
                .map(Tensor::shallow_clone)
        })
        .collect()
}

fn shapes(fs: &[Tensor]) -> Vec<Vec<i64>> {
    fs.iter().map(|t| t.size()[1..].to_vec()).collect()
}

/// Copies `<case>.param.*` into `vs` (converted to f64), every name matching both ways.
fn load_params(vs: &mut nn::VarStore, f: &HashMap<String, Tensor>, case: &str) {
    vs.double();
    let prefix = format!("{case}.param.");
    let theirs: HashMap<&str, &Tensor> = f
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|n| (n, v)))
        .collect();
    let vars = vs.variables();
    let mut ours: Vec<&String> = vars.keys().collect();
    ours.sort();
    let mut names: Vec<&&str> = theirs.keys().collect();
    names.sort();
    assert_eq!(
        ours.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        names.iter().map(|s| **s).collect::<Vec<_>>(),
        "{case}: module variables"
    );
    tch::no_grad(|| {
        for (name, var) in &vars {
            let mut var = var.shallow_clone();
            var.copy_(theirs[name.as_str()]);
        }
    });
}

/// Builds `method` for the case's shapes with `params`, loads the case's module weights, runs
/// the main or init loss and compares it and the student gradients with PyTorch's.
fn parity(case: &str, method: Method, params: Params, init: bool) {
    let f = fixture();
    let (s, t) = (features(&f, case, "s"), features(&f, case, "t"));
    assert!(
        !s.is_empty() && !t.is_empty(),
        "{case}: no features in the fixture"
    );
    let (ss, ts) = (shapes(&s), shapes(&t));
    let setup = Setup {
        method,
        params: &params,
        student: "student",
        teacher: "teacher",
        student_shapes: &ss,
        teacher_shapes: &ts,
        train_samples: 10,
    };
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mut d = distill::build(&setup, &vs.root())
        .unwrap_or_else(|e| panic!("{case}: {e}"))
        .expect("a method");
    load_params(&mut vs, &f, case);
    let s: Vec<Tensor> = s
        .iter()
        .map(|x| x.detach().set_requires_grad(true))
        .collect();
    let loss = if init {
        d.init_loss(&s, &t)
    } else {
        d.loss(&s, &t, None)
    }
    .unwrap_or_else(|| panic!("{case}: no loss"));
    assert_eq!(
        loss.kind(),
        Kind::Double,
        "{case}: computed in the inputs' precision"
    );
    loss.backward();
    check(
        &format!("{case}: loss"),
        &loss.reshape([1]),
        &f[&format!("{case}.loss")],
    );
    for (i, x) in s.iter().enumerate() {
        let theirs = &f[&format!("{case}.grad{i}")];
        let grad = x.grad();
        let ours = if grad.defined() {
            grad
        } else {
            theirs.zeros_like()
        };
        check(&format!("{case}: d loss / d s{i}"), &ours, theirs);
    }
    eprintln!("{case}: loss {}", f64::try_from(&loss).unwrap());
}

fn both(tag: &str, method: Method, params: Params, init: bool) {
    for pair in ["same", "cross"] {
        parity(&format!("{tag}_{pair}"), method, params.clone(), init);
    }
}

fn hint(layer: usize) -> Params {
    let mut p = Params::default();
    p.fitnet.hint_layer = layer;
    p
}

#[test]
fn fitnet_matches_pytorch_for_each_regressor() {
    parity("fitnet_same", Method::Fitnet, hint(2), false);
    parity("fitnet_down", Method::Fitnet, hint(1), false);
    parity("fitnet_up", Method::Fitnet, hint(2), false);
    parity("fitnet_kernel", Method::Fitnet, hint(1), false);
}

#[test]
fn attention_matches_pytorch() {
    both("at", Method::At, Params::default(), false);
}

#[test]
fn similarity_matches_pytorch() {
    both("sp", Method::Sp, Params::default(), false);
}

#[test]
fn correlation_matches_pytorch() {
    let mut p = Params::default();
    p.cc.feat_dim = 7;
    both("cc", Method::Cc, p, false);
}

#[test]
fn vid_matches_pytorch() {
    both("vid", Method::Vid, Params::default(), false);
}

#[test]
fn rkd_matches_pytorch() {
    both("rkd", Method::Rkd, Params::default(), false);
}

#[test]
fn pkt_matches_pytorch() {
    both("pkt", Method::Pkt, Params::default(), false);
}

#[test]
fn nst_matches_pytorch() {
    both("nst", Method::Nst, Params::default(), false);
}

#[test]
fn factor_transfer_matches_pytorch_in_both_stages() {
    both("ft", Method::Ft, Params::default(), false);
    both("ftinit", Method::Ft, Params::default(), true);
}

#[test]
fn ab_and_fsp_init_losses_match_pytorch() {
    parity("ab", Method::Ab, Params::default(), true);
    parity("fsp", Method::Fsp, Params::default(), true);
}

#[test]
fn two_stage_methods_have_no_main_term_but_ft() {
    let f = fixture();
    for (case, method) in [("ab", Method::Ab), ("fsp", Method::Fsp)] {
        let (s, t) = (features(&f, case, "s"), features(&f, case, "t"));
        let (ss, ts) = (shapes(&s), shapes(&t));
        let params = Params::default();
        let setup = Setup {
            method,
            params: &params,
            student: "s",
            teacher: "t",
            student_shapes: &ss,
            teacher_shapes: &ts,
            train_samples: 1,
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let mut d = distill::build(&setup, &vs.root()).unwrap().unwrap();
        assert!(d.loss(&s, &t, None).is_none(), "{case}");
        assert!(d.init_stage().is_some() && method.has_init_stage());
    }
}

#[test]
fn crd_matches_pytorch_over_two_steps() {
    let f = fixture();
    let g = |k: &str| f[&format!("crd.{k}")].shallow_clone();
    let mut params = Params::default();
    params.crd.feat_dim = 8;
    let (ss, ts) = (vec![vec![12]], vec![vec![13]]);
    let setup = Setup {
        method: Method::Crd,
        params: &params,
        student: "s",
        teacher: "t",
        student_shapes: &ss,
        teacher_shapes: &ts,
        train_samples: 20,
    };
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mut crd = Crd::new(&setup, &vs.root()).unwrap();
    load_params(&mut vs, &f, "crd");
    let vars = vs.variables();
    for step in 0..2 {
        let p = format!("step{step}");
        let s = g(&format!("{p}.s")).set_requires_grad(true);
        let contrast = Contrast {
            rows: g(&format!("{p}.rows")),
            sample: g(&format!("{p}.sample")),
        };
        let loss = crd
            .loss(
                &[s.shallow_clone()],
                &[g(&format!("{p}.t"))],
                Some(&contrast),
            )
            .unwrap();
        loss.backward();
        check(
            &format!("crd {p}: loss"),
            &loss.reshape([1]),
            &g(&format!("{p}.loss")),
        );
        check(
            &format!("crd {p}: grad"),
            &s.grad(),
            &g(&format!("{p}.grad")),
        );
        for name in ["memory_v1", "memory_v2", "z"] {
            check(
                &format!("crd {p}: {name}"),
                &vars[&format!("contrast.{name}")],
                &g(&format!("{p}.{name}")),
            );
        }
    }
}

fn setup_err(method: Method, s: &[Vec<i64>], t: &[Vec<i64>]) -> String {
    let params = Params::default();
    let setup = Setup {
        method,
        params: &params,
        student: "ShuffleV1",
        teacher: "resnet32x4",
        student_shapes: s,
        teacher_shapes: t,
        train_samples: 1,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    match distill::build(&setup, &vs.root()) {
        Err(e @ DistillError::NotApplicable { .. }) => e.to_string(),
        Err(e) => panic!("{method}: {e}"),
        Ok(_) => panic!("{method} was built for {s:?} ← {t:?}"),
    }
}

#[test]
fn methods_refuse_pairs_they_cannot_distil() {
    // resnet32x4 → ShuffleV1's shapes (B.4).
    let t = [
        vec![32, 32, 32],
        vec![64, 32, 32],
        vec![128, 16, 16],
        vec![256, 8, 8],
        vec![256],
    ];
    let s = [
        vec![24, 32, 32],
        vec![240, 16, 16],
        vec![480, 8, 8],
        vec![960, 4, 4],
        vec![960],
    ];
    let e = setup_err(Method::Fsp, &s, &t);
    assert!(
        e.contains("fsp") && e.contains("resnet32x4 → ShuffleV1") && e.contains("same channels"),
        "{e}"
    );
    // vgg8's six features against a ResNet's five: AB's connector pairs every stage.
    let vgg = [
        vec![64, 32, 32],
        vec![128, 16, 16],
        vec![256, 8, 8],
        vec![512, 4, 4],
        vec![512, 4, 4],
        vec![512],
    ];
    let e = setup_err(Method::Ab, &vgg, &t);
    assert!(e.contains("stage features"), "{e}");
    // FitNet's regressor cannot reach a teacher map four times the student's side.
    let small = [
        vec![24, 32, 32],
        vec![24, 16, 16],
        vec![48, 4, 4],
        vec![96, 2, 2],
        vec![96],
    ];
    let e = setup_err(Method::Fitnet, &small, &t);
    assert!(e.contains("feat[2]") && e.contains("4×4"), "{e}");
    // A hint layer past the maps.
    let params = hint(4);
    let setup = Setup {
        method: Method::Fitnet,
        params: &params,
        student: "s",
        teacher: "t",
        student_shapes: &t,
        teacher_shapes: &t,
        train_samples: 1,
    };
    let e = distill::build(&setup, &nn::VarStore::new(Device::Cpu).root())
        .unwrap_err()
        .to_string();
    assert!(e.contains("loss.fitnet.hint_layer = 4"), "{e}");
    // The same pair works for the methods that pool or compare samples with samples.
    for m in [
        Method::At,
        Method::Sp,
        Method::Cc,
        Method::Vid,
        Method::Rkd,
        Method::Pkt,
        Method::Ft,
        Method::Nst,
        Method::Crd,
    ] {
        let params = Params::default();
        let setup = Setup {
            method: m,
            params: &params,
            student: "ShuffleV1",
            teacher: "resnet32x4",
            student_shapes: &s,
            teacher_shapes: &t,
            train_samples: 4,
        };
        distill::build(&setup, &nn::VarStore::new(Device::Cpu).root())
            .unwrap_or_else(|e| panic!("{m}: {e}"));
    }
}

#[test]
fn names_and_default_weights_are_the_reference_scripts() {
    let want = [
        (Method::Fitnet, "hint", 100.0),
        (Method::At, "attention", 1000.0),
        (Method::Sp, "similarity", 3000.0),
        (Method::Cc, "correlation", 0.02),
        (Method::Vid, "vid", 1.0),
        (Method::Rkd, "rkd", 1.0),
        (Method::Pkt, "pkt", 30000.0),
        (Method::Ab, "abound", 1.0),
        (Method::Ft, "factor", 200.0),
        (Method::Fsp, "fsp", 50.0),
        (Method::Nst, "nst", 50.0),
        (Method::Crd, "crd", 0.8),
    ];
    for (m, reference, beta) in want {
        assert_eq!(m.reference_name(), reference);
        assert_eq!(m.default_beta(), beta, "{m}");
    }
    assert_eq!(Method::ALL.len(), want.len() + 1);
}

/// Ten samples of three classes (4, 3 and 3 samples).
fn labels() -> Vec<u32> {
    vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
}

#[test]
fn crd_negatives_come_from_other_classes() {
    let labels = labels();
    let all: Vec<usize> = (0..10).collect();
    for k in [5, 6, 7, 20] {
        let sampler = ContrastSampler::new(&all, &labels, k, CrdMode::Exact).unwrap();
        let batch = [0usize, 4, 8];
        let draw = sampler.draw(&batch, &mut Rng::seed_from_u64(k as u64));
        assert_eq!(draw.rows, vec![0, 4, 8]);
        for (i, &d) in batch.iter().enumerate() {
            let row = &draw.sample[i * (k + 1)..(i + 1) * (k + 1)];
            assert_eq!(row[0], d as i64, "exact: the positive is the sample");
            let negs = &row[1..];
            assert!(
                negs.iter().all(|&n| labels[n as usize] != labels[d]),
                "{negs:?}"
            );
            let mut u = negs.to_vec();
            u.sort();
            u.dedup();
            // Class 0 has 4 samples, so 6 others; classes 1 and 2 have 7 others.
            let others = 10 - labels.iter().filter(|&&l| l == labels[d]).count();
            if k <= others {
                assert_eq!(u.len(), k, "k = {k} ≤ {others}: without replacement");
            } else {
                assert!(u.len() <= others, "k = {k} > {others}: with replacement");
            }
        }
        // The same generator state draws the same.
        let again = sampler.draw(&batch, &mut Rng::seed_from_u64(k as u64));
        assert_eq!(draw, again);
    }
    // Without replacement every other-class sample is drawn about equally often.
    let sampler = ContrastSampler::new(&all, &labels, 3, CrdMode::Exact).unwrap();
    let mut rng = Rng::seed_from_u64(1);
    let mut counts = [0usize; 10];
    for _ in 0..3000 {
        for &n in &sampler.draw(&[1], &mut rng).sample[1..] {
            counts[n as usize] += 1;
        }
    }
    for (i, &c) in counts.iter().enumerate() {
        if labels[i] == 1 {
            assert_eq!(c, 0);
        } else {
            // 9000 draws over 7 samples: 1286 each on average.
            assert!((1100..1480).contains(&c), "sample {i}: {c}");
        }
    }
}

#[test]
fn crd_relax_positives_are_same_class_and_rows_follow_the_subset() {
    let labels = labels();
    // A subset: rows are the sorted dataset indices, repeats ignored.
    let subset = [9usize, 3, 1, 2, 3, 5, 7];
    let sampler = ContrastSampler::new(&subset, &labels, 2, CrdMode::Relax).unwrap();
    assert_eq!(sampler.rows(), 6);
    assert_eq!(sampler.row_of(1), Some(0));
    assert_eq!(sampler.row_of(9), Some(5));
    assert_eq!(sampler.row_of(0), None);
    let mut rng = Rng::seed_from_u64(3);
    let mut others = false;
    for _ in 0..200 {
        let draw = sampler.draw(&[3, 7], &mut rng);
        for (i, &d) in [3usize, 7].iter().enumerate() {
            let row = &draw.sample[i * 3..(i + 1) * 3];
            let class = sampler.classes()[row[0] as usize];
            assert_eq!(
                class, labels[d],
                "relax: the positive is of the sample's class"
            );
            others |= row[0] as usize != sampler.row_of(d).unwrap();
            assert!(
                row[1..]
                    .iter()
                    .all(|&n| sampler.classes()[n as usize] != labels[d])
            );
        }
    }
    assert!(others, "relax draws other samples of the class too");
    let e = ContrastSampler::new(&[0, 3, 6], &labels, 2, CrdMode::Exact).unwrap_err();
    assert!(e.to_string().contains("one class"), "{e}");
}

#[test]
fn every_shipped_distiller_config_applies_to_its_pair() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut n = 0;
    let mut known: HashMap<String, Vec<Vec<i64>>> = HashMap::new();
    for sub in std::fs::read_dir(&root).unwrap() {
        let sub = sub.unwrap().path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&sub).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let mut table: toml::Table = std::fs::read_to_string(&f).unwrap().parse().unwrap();
            table.remove("study");
            let cfg = kd_core::config::ConfigSource {
                file: Some((f.display().to_string(), toml::to_string(&table).unwrap())),
                ..Default::default()
            }
            .resolve()
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let method = cfg.loss.distiller;
            if method == Method::None {
                continue;
            }
            // The reference script's β for the method, as each file says.
            assert_eq!(
                cfg.loss.beta,
                Some(method.default_beta()),
                "{}",
                f.display()
            );
            let teacher = cfg.model.teacher.clone().expect("a teacher");
            let (ss, ts) = (
                zoo_shapes(&mut known, &cfg.model.student),
                zoo_shapes(&mut known, &teacher),
            );
            let params = cfg.loss.params();
            let setup = Setup {
                method,
                params: &params,
                student: &cfg.model.student,
                teacher: &teacher,
                student_shapes: &ss,
                teacher_shapes: &ts,
                train_samples: 50_000,
            };
            let vs = nn::VarStore::new(Device::Cpu);
            distill::build(&setup, &vs.root()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            n += 1;
        }
    }
    assert!(
        n >= 15,
        "found {n} distiller configs under {}",
        root.display()
    );
}

/// The feature shapes (one sample) of a CIFAR-100 zoo model, memoised.
fn zoo_shapes(known: &mut HashMap<String, Vec<Vec<i64>>>, name: &str) -> Vec<Vec<i64>> {
    known
        .entry(name.to_string())
        .or_insert_with(|| {
            let model = kd_core::models::ModelConfig::default();
            let s = kd_core::models::summarize(name, &model).unwrap();
            // summarize's shapes are of a batch of one.
            s.feature_shapes.iter().map(|f| f[1..].to_vec()).collect()
        })
        .clone()
}

#[test]
fn every_method_builds_for_the_reference_pairs_and_fsp_only_where_it_reports_a_result() {
    // RepDistiller's README tables (B.8): FSP is N/A for wrn_40_2 → wrn_40_1 and absent from the
    // cross-architecture table; every other method has a result for every pair.
    let same = [
        ("wrn_40_2", "wrn_16_2"),
        ("wrn_40_2", "wrn_40_1"),
        ("resnet56", "resnet20"),
        ("resnet110", "resnet20"),
        ("resnet110", "resnet32"),
        ("resnet32x4", "resnet8x4"),
        ("vgg13", "vgg8"),
    ];
    let cross = [
        ("vgg13", "MobileNetV2"),
        ("ResNet50", "MobileNetV2"),
        ("ResNet50", "vgg8"),
        ("resnet32x4", "ShuffleV1"),
        ("resnet32x4", "ShuffleV2"),
        ("wrn_40_2", "ShuffleV1"),
    ];
    let mut known = HashMap::new();
    let params = Params::default();
    for (teacher, student) in same.iter().chain(&cross) {
        let (ss, ts) = (
            zoo_shapes(&mut known, student),
            zoo_shapes(&mut known, teacher),
        );
        for method in Method::ALL.into_iter().filter(|m| *m != Method::None) {
            let setup = Setup {
                method,
                params: &params,
                student,
                teacher,
                student_shapes: &ss,
                teacher_shapes: &ts,
                train_samples: 100,
            };
            let built = distill::build(&setup, &nn::VarStore::new(Device::Cpu).root());
            let fsp_na = method == Method::Fsp
                && (cross.contains(&(teacher, student))
                    || (*teacher, *student) == ("wrn_40_2", "wrn_40_1"));
            match built {
                Ok(_) => assert!(!fsp_na, "{method} built for {teacher} → {student}"),
                Err(e) => assert!(fsp_na, "{teacher} → {student}: {e}"),
            }
        }
    }
}
