//! The goodness measurement against a direct computation of the reference's formula, over the
//! same loader batches; determinism; CutMixPick's picked rows; the errors before any work.

use kd_augment::scheme::{StrongOutput, StrongSpec};
use kd_core::config::{ConfigSource, RunConfig};
use kd_core::goodness::{
    Goodness, GoodnessConfig, GoodnessError, Quiet, SchemeGoodness, parse_schemes,
};
use kd_core::train::{self, Mode, Session, Silent};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

/// 400 training images of 10 classes (6 batches of 64 and one of 16 per pass), on the CPU.
fn config(teacher: &Path, extra: &[&str]) -> RunConfig {
    let mut overrides: Vec<String> = vec![
        "run.device=cpu".into(),
        "run.threads=2".into(),
        "data.synthetic.train_per_class=40".into(),
        "data.synthetic.test_per_class=10".into(),
        "data.standard=\"crop:4,flip\"".into(),
        "data.workers=2".into(),
        "model.teacher=resnet8".into(),
        format!("model.teacher_weights=\"{}\"", teacher.display()),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    ConfigSource {
        overrides,
        ..ConfigSource::default()
    }
    .resolve()
    .unwrap()
}

/// A resnet8 teacher trained for one epoch on 1,000 synthetic images, shared by the tests; it
/// lives under cargo's test scratch folder, replaced by each run of this file.
fn teacher() -> &'static Path {
    static WEIGHTS: OnceLock<PathBuf> = OnceLock::new();
    WEIGHTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kd-core-goodness");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let cfg = ConfigSource {
            overrides: vec![
                "run.name=teacher".into(),
                format!("run.out_dir=\"{}\"", dir.display()),
                "run.device=cpu".into(),
                "run.threads=2".into(),
                "run.epochs=1".into(),
                "data.synthetic.train_per_class=100".into(),
                "data.synthetic.test_per_class=10".into(),
                "data.batch_size=32".into(),
                "data.workers=2".into(),
                "model.student=resnet8".into(),
                "schedule.kind=constant".into(),
            ],
            ..ConfigSource::default()
        }
        .resolve()
        .unwrap();
        let s = Session::prepare(&cfg, Mode::Train, false)
            .unwrap()
            .run(&mut Silent)
            .unwrap();
        s.dir.join("checkpoints/last.safetensors")
    })
}

fn measure(run: RunConfig, schemes: &str, passes: usize) -> Vec<SchemeGoodness> {
    let cfg = GoodnessConfig {
        run,
        schemes: parse_schemes(schemes).unwrap(),
        passes,
    };
    Goodness::prepare(&cfg).unwrap().run(&mut Quiet).unwrap()
}

/// The reference's computation, written out: every iteration appends the teacher's softmax on x
/// and on x′ to a buffer; at 10 buffered tensors the group's mean over its rows is kept; T.
/// stddev is the mean over classes of the unbiased std of the group means. Entropy −Σ p ln p
/// over every row.
#[derive(Default)]
struct Reference {
    buffer: Vec<Vec<f64>>,
    tensors: usize,
    groups: Vec<Vec<f64>>,
    entropy_sum: f64,
    rows: usize,
}

impl Reference {
    fn push(&mut self, tensors: &[Tensor]) {
        for t in tensors {
            let c = t.size()[1] as usize;
            let p: Vec<f32> = Vec::try_from(t.contiguous().view([-1])).unwrap();
            for row in p.chunks(c) {
                self.buffer.push(row.iter().map(|&v| v as f64).collect());
                self.entropy_sum -= row
                    .iter()
                    .map(|&v| v as f64)
                    .filter(|&v| v > 0.0)
                    .map(|v| v * v.ln())
                    .sum::<f64>();
                self.rows += 1;
            }
        }
        // Rows are buffered, tensors counted: each push is one iteration of two tensors.
        self.tensors += 2;
        if self.tensors >= 10 {
            let c = self.buffer[0].len();
            let n = self.buffer.len() as f64;
            let mean: Vec<f64> = (0..c)
                .map(|k| self.buffer.iter().map(|r| r[k]).sum::<f64>() / n)
                .collect();
            self.groups.push(mean);
            self.buffer.clear();
            self.tensors = 0;
        }
    }

    fn t_stddev(&self) -> f64 {
        let g = self.groups.len() as f64;
        let c = self.groups[0].len();
        (0..c)
            .map(|k| {
                let mean = self.groups.iter().map(|m| m[k]).sum::<f64>() / g;
                let var = self
                    .groups
                    .iter()
                    .map(|m| (m[k] - mean).powi(2))
                    .sum::<f64>()
                    / (g - 1.0);
                var.sqrt()
            })
            .sum::<f64>()
            / c as f64
    }

    fn mean_entropy(&self) -> f64 {
        self.entropy_sum / self.rows as f64
    }
}

