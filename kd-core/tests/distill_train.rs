//! The trainer with RepDistiller's distillers, end to end on the synthetic dataset (16×16
//! images, so that 24 one-epoch runs fit in about a minute):
//!
//! * every method with the reference's weights (γ = 1, α = 0, the run script's β), one epoch
//!   on a same-architecture pair (resnet8 → resnet8) and a cross-architecture pair
//!   (wrn_10_2 → resnet8: pre-activation WRN teacher, twice the channels), each better than
//!   chance; FSP, which needs equal channels, is refused for the cross pair and runs
//!   resnet8 → wrn_16_1 instead;
//! * CRD + KD + CutMixPick resumed after an epoch continues bit-exactly on the CPU (the memory,
//!   the normalisation constants and the draws of negatives included), and its modules are
//!   trained by the run's SGD;
//! * the two-stage methods resumed inside their init stage (AB) and between the stages (FT)
//!   continue bit-exactly; FT's paraphraser is frozen in the main stage, its translator trained.

use kd_core::config::{ConfigSource, RunConfig};
use kd_core::distill::Method;
use kd_core::train::state::TrainState;
use kd_core::train::{Mode, Observer, Session, Silent, Summary, TrainError};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::Tensor;

/// 10 classes of 16×16 images, 500 training and 50 test images per class, batch 32, one epoch
/// at a constant rate, on the CPU with one libtorch thread (the tests run two at a time).
fn config(out: &Path, name: &str, extra: &[&str]) -> RunConfig {
    let mut overrides: Vec<String> = [
        format!("run.name={name}"),
        format!("run.out_dir=\"{}\"", out.display()),
        "run.device=cpu".into(),
        "run.threads=1".into(),
        "run.epochs=1".into(),
        "data.synthetic.size=16".into(),
        "data.synthetic.train_per_class=500".into(),
        "data.synthetic.test_per_class=50".into(),
        "data.batch_size=32".into(),
        "data.standard=\"crop:2\"".into(),
        "data.workers=1".into(),
        "model.student=resnet8".into(),
        "schedule.kind=constant".into(),
    ]
    .into();
    overrides.extend(extra.iter().map(|s| s.to_string()));
    ConfigSource {
        overrides,
        ..ConfigSource::default()
    }
    .resolve()
    .unwrap_or_else(|e| panic!("{e}"))
}

type Trained = (tempfile::TempDir, PathBuf);

/// A `model` teacher (resnet8 or wrn_10_2) trained for two epochs, once per test process.
fn teacher(model: &str) -> PathBuf {
    static RESNET8: OnceLock<Trained> = OnceLock::new();
    static WRN_10_2: OnceLock<Trained> = OnceLock::new();
    let cell = match model {
        "resnet8" => &RESNET8,
        "wrn_10_2" => &WRN_10_2,
        other => panic!("no teacher {other} in these tests"),
    };
    let (_, path) = cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let student = format!("model.student={model}");
        let cfg = config(dir.path(), "teacher", &["run.epochs=2", &student]);
        let s = Session::prepare(&cfg, Mode::Train, false)
            .unwrap()
            .run(&mut Silent)
            .unwrap();
        let top1 = s.history.last().unwrap().test_top1;
        assert!(
            top1 > 30.0,
            "the {model} teacher learned too little: {top1}%"
        );
        let path = s.dir.join("checkpoints/last.safetensors");
        (dir, path)
    });
    path.clone()
}

/// A distillation from a trained `teacher_model`.
fn distill_config(out: &Path, name: &str, teacher_model: &str, extra: &[&str]) -> RunConfig {
    let mut all = vec![
        format!("model.teacher={teacher_model}"),
        format!(
            "model.teacher_weights=\"{}\"",
            teacher(teacher_model).display()
        ),
    ];
    all.extend(extra.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    config(out, name, &all)
}

fn run(cfg: &RunConfig, resume: bool) -> Result<Summary, TrainError> {
    Session::prepare(cfg, Mode::Distill, resume)?.run(&mut Silent)
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("checkpoints/last.safetensors")).unwrap()
}

fn state(dir: &Path) -> TrainState {
    TrainState::load(&dir.join("checkpoints/last.state.safetensors")).unwrap()
}

/// Whether two tensor groups hold the same names and bit-identical values.
fn same(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
    let sorted = |v: &[(String, Tensor)]| {
        let mut v: Vec<(String, Tensor)> = v
            .iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    let (a, b) = (sorted(a), sorted(b));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|((ka, ta), (kb, tb))| ka == kb && ta.equal(tb))
}

