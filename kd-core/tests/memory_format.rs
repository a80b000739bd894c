//! `run.memory_format`: channels-last weights and batches give the values of the contiguous
//! layout up to the convolutions' rounding, keep every variable's identity, and leave the saved
//! weights unchanged; the trainer takes the setting and names a bad one.

use kd_core::checkpoint;
use kd_core::config::ConfigSource;
use kd_core::models::{self, ModelConfig};
use kd_core::optim::{Sgd, SgdConfig};
use kd_core::runtime::MemoryFormat;
use kd_core::train::{Mode, Session, Silent};
use tch::{Device, Kind, Tensor, nn};

/// Largest absolute difference between two tensors, relative to the largest magnitude in `b`.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = f64::try_from((a - b).abs().max()).unwrap();
    let m = f64::try_from(b.abs().max()).unwrap().max(1e-12);
    d / m
}

/// libtorch's generator is global and the tests run in parallel: each test holds this
/// throughout, so no other test draws between a seed and the draws it fixes.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SEEDED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A resnet8 (10 classes) with the weights of seed 7, laid out as `format`.
fn resnet8(format: MemoryFormat) -> (nn::VarStore, Box<dyn models::Model>) {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = models::build("resnet8", &vs.root(), &ModelConfig::default()).unwrap();
    format.apply_to(&vs);
    (vs, model)
}

#[test]
fn parse_names_the_value_and_auto_depends_on_the_device() {
    let _serial = serial();
    use MemoryFormat::*;
    assert_eq!(MemoryFormat::parse("auto", Device::Cpu), Ok(ChannelsLast));
    assert_eq!(MemoryFormat::parse("auto", Device::Cuda(0)), Ok(Contiguous));
    assert_eq!(
        MemoryFormat::parse("channels-last", Device::Cuda(0)),
        Ok(ChannelsLast)
    );
    assert_eq!(
        MemoryFormat::parse("Contiguous", Device::Cpu),
        Ok(Contiguous)
    );
    // The printed name is the setting's, for either device.
    for f in [Contiguous, ChannelsLast] {
        assert_eq!(MemoryFormat::parse(&f.to_string(), Device::Cuda(0)), Ok(f));
    }
    let err = MemoryFormat::parse("nhwc", Device::Cpu).unwrap_err();
    assert!(
        err.contains("'nhwc'") && err.contains("channels_last"),
        "{err}"
    );
}

#[test]
fn tensor_changes_strides_not_values() {
    let _serial = serial();
    let x = Tensor::randn([4, 3, 5, 6], (Kind::Float, Device::Cpu));
    assert!(MemoryFormat::Contiguous.holds(&x));
    assert!(!MemoryFormat::ChannelsLast.holds(&x));
    let cl = MemoryFormat::ChannelsLast.tensor(&x);
    assert_eq!(cl.size(), x.size());
    assert_eq!(cl.stride(), vec![90, 1, 18, 3]);
    assert!(MemoryFormat::ChannelsLast.holds(&cl));
    assert!(cl.equal(&x));
    let back = MemoryFormat::Contiguous.tensor(&cl);
    assert_eq!(back.stride(), vec![90, 30, 6, 1]);
    assert!(back.equal(&x));
    // Other ranks pass through untouched.
    let v = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
    assert_eq!(MemoryFormat::ChannelsLast.tensor(&v).stride(), vec![3, 1]);
}

#[test]
fn apply_to_keeps_identity_values_and_saved_weights() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (plain_vs, _) = resnet8(MemoryFormat::Contiguous);
    let (cl_vs, _) = resnet8(MemoryFormat::ChannelsLast);
    let plain = plain_vs.variables();
    let mut four_d = 0;
    for (name, var) in cl_vs.variables() {
        let want = &plain[&name];
        assert!(var.equal(want), "{name} changed value");
        assert_eq!(var.requires_grad(), want.requires_grad(), "{name}");
        if var.dim() == 4 {
            four_d += 1;
            assert!(MemoryFormat::ChannelsLast.holds(&var), "{name}");
        } else {
            assert_eq!(var.stride(), want.stride(), "{name}");
        }
    }
    assert!(four_d >= 9, "resnet8 has 4-D weights");
    // The trainable list sees the same tensors (an optimizer over it updates the module's).
    for var in cl_vs.trainable_variables() {
        if var.dim() == 4 {
            assert!(MemoryFormat::ChannelsLast.holds(&var));
        }
    }
    // Saved weights are contiguous copies: byte for byte the same file.
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    checkpoint::save_safetensors(&plain_vs, &a).unwrap();
    checkpoint::save_safetensors(&cl_vs, &b).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn a_training_step_in_channels_last_matches_the_contiguous_step() {
    let _serial = serial();
    // Fixed data and thread count (another test's trainer sets libtorch's threads): the
    // summation order, and so the rounding compared below, is the same on every run.
    tch::set_num_threads(1);
    tch::manual_seed(3);
    let x = Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
    let mut after = Vec::new();
    let mut logits = Vec::new();
    for format in [MemoryFormat::Contiguous, MemoryFormat::ChannelsLast] {
        let (vs, model) = resnet8(format);
        let mut sgd = Sgd::from_var_store(&vs, SgdConfig::default()).unwrap();
        let z = model.forward_t(&format.tensor(&x), true);
        let loss = z.cross_entropy_for_logits(&y);
        sgd.zero_grad();
        loss.backward();
        sgd.step(0.1);
        logits.push(z.detach());
        after.push(vs.variables());
    }
    assert!(rel_diff(&logits[1], &logits[0]) < 1e-5);
    // Parameters after the step: equal to a few float32 roundings of the update. (A relative
    // test per tensor is wrong for small biases, whose gradients are sums that cancel and whose
    // summation order depends on the layout.)
    for (name, a) in &after[0] {
        let b = &after[1][name];
        let d = f64::try_from((a - b).abs().max()).unwrap();
        assert!(d < 1e-6, "{name}: {d}");
    }
    // The update is not a no-op: the weights moved from their initial values.
    let (init_vs, _) = resnet8(MemoryFormat::Contiguous);
    let w = "conv1.weight";
    assert!(!after[1][w].equal(&init_vs.variables()[w]));
}

#[test]
fn the_trainer_takes_the_setting_and_names_a_bad_value() {
    let _serial = serial();
    let out = tempfile::tempdir().unwrap();
    let config = |format: &str| {
        ConfigSource {
            overrides: vec![
                "run.name=layout".into(),
                format!("run.out_dir=\"{}\"", out.path().display()),
                "run.device=cpu".into(),
                "run.threads=1".into(),
                "run.epochs=1".into(),
                format!("run.memory_format={format}"),
                "data.synthetic.train_per_class=20".into(),
                "data.synthetic.test_per_class=5".into(),
                "data.batch_size=50".into(),
                "model.student=resnet8".into(),
            ],
            ..ConfigSource::default()
        }
        .resolve()
        .unwrap()
    };
    let err = Session::prepare(&config("nchw"), Mode::Train, false)
        .expect_err("an unknown layout is refused")
        .to_string();
    assert!(
        err.contains("run.memory_format") && err.contains("'nchw'"),
        "{err}"
    );
    assert!(
        !out.path().join("layout").exists(),
        "a run directory was made"
    );
    let mut s = Session::prepare(&config("channels_last"), Mode::Train, false).unwrap();
    for (name, var) in s.student_vars().variables() {
        if var.dim() == 4 {
            assert!(MemoryFormat::ChannelsLast.holds(&var), "{name}");
        }
    }
    let summary = s.run(&mut Silent).unwrap();
    assert!(summary.history[0].train_loss.is_finite());
}