/// The reference over the same batches: the trainer's loader and generators, the teacher on
/// `[x; x′]`; for CutMixPick by teacher entropy, the teacher on `[x; pool]` and the highest-entropy
/// `batch size` rows of the pool (entropy in f64, by hand) as x′.
fn reference(run: &RunConfig, spec: StrongSpec, passes: usize) -> (Reference, Vec<(usize, usize)>) {
    let (ds, _) = train::open_data(run).unwrap();
    let norm = train::normalization(run, &ds).unwrap();
    let loader = train::train_loader(run, &ds, &norm).unwrap();
    let da = train::stronger_da(spec, ds.shape(), &norm).unwrap();
    let cfg = kd_core::models::ModelConfig {
        num_classes: 10,
        input_size: 32,
    };
    let (_vs, t) = train::load_teacher(
        "resnet8",
        run.model.teacher_weights.as_ref().unwrap(),
        &cfg,
        Device::Cpu,
    )
    .unwrap();
    let mut r = Reference::default();
    let mut picks = Vec::new();
    let _guard = tch::no_grad_guard();
    for pass in 1..=passes {
        for batch in loader.epoch(pass as u64) {
            let kd_data::loader::BatchImages::F32(x) = &batch.images else {
                unreachable!()
            };
            let out = da
                .apply(x, &mut train::strong_rng(run.run.seed, pass, batch.step))
                .unwrap();
            let (aug, pool) = match &out {
                StrongOutput::Images(v) => (v.clone(), false),
                StrongOutput::Mixed(m) => (m.images.clone(), false),
                StrongOutput::Pool(p) => (p.images.clone(), true),
            };
            let pixels = [x.as_slice(), aug.as_slice()].concat();
            let input = Tensor::from_slice(&pixels).view([-1, 3, 32, 32]);
            let logits = t.forward_t(&input, false);
            let n = batch.len() as i64;
            let rows = logits.size()[0];
            let p = logits.softmax(1, Kind::Float);
            let p_x = p.narrow(0, 0, n);
            let mut p_aug = p.narrow(0, n, rows - n);
            if pool {
                let probs: Vec<f32> = Vec::try_from(p_aug.contiguous().view([-1])).unwrap();
                let h: Vec<f64> = probs
                    .chunks(10)
                    .map(|row| {
                        -row.iter()
                            .map(|&v| v as f64)
                            .filter(|&v| v > 0.0)
                            .map(|v| v * v.ln())
                            .sum::<f64>()
                    })
                    .collect();
                let mut order: Vec<usize> = (0..h.len()).collect();
                order.sort_by(|&a, &b| h[b].partial_cmp(&h[a]).unwrap().then(a.cmp(&b)));
                order.truncate(run.data.batch_size);
                picks.push((h.len(), order.len()));
                let idx: Vec<i64> = order.iter().map(|&i| i as i64).collect();
                p_aug = p_aug.index_select(0, &Tensor::from_slice(&idx));
            }
            r.push(&[p_x, p_aug]);
        }
    }
    (r, picks)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn identity_equals_the_direct_computation() {
    // The reference below runs PyTorch's default layout; channels-last agrees to rounding.
    let run = config(teacher(), &["run.memory_format=contiguous"]);
    let got = &measure(run.clone(), "identity", 3)[0];
    let cl = &measure(
        config(teacher(), &["run.memory_format=channels_last"]),
        "identity",
        3,
    )[0];
    let t_cl = cl.t_stddev.unwrap();
    let (want, _) = reference(&run, "identity".parse().unwrap(), 3);
    // 3 passes × 7 iterations = 21 iterations of 2 tensors: 4 groups, 2 tensors left over.
    assert_eq!(got.groups, 4);
    assert_eq!(want.groups.len(), 4);
    assert_eq!(
        (got.samples, got.rows, got.images),
        (1200, 2400, 2400),
        "{got:?}"
    );
    let t = got.t_stddev.unwrap();
    assert!(t > 0.0 && t.is_finite(), "{got:?}");
    assert!(
        close(t, want.t_stddev(), 1e-9),
        "T. stddev {t} vs {}",
        want.t_stddev()
    );
    assert!(
        close(t_cl, t, 1e-6),
        "channels-last T. stddev {t_cl} vs {t}"
    );
    assert!(
        close(got.mean_entropy, want.mean_entropy(), 1e-6),
        "entropy {} vs {}",
        got.mean_entropy,
        want.mean_entropy()
    );
    assert_eq!(got.scheme, "identity");
    assert!(got.seconds > 0.0 && got.images_per_s > 0.0);

    // The yardstick: one pass of the teacher alone, 400 images in batches of 128.
    let cfg = GoodnessConfig {
        run,
        schemes: parse_schemes("identity").unwrap(),
        passes: 1,
    };
    let plain = Goodness::prepare(&cfg)
        .unwrap()
        .teacher_throughput(128)
        .unwrap();
    assert_eq!((plain.images, plain.batch_size), (400, 128));
    assert!(plain.images_per_s > 0.0);
}

#[test]
fn cutmix_pick_by_teacher_entropy_keeps_the_highest_entropy_half() {
    let run = config(teacher(), &["run.memory_format=contiguous"]);
    let got = &measure(run.clone(), "cutmix_pick_t", 3)[0];
    let (want, picks) = reference(&run, "cutmix_pick:teacher_entropy".parse().unwrap(), 3);
    // Full batches: a pool of 128, 64 kept; the short batch of 16: a pool of 32, all kept.
    assert_eq!(picks.len(), 21);
    for (i, &(pool, kept)) in picks.iter().enumerate() {
        let want = if i % 7 == 6 { (32, 32) } else { (128, 64) };
        assert_eq!((pool, kept), want, "iteration {i}");
    }
    assert_eq!(got.scheme, "cutmix_pick:teacher_entropy");
    // One teacher pass over [x; pool] per iteration, x′ taken from it.
    assert_eq!(
        (got.samples, got.rows, got.images),
        (1200, 1200 + 3 * (6 * 64 + 32), 1200 + 2400),
        "{got:?}"
    );
    assert_eq!(got.groups, want.groups.len());
    let t = got.t_stddev.unwrap();
    assert!(
        close(t, want.t_stddev(), 1e-9),
        "T. stddev {t} vs {}",
        want.t_stddev()
    );
    assert!(close(got.mean_entropy, want.mean_entropy(), 1e-6));
}

#[test]
fn the_same_seed_gives_the_same_numbers() {
    let run = config(teacher(), &[]);
    let schemes = "cutmix,autoaugment";
    let a = measure(run.clone(), schemes, 2);
    let b = measure(run.clone(), schemes, 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (x.t_stddev, x.mean_entropy, x.groups, x.rows),
            (y.t_stddev, y.mean_entropy, y.groups, y.rows)
        );
    }
    let other = measure(config(teacher(), &["run.seed=1"]), schemes, 2);
    assert_ne!(a[0].t_stddev, other[0].t_stddev);
}