/// One epoch of `method` with the reference's weights (and a one-epoch init stage) from
/// `teacher` to `student`; the student must beat chance (10%) on the 500 test images by more
/// than two standard deviations of a guess (13%).
fn one_epoch(out: &Path, method: Method, teacher: &str, student: &str) {
    let name = format!("{method}-{teacher}-{student}");
    let sets = [
        format!("loss.distiller={method}"),
        format!("model.student={student}"),
        "loss.init_epochs=1".into(),
        "loss.crd.nce_k=256".into(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let cfg = distill_config(out, &name, teacher, &sets);
    assert_eq!(cfg.loss.beta, Some(method.default_beta()), "{name}");
    let s = run(&cfg, false).unwrap_or_else(|e| panic!("{name}: {e}"));
    let row = &s.history[0];
    assert!(
        row.test_top1 > 13.0,
        "{name}: test top-1 {}%",
        row.test_top1
    );
    assert!(row.train_loss.is_finite(), "{name}: {row:?}");
    let has_term = !matches!(method, Method::Ab | Method::Fsp);
    assert_eq!(row.train_distill != 0.0, has_term, "{name}: {row:?}");
    let st = state(&s.dir);
    let init = usize::from(method.has_init_stage());
    assert_eq!(st.meta.init_history.len(), init, "{name}");
    assert_eq!(st.meta.init_epoch, init, "{name}");
    eprintln!(
        "{name}: test top-1 {:.1}%, distiller term {:.4}, {:.1} s",
        row.test_top1, row.train_distill, row.seconds
    );
}

/// Per method, a test of each pair (so that each test is a few seconds and they spread over
/// the test threads).
macro_rules! one_epoch_tests {
    ($($name:ident: $method:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[test]
            fn beats_chance_on_a_same_architecture_pair() {
                let out = tempfile::tempdir().unwrap();
                one_epoch(out.path(), $method, "resnet8", "resnet8");
            }

            #[test]
            fn beats_chance_on_a_cross_architecture_pair() {
                let out = tempfile::tempdir().unwrap();
                cross(out.path(), $method);
            }
        }
    )*};
}

one_epoch_tests! {
    fitnet: Method::Fitnet,
    at: Method::At,
    sp: Method::Sp,
    cc: Method::Cc,
    vid: Method::Vid,
    rkd: Method::Rkd,
    pkt: Method::Pkt,
    ab: Method::Ab,
    ft: Method::Ft,
    fsp: Method::Fsp,
    nst: Method::Nst,
    crd: Method::Crd,
}

#[test]
fn the_tests_cover_every_method() {
    let covered = [
        Method::Fitnet,
        Method::At,
        Method::Sp,
        Method::Cc,
        Method::Vid,
        Method::Rkd,
        Method::Pkt,
        Method::Ab,
        Method::Ft,
        Method::Fsp,
        Method::Nst,
        Method::Crd,
    ];
    assert!(
        Method::ALL
            .iter()
            .all(|m| *m == Method::None || covered.contains(m))
    );
}

/// The cross-architecture pair wrn_10_2 → resnet8; FSP is refused there, saying why, and runs
/// resnet8 → wrn_16_1 (equal channels) instead.
fn cross(out: &Path, m: Method) {
    if m != Method::Fsp {
        return one_epoch(out, m, "wrn_10_2", "resnet8");
    }
    let cfg = distill_config(out, "fsp-refused", "wrn_10_2", &["loss.distiller=fsp"]);
    let e = Session::prepare(&cfg, Mode::Distill, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wrn_10_2 → resnet8") && e.contains("same channels"),
        "{e}"
    );
    assert!(
        !out.join("fsp-refused").exists(),
        "no run directory for a refused pair"
    );
    one_epoch(out, m, "resnet8", "wrn_16_1");
}

/// A small run for the resume tests: 40 images per class, 13 steps per epoch.
fn small(out: &Path, name: &str, extra: &[&str]) -> RunConfig {
    let mut all = vec![
        "data.synthetic.train_per_class=40",
        "data.synthetic.test_per_class=5",
    ];
    all.extend(extra);
    distill_config(out, name, "resnet8", &all)
}

#[test]
fn crd_resumes_bit_exactly_with_its_memory() {
    let out = tempfile::tempdir().unwrap();
    // CRD + KD (the CRD paper's `-a 1 -b 0.8`) with Good-DA-in-KD's CutMixPick, relax positives.
    let two = [
        "run.epochs=2",
        "loss.distiller=crd",
        "loss.kd=1",
        "loss.crd.nce_k=32",
        "loss.crd.mode=relax",
        "augment.strong=\"cutmix_pick:teacher_entropy\"",
    ];
    let a = run(&small(out.path(), "a", &two), false).unwrap();
    let one: Vec<&str> = two
        .iter()
        .map(|s| {
            if *s == "run.epochs=2" {
                "run.epochs=1"
            } else {
                s
            }
        })
        .collect();
    let b1 = run(&small(out.path(), "b", &one), false).unwrap();
    let after_one = state(&b1.dir);
    let b = run(&small(out.path(), "b", &two), true).unwrap();
    assert_eq!(b.history.len(), 2);
    assert_eq!(weights(&a.dir), weights(&b.dir), "student weights");
    let (sa, sb) = (state(&a.dir), state(&b.dir));
    assert!(same(&sa.distill, &sb.distill), "the distiller's state");
    assert!(same(&sa.optim, &sb.optim), "the optimizer's state");
    assert_eq!(a.history[1].train_distill, b.history[1].train_distill);
    assert!(a.history[1].train_distill > 0.0 && a.history[1].train_kd_aug > 0.0);

    // The memory, its constants and the embeddings are in the checkpoint and moved on.
    let get = |s: &TrainState, k: &str| {
        s.distill
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, t)| t.shallow_clone())
            .unwrap_or_else(|| panic!("no distill.{k}"))
    };
    for k in [
        "contrast.memory_v1",
        "contrast.memory_v2",
        "embed_s.linear.weight",
        "embed_t.linear.weight",
    ] {
        assert!(
            !get(&after_one, k).equal(&get(&sa, k)),
            "{k} did not change in epoch 2"
        );
    }
    assert_eq!(get(&sa, "contrast.memory_v1").size(), [400, 128]);
    let z = get(&after_one, "contrast.z");
    assert!(
        z.min().double_value(&[]) > 0.0,
        "Z is set on the first batch"
    );
    assert!(z.equal(&get(&sa, "contrast.z")), "and fixed afterwards");
    assert!(
        sa.optim
            .iter()
            .any(|(k, _)| k == "momentum_buffer.distill.embed_t.linear.weight"),
        "the teacher's embedding is trained by the run's SGD"
    );
}

