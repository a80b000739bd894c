//! Helpers shared by the model-zoo tests.
#![allow(dead_code)]

use kd_core::models::{self, Model, ModelConfig};
use tch::{Device, Kind, Tensor, nn};

/// Builds `name` on the CPU with `num_classes` classes and `input_size` inputs.
pub fn build(name: &str, num_classes: i64, input_size: i64) -> (nn::VarStore, Box<dyn Model>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        num_classes,
        input_size,
    };
    let model =
        models::build(name, &vs.root(), &cfg).unwrap_or_else(|e| panic!("building {name}: {e}"));
    (vs, model)
}

/// Trainable parameters (BatchNorm running statistics excluded, as PyTorch's `parameters()`).
pub fn param_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Every variable name, sorted.
pub fn sorted_keys(vs: &nn::VarStore) -> Vec<String> {
    let mut keys: Vec<String> = vs.variables().into_keys().collect();
    keys.sort();
    keys
}

/// The feature shapes and the logits shape for a `[2, 3, side, side]` input.
pub fn feature_shapes(
    model: &dyn Model,
    side: i64,
    train: bool,
    preact: bool,
) -> (Vec<Vec<i64>>, Vec<i64>) {
    let xs = Tensor::randn([2, 3, side, side], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| model.forward_features(&xs, train, preact));
    (
        out.features.iter().map(|f| f.size()).collect(),
        out.logits.size(),
    )
}

/// The largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from(
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
            .abs()
            .max(),
    )
    .unwrap()
}

/// Largest difference tolerated between kd and PyTorch (float32 on the CPU).
pub const PARITY_TOL: f64 = 1e-4;

/// The Python of the project's virtual environment: `$KD_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("KD_PYTHON") {
        return Some(p.into());
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let py = root.join(".venv/bin/python");
    py.exists().then_some(py)
}

/// Runs `tests/parity/<script>` with the project's Python, writing into a fresh
/// `$CARGO_TARGET_TMPDIR/<scratch>` folder, and returns that folder; `None` without Python.
pub fn run_parity_script(script: &str, scratch: &str) -> Option<std::path::PathBuf> {
    let py = python()?;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(scratch);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the scratch folder");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/parity")
        .join(script);
    let out = std::process::Command::new(&py)
        .arg(&path)
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

/// A fresh folder under the system's temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("kd-parity-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fixture folder");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// PyTorch parity at 32×32 inputs; see [`parity_at`].
pub fn parity(family: &str, model: &str, num_classes: i64) {
    parity_at(family, model, num_classes, 32)
}

/// PyTorch parity of the zoo's `model`: runs `kd-core/tests/parity/make.py` (family module
/// `<family>.py`) to write a fixture, loads its `state_dict` into our model by name (every key
/// must match, with the same shape), then compares the eval logits, every feature (and every
/// pre-activation feature when the fixture has them) and, after one train-mode forward, the
/// train logits and every BatchNorm running statistic, each within [`PARITY_TOL`].
///
/// Skips (with a message) when the project's Python environment is missing.
pub fn parity_at(family: &str, model: &str, num_classes: i64, input_size: i64) {
    let Some(py) = python() else {
        eprintln!(
            "skipping PyTorch parity of {model}: no .venv/bin/python (run scripts/setup.sh) and no KD_PYTHON"
        );
        return;
    };
    let dir = TempDir::new(model);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/make.py");
    let out = std::process::Command::new(&py)
        .arg(&script)
        .args(["--family", family, "--model", model])
        .args(["--num-classes", &num_classes.to_string()])
        .args(["--input-size", &input_size.to_string()])
        .arg("--out")
        .arg(&dir.0)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "make.py failed for {family}/{model}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixture = Tensor::read_npz(dir.0.join("fixture.npz")).expect("reading fixture.npz");
    let fixture: std::collections::HashMap<String, Tensor> = fixture.into_iter().collect();

    let (vs, net) = build(model, num_classes, input_size);
    load_state_dict(&vs, &fixture, model);

    let xs = &fixture["__input"];
    let worst = std::cell::Cell::new(0f64);
    let check = |what: &str, ours: &Tensor, theirs: &Tensor| {
        assert_eq!(
            ours.size(),
            theirs.size(),
            "{model}: {what}: shape {:?} (kd) vs {:?} (PyTorch)",
            ours.size(),
            theirs.size()
        );
        let d = max_abs_diff(ours, theirs);
        assert!(
            d <= PARITY_TOL,
            "{model}: {what} differs by {d:e} (max abs)"
        );
        worst.set(worst.get().max(d));
    };
    let count = |prefix: &str| fixture.keys().filter(|k| k.starts_with(prefix)).count();

    tch::no_grad(|| {
        let eval = net.forward_features(xs, false, false);
        check("eval logits", &eval.logits, &fixture["__logits"]);
        assert_eq!(
            eval.features.len(),
            count("__feat_"),
            "{model}: number of features"
        );
        for (i, f) in eval.features.iter().enumerate() {
            check(&format!("feature {i}"), f, &fixture[&format!("__feat_{i}")]);
        }
        let n_pre = count("__preact_");
        if n_pre > 0 {
            let pre = net.forward_features(xs, false, true);
            assert_eq!(
                pre.features.len(),
                n_pre,
                "{model}: number of preact features"
            );
            for (i, f) in pre.features.iter().enumerate() {
                check(
                    &format!("preact feature {i}"),
                    f,
                    &fixture[&format!("__preact_{i}")],
                );
            }
        }

        let train_logits = net.forward_t(xs, true);
        check("train logits", &train_logits, &fixture["__train_logits"]);
    });
    let vars = vs.variables();
    let mut stats = 0;
    for (key, theirs) in &fixture {
        if let Some(var) = key.strip_prefix("__after_train:") {
            let ours = vars
                .get(var)
                .unwrap_or_else(|| panic!("{model}: no variable {var} for the BN statistic"));
            check(&format!("{var} after one train step"), ours, theirs);
            stats += 1;
        }
    }
    let running = vars
        .keys()
        .filter(|k| k.ends_with(".running_mean") || k.ends_with(".running_var"));
    assert_eq!(
        stats,
        running.count(),
        "{model}: every BN statistic is checked"
    );
    eprintln!(
        "parity {model}: {} features, {stats} BN statistics, largest difference {:e}",
        count("__feat_"),
        worst.get()
    );
}

/// Copies a PyTorch `state_dict` (the fixture's entries not starting with `__`) into `vs`,
/// failing on a missing or unexpected key or a shape mismatch, naming the key and both shapes.
pub fn load_state_dict(
    vs: &nn::VarStore,
    state: &std::collections::HashMap<String, Tensor>,
    model: &str,
) {
    let vars = vs.variables();
    let theirs: Vec<&String> = state.keys().filter(|k| !k.starts_with("__")).collect();
    let mut missing: Vec<&String> = vars.keys().filter(|k| !state.contains_key(*k)).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "{model}: keys missing from the PyTorch state_dict: {missing:?}"
    );
    let mut extra: Vec<&&String> = theirs.iter().filter(|k| !vars.contains_key(**k)).collect();
    extra.sort();
    assert!(
        extra.is_empty(),
        "{model}: unexpected keys in the PyTorch state_dict: {extra:?}"
    );
    tch::no_grad(|| {
        for (k, var) in &vars {
            let src = &state[k];
            assert_eq!(
                var.size(),
                src.size(),
                "{model}: shape mismatch for {k}: kd {:?} vs PyTorch {:?}",
                var.size(),
                src.size()
            );
            let mut var = var.shallow_clone();
            var.copy_(src);
        }
    });
}