#[test]
fn student_entropy_uses_the_student_and_needs_it() {
    let run = config(teacher(), &[]);
    let cfg = GoodnessConfig {
        run: run.clone(),
        schemes: parse_schemes("identity,cutmix_pick_s").unwrap(),
        passes: 1,
    };
    let e = Goodness::prepare(&cfg).unwrap_err();
    assert!(
        matches!(&e, GoodnessError::Setting { key, .. } if key == "model.student_weights"),
        "{e}"
    );
    assert!(e.to_string().contains("--student"), "{e}");

    // Any resnet8 will do as a student: the teacher's own weights.
    let student = format!("model.student_weights=\"{}\"", teacher().display());
    let missing = "model.student_weights=\"/nonexistent/s.safetensors\"";
    let cfg_missing = GoodnessConfig {
        run: config(teacher(), &["model.student=resnet8", missing]),
        ..cfg.clone()
    };
    let e = Goodness::prepare(&cfg_missing).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/s.safetensors"), "{e}");

    let run = config(teacher(), &["model.student=resnet8", &student]);
    let got = measure(run, "cutmix_pick_s", 1);
    let g = &got[0];
    assert_eq!(g.scheme, "cutmix_pick:student_entropy");
    // The teacher sees x and the picked rows only.
    assert_eq!(
        (g.samples, g.rows, g.images),
        (400, 400 + 6 * 64 + 32, 400 + 6 * 64 + 32)
    );
    assert!(g.mean_entropy > 0.0 && g.mean_entropy <= 10f64.ln() + 1e-9);
    // With the teacher as the student, S. ent. picks what T. ent. picks.
    let t = measure(config(teacher(), &[]), "cutmix_pick_t", 1);
    assert!(close(t[0].mean_entropy, g.mean_entropy, 1e-6));
}

#[test]
fn bad_settings_are_errors_naming_them() {
    let e = parse_schemes("identity,cutmx").unwrap_err().to_string();
    assert!(
        e.contains("cutmx") && e.contains("did you mean 'cutmix'"),
        "{e}"
    );
    let e = parse_schemes("flip,flip").unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
    assert!(parse_schemes(" , ").is_err());
    let specs = parse_schemes("cutmix_pick_t, crop+flip@sample,CutMix_Pick_S").unwrap();
    let names: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names,
        [
            "cutmix_pick:teacher_entropy",
            "crop+flip@sample",
            "cutmix_pick:student_entropy"
        ]
    );

    let run = config(Path::new("/nonexistent/t.safetensors"), &[]);
    let cfg = GoodnessConfig {
        run,
        schemes: parse_schemes("identity").unwrap(),
        passes: 1,
    };
    let e = Goodness::prepare(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("/nonexistent/t.safetensors") && e.contains("no such file"),
        "{e}"
    );
    let cfg = GoodnessConfig {
        run: config(teacher(), &[]),
        passes: 0,
        ..cfg
    };
    assert!(
        Goodness::prepare(&cfg)
            .unwrap_err()
            .to_string()
            .contains("passes")
    );
}