/// Stops a run (by unwinding) after the checkpoint of init epoch `at`, as a kill would.
struct KillAfterInitEpoch(usize);

impl Observer for KillAfterInitEpoch {
    fn note(&mut self, text: &str) {
        if text.starts_with(&format!("init epoch {}/", self.0)) {
            std::panic::panic_any("killed");
        }
    }
}

fn killed(cfg: &RunConfig, at: usize) {
    let mut session = Session::prepare(cfg, Mode::Distill, false).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        session.run(&mut KillAfterInitEpoch(at))
    }));
    assert!(r.is_err(), "the run was not interrupted");
}

#[test]
fn two_stage_methods_resume_in_either_stage() {
    let out = tempfile::tempdir().unwrap();
    // AB killed inside its init stage.
    let ab = ["run.epochs=2", "loss.distiller=ab", "loss.init_epochs=2"];
    let whole = run(&small(out.path(), "ab", &ab), false).unwrap();
    killed(&small(out.path(), "ab-killed", &ab), 1);
    let st = state(&out.path().join("ab-killed"));
    assert_eq!((st.meta.init_epoch, st.meta.epoch), (1, 0));
    let resumed = run(&small(out.path(), "ab-killed", &ab), true).unwrap();
    assert_eq!(weights(&whole.dir), weights(&resumed.dir));
    let (sa, sb) = (state(&whole.dir), state(&resumed.dir));
    assert!(same(&sa.distill, &sb.distill) && same(&sa.optim, &sb.optim));
    assert_eq!(sa.meta.init_history.len(), 2);
    let losses = |s: &TrainState| -> Vec<(usize, f64)> {
        s.meta
            .init_history
            .iter()
            .map(|r| (r.epoch, r.loss))
            .collect()
    };
    assert_eq!(losses(&sa), losses(&sb));

    // FT killed between the stages (after its last init epoch).
    let ft = ["run.epochs=2", "loss.distiller=ft", "loss.init_epochs=2"];
    let whole = run(&small(out.path(), "ft", &ft), false).unwrap();
    killed(&small(out.path(), "ft-killed", &ft), 2);
    let between = state(&out.path().join("ft-killed"));
    assert_eq!((between.meta.init_epoch, between.meta.epoch), (2, 0));
    let resumed = run(&small(out.path(), "ft-killed", &ft), true).unwrap();
    assert_eq!(weights(&whole.dir), weights(&resumed.dir));
    let end = state(&resumed.dir);
    assert!(same(&state(&whole.dir).distill, &end.distill));
    // The paraphraser is frozen in the main stage, the translator trained.
    let part = |s: &TrainState, p: &str| -> Vec<(String, Tensor)> {
        s.distill
            .iter()
            .filter(|(k, _)| k.starts_with(p))
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect()
    };
    assert!(!part(&between, "paraphraser.").is_empty());
    assert!(same(
        &part(&between, "paraphraser."),
        &part(&end, "paraphraser.")
    ));
    assert!(!same(
        &part(&between, "translator."),
        &part(&end, "translator.")
    ));
    assert!(end.optim.iter().all(|(k, _)| !k.contains("paraphraser")));
}

#[test]
fn kd_train_refuses_a_distiller() {
    let out = tempfile::tempdir().unwrap();
    let cfg = config(out.path(), "train", &["loss.distiller=at"]);
    let e = Session::prepare(&cfg, Mode::Train, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("loss.distiller") && e.contains("kd distill"),
        "{e}"
    );
}
