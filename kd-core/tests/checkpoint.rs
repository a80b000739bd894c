//! Weights in and out: `torch.save` checkpoints (plain, RepDistiller's `{'model': ...}`,
//! DataParallel's `module.` prefix, the other common wrappers) import into the zoo's resnet8
//! and give PyTorch's logits; every dtype, views at offsets into shared storages and
//! non-contiguous tensors read back exactly; broken files and mismatched models give errors
//! naming the file and the key; safetensors round-trips, and kd's export loads into PyTorch.
//!
//! The `.pth` files come from `tests/parity/checkpoints.py`, run with the project's Python
//! (skipped, with a message, without it); the error cases build their archives here.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kd_core::checkpoint::{
    self, CheckpointError, LoadOptions, Problem, StateDict, load_into, load_safetensors,
    load_weights, read_safetensors, read_torch_checkpoint, save_safetensors,
    save_safetensors_for_pytorch, write_safetensors,
};
use tch::{Device, Kind, Tensor, nn};

/// Largest logit difference tolerated between kd and PyTorch on the same weights.
const TOL: f64 = 1e-5;

/// A fresh folder for one test's files, under Cargo's scratch space for integration tests.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("kd-checkpoint")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the scratch folder");
    dir
}

/// The folder of `checkpoints.py write`'s files, made once per run; `None` without Python.
fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let py = common::python()?;
        let dir = scratch("fixtures");
        let out = std::process::Command::new(&py)
            .arg(script())
            .arg("write")
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", py.display()));
        assert!(
            out.status.success(),
            "checkpoints.py write failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(dir)
    })
    .as_deref()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/checkpoints.py")
}

macro_rules! fixtures_or_skip {
    () => {
        match fixtures() {
            Some(dir) => dir,
            None => {
                eprintln!(
                    "skipping: no .venv/bin/python (run scripts/setup.sh) and no KD_PYTHON to write the .pth files"
                );
                return;
            }
        }
    };
}

/// The fixture's input and PyTorch's logits.
fn expected(dir: &Path) -> std::collections::HashMap<String, Tensor> {
    Tensor::read_npz(dir.join("expected.npz"))
        .expect("reading expected.npz")
        .into_iter()
        .collect()
}

fn eval_logits(model: &dyn kd_core::models::Model, xs: &Tensor) -> Tensor {
    tch::no_grad(|| model.forward_t(xs, false))
}

fn bn_count(vs: &nn::VarStore) -> usize {
    vs.variables()
        .keys()
        .filter(|k| k.ends_with(".running_mean"))
        .count()
}

#[test]
fn torch_save_checkpoints_import_into_resnet8_with_pytorch_logits() {
    let dir = fixtures_or_skip!();
    let fx = expected(dir);
    // (file, wrapper key, `module.` stripped, ignored top-level entries)
    let cases: [(&str, Option<&str>, bool, &[&str]); 8] = [
        ("plain.pth", None, false, &[]),
        (
            "wrapped.pth",
            Some("model"),
            false,
            &["epoch", "best_acc", "optimizer"],
        ),
        ("dataparallel.pth", None, true, &[]),
        ("net.pth", Some("net"), true, &["acc", "epoch"]),
        ("state_dict.pth", Some("state_dict"), false, &["arch"]),
        (
            "model_state_dict.pth",
            Some("model_state_dict"),
            false,
            &["optimizer_state_dict"],
        ),
        ("proto4.pth", None, false, &[]),
        ("params.pth", None, false, &[]),
    ];
    for (file, wrapper, stripped, ignored) in cases {
        let path = dir.join(file);
        let state = read_torch_checkpoint(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.wrapper.as_deref(), wrapper, "{file}");
        assert_eq!(state.stripped_prefix, stripped, "{file}");
        assert_eq!(state.ignored, ignored, "{file}");
        assert_eq!(state.origin, path.display().to_string());

        let (vs, net) = common::build("resnet8", 10, 32);
        let before = common::max_abs_diff(&eval_logits(&*net, &fx["__input"]), &fx["__logits"]);
        let report =
            load_into(&vs, &state, LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.loaded, vs.variables().len(), "{file}");
        assert_eq!(
            report.skipped_num_batches_tracked.len(),
            bn_count(&vs),
            "{file}: every BatchNorm's counter is skipped"
        );
        assert!(report.converted.is_empty() && report.missing.is_empty());
        assert_eq!(report.wrapper.as_deref(), wrapper);
        let d = common::max_abs_diff(&eval_logits(&*net, &fx["__input"]), &fx["__logits"]);
        assert!(d <= TOL, "{file}: logits differ from PyTorch's by {d:e}");
        assert!(
            before > 1e-2,
            "{file}: the fresh model already matched ({before:e})"
        );
        eprintln!("{file}: {report}; largest logit difference {d:e}");
    }

    // load_weights picks the reader from the extension.
    let (vs, net) = common::build("resnet8", 10, 32);
    load_weights(&vs, dir.join("wrapped.pth"), LoadOptions::default()).unwrap();
    let d = common::max_abs_diff(&eval_logits(&*net, &fx["__input"]), &fx["__logits"]);
    assert!(d <= TOL);
}

#[test]
fn dtypes_views_and_shared_storages_read_back_exactly() {
    let dir = fixtures_or_skip!();
    let fx = expected(dir);
    let state = read_torch_checkpoint(dir.join("misc.pth")).unwrap();
    let kinds = [
        ("f64", Kind::Double),
        ("f16", Kind::Half),
        ("bf16", Kind::BFloat16),
        ("i64", Kind::Int64),
        ("i32", Kind::Int),
        ("i16", Kind::Int16),
        ("i8", Kind::Int8),
        ("u8", Kind::Uint8),
        ("bool", Kind::Bool),
        ("transposed", Kind::Float),
        ("view_a", Kind::Float),
        ("view_b", Kind::Float),
        ("scalar", Kind::Float),
        ("empty", Kind::Float),
    ];
    assert_eq!(state.len(), kinds.len());
    assert_eq!(state.wrapper, None);
    for (key, kind) in kinds {
        let ours = state
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", state.keys().collect::<Vec<_>>()));
        let theirs = &fx[&format!("__expect_{key}")];
        assert_eq!(ours.kind(), kind, "{key}");
        assert_eq!(ours.size(), theirs.size(), "{key}");
        assert!(ours.is_contiguous(), "{key} comes back contiguous");
        assert_eq!(ours.device(), Device::Cpu);
        if ours.numel() > 0 {
            let d = common::max_abs_diff(ours, theirs);
            assert_eq!(d, 0.0, "{key}: values differ by {d:e}");
        }
    }
    assert_eq!(state.get("transposed").unwrap().size(), [5, 3]);
    assert_eq!(state.get("view_b").unwrap().size(), [3, 2]);
    // The i64 value past 32 bits survives.
    assert_eq!(state.get("i64").unwrap().int64_value(&[2]), 1 << 40);
}

/// `{'model': torch.nn.Linear(2, 1).state_dict(), 'epoch': 1}` as PyTorch 2.11 pickles it:
/// weight in storage `0` (2 floats), bias in storage `1` (1 float).
const LINEAR_PKL: &[u8] = b"\x80\x02}q\x00(X\x05\x00\x00\x00modelq\x01ccollections\x0aOrderedDict\x0aq\x02)Rq\x03(X\x06\x00\x00\x00weightq\x04ctorch._utils\x0a_rebuild_tensor_v2\x0aq\x05((X\x07\x00\x00\x00storageq\x06ctorch\x0aFloatStorage\x0aq\x07X\x01\x00\x00\x000q\x08X\x03\x00\x00\x00cpuq\x09K\x02tq\x0aQK\x00K\x01K\x02\x86q\x0bK\x02K\x01\x86q\x0c\x89h\x02)Rq\x0dtq\x0eRq\x0fX\x04\x00\x00\x00biasq\x10h\x05((h\x06h\x07X\x01\x00\x00\x001q\x11h\x09K\x01tq\x12QK\x00K\x01\x85q\x13K\x01\x85q\x14\x89h\x02)Rq\x15tq\x16Rq\x17u}q\x18X\x09\x00\x00\x00_metadataq\x19h\x02)Rq\x1aX\x00\x00\x00\x00q\x1b}q\x1cX\x07\x00\x00\x00versionq\x1dK\x01sssbX\x05\x00\x00\x00epochq\x1eK\x01u.";

/// Writes a zip archive of `entries`, uncompressed, as torch.save does.
fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The archive torch.save writes for [`LINEAR_PKL`], with weight [1, 2] = [0.5, -1.5] and bias
/// [0.25]; `edit` may change the entries first.
fn linear_pth(path: &Path, edit: impl FnOnce(&mut Vec<(&'static str, Vec<u8>)>)) -> PathBuf {
    let mut entries = vec![
        ("linear/data.pkl", LINEAR_PKL.to_vec()),
        ("linear/byteorder", b"little".to_vec()),
        ("linear/data/0", f32_bytes(&[0.5, -1.5])),
        ("linear/data/1", f32_bytes(&[0.25])),
        ("linear/version", b"3\n".to_vec()),
    ];
    edit(&mut entries);
    let borrowed: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    write_zip(path, &borrowed);
    path.to_owned()
}

fn linear_model(inputs: i64) -> nn::VarStore {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = nn::linear(vs.root(), inputs, 1, Default::default());
    vs
}

#[test]
fn a_linear_checkpoint_built_here_loads_without_python() {
    let dir = scratch("linear");
    let path = linear_pth(&dir.join("linear.pth"), |_| {});
    let state = read_torch_checkpoint(&path).unwrap();
    assert_eq!(state.keys().collect::<Vec<_>>(), ["weight", "bias"]);
    assert_eq!(state.wrapper.as_deref(), Some("model"));
    assert_eq!(state.ignored, ["epoch"]);
    let vs = linear_model(2);
    let report = load_into(&vs, &state, LoadOptions::default()).unwrap();
    assert_eq!(report.loaded, 2);
    let vars = vs.variables();
    assert_eq!(
        Vec::<f32>::try_from(vars["weight"].flatten(0, -1)).unwrap(),
        [0.5, -1.5]
    );
    assert_eq!(Vec::<f32>::try_from(&vars["bias"]).unwrap(), [0.25]);

    // A float64 model takes float32 weights, converted and reported.
    let mut vs64 = linear_model(2);
    vs64.double();
    let report = load_weights(&vs64, &path, LoadOptions::default()).unwrap();
    assert_eq!(report.converted.len(), 2);
    assert_eq!(report.converted[0].1, Kind::Float);
    assert_eq!(report.converted[0].2, Kind::Double);
}

fn problems(e: CheckpointError) -> (String, Vec<Problem>) {
    let msg = e.to_string();
    match e {
        CheckpointError::Mismatch { problems, .. } => (msg, problems),
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn mismatches_name_the_file_the_key_and_both_shapes() {
    let dir = scratch("mismatch");
    let path = linear_pth(&dir.join("linear.pth"), |_| {});
    let file = path.display().to_string();

    // Shape: a 3-input model.
    let vs = linear_model(3);
    let before = Vec::<f32>::try_from(&vs.variables()["bias"]).unwrap();
    let (msg, found) = problems(load_weights(&vs, &path, LoadOptions::default()).unwrap_err());
    assert_eq!(
        found,
        [Problem::Shape {
            key: "weight".into(),
            model: vec![1, 3],
            checkpoint: vec![1, 2]
        }]
    );
    assert!(msg.starts_with(&file), "{msg}");
    assert!(
        msg.contains("shape mismatch for `weight`: model [1, 3], checkpoint [1, 2]"),
        "{msg}"
    );
    // Nothing was copied, not even the bias that fits.
    assert_eq!(
        Vec::<f32>::try_from(&vs.variables()["bias"]).unwrap(),
        before
    );

    // Missing and unexpected keys and a dtype of another family, all reported at once.
    let mut state = read_torch_checkpoint(&path).unwrap();
    state.tensors.retain(|(k, _)| k != "bias");
    state.tensors.push((
        "extra.weight".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    state.tensors[0].1 = Tensor::zeros([1, 2], (Kind::Int64, Device::Cpu));
    let vs = linear_model(2);
    let (msg, found) = problems(load_into(&vs, &state, LoadOptions::default()).unwrap_err());
    assert_eq!(
        found,
        [
            Problem::Missing { key: "bias".into() },
            Problem::Unexpected {
                key: "extra.weight".into()
            },
            Problem::Dtype {
                key: "weight".into(),
                model: Kind::Float,
                checkpoint: Kind::Int64
            },
        ]
    );
    assert!(msg.starts_with(&format!("{file}: 3 problems")), "{msg}");
    assert!(msg.contains("missing key `bias`") && msg.contains("unexpected key `extra.weight`"));

    // Not strict: missing and unexpected keys are reported, the rest loads.
    state.tensors[0].1 = Tensor::ones([1, 2], (Kind::Float, Device::Cpu));
    let report = load_into(&vs, &state, LoadOptions { strict: false }).unwrap();
    assert_eq!(report.loaded, 1);
    assert_eq!(report.missing, ["bias"]);
    assert_eq!(report.unexpected, ["extra.weight"]);
}

#[test]
fn resnet8_mismatches_are_listed_together() {
    let dir = fixtures_or_skip!();
    let path = dir.join("wrapped.pth");
    let mut state = read_torch_checkpoint(&path).unwrap();
    state.tensors.retain(|(k, _)| k != "fc.bias");
    state.tensors.push((
        "head.weight".into(),
        Tensor::zeros([3], (Kind::Float, Device::Cpu)),
    ));
    let (vs, _net) = common::build("resnet8", 100, 32);
    let (msg, found) = problems(load_into(&vs, &state, LoadOptions::default()).unwrap_err());
    assert_eq!(
        found,
        [
            Problem::Missing {
                key: "fc.bias".into()
            },
            Problem::Unexpected {
                key: "head.weight".into()
            },
            Problem::Shape {
                key: "fc.weight".into(),
                model: vec![100, 64],
                checkpoint: vec![10, 64]
            },
        ]
    );
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains("shape mismatch for `fc.weight`: model [100, 64], checkpoint [10, 64]"));
}

/// The error for reading `path`, checked to name the file and to contain `what`.
fn read_error(path: &Path, what: &str) -> CheckpointError {
    let e = read_torch_checkpoint(path).expect_err("the file was accepted");
    let msg = e.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains(what), "expected {what:?} in: {msg}");
    e
}

#[test]
fn broken_and_foreign_files_give_errors_naming_the_file() {
    let dir = scratch("broken");
    let good = std::fs::read(linear_pth(&dir.join("good.pth"), |_| {})).unwrap();

    let path = dir.join("missing.pth");
    assert!(matches!(
        read_error(&path, "No such file"),
        CheckpointError::Io { .. }
    ));

    let path = dir.join("text.pth");
    std::fs::write(&path, "not a checkpoint\n").unwrap();
    let e = read_error(&path, "not a zip archive");
    assert!(matches!(e, CheckpointError::NotCheckpoint { .. }));

    // Cut anywhere, the archive loses its central directory or an entry's bytes.
    for cut in [good.len() / 2, good.len() - 30, 100] {
        let path = dir.join(format!("cut{cut}.pth"));
        std::fs::write(&path, &good[..cut]).unwrap();
        read_error(&path, "not a PyTorch checkpoint");
    }

    let path = dir.join("nopkl.pth");
    write_zip(
        &path,
        &[("archive/version", b"3\n"), ("archive/data/0", &[0; 8])],
    );
    read_error(&path, "the zip archive has no data.pkl");

    let path = linear_pth(&dir.join("short.pth"), |e| e[2].1.truncate(4));
    let e = read_error(
        &path,
        "`weight`: storage linear/data/0 holds 4 bytes, its 2 Float items need 8",
    );
    assert!(matches!(e, CheckpointError::Format { .. }));

    let path = linear_pth(&dir.join("long.pth"), |e| e[3].1.extend([0; 4]));
    read_error(&path, "linear/data/1 holds more than 4 bytes");

    let path = linear_pth(&dir.join("nostorage.pth"), |e| {
        e.remove(3);
    });
    read_error(&path, "`bias`: the archive has no linear/data/1");

    let path = linear_pth(&dir.join("cutpkl.pth"), |e| e[0].1.truncate(200));
    let e = read_error(&path, "truncated");
    assert!(matches!(e, CheckpointError::Pickle { .. }));

    let path = linear_pth(&dir.join("big.pth"), |e| e[1].1 = b"big".to_vec());
    read_error(&path, "only little-endian");

    // A view reaching past its storage: the bias claims 2 items of a 1-item storage.
    let path = linear_pth(&dir.join("past.pth"), |e| {
        let pkl = &mut e[0].1;
        let at = pkl
            .windows(6)
            .position(|w| w == b"QK\x00K\x01\x85")
            .unwrap();
        pkl[at + 4] = 2;
    });
    read_error(
        &path,
        "`bias`: size [2], stride [1] and offset 0 reach past the 1 items",
    );

    let path = linear_pth(&dir.join("epoch.pth"), |e| {
        e[0].1 = b"\x80\x02}q\x00X\x05\x00\x00\x00epochq\x01K\x01s.".to_vec()
    });
    read_error(&path, "no state dict found");
    read_error(&path, "(top-level entries: epoch: int)");

    let path = linear_pth(&dir.join("jit.pth"), |e| {
        e.push(("linear/constants.pkl", vec![]))
    });
    read_error(&path, "TorchScript");
}

#[test]
fn legacy_torch_save_files_import_with_pytorch_logits() {
    let dir = fixtures_or_skip!();
    let fx = expected(dir);
    let path = dir.join("legacy.pth");
    let state = read_torch_checkpoint(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.wrapper.as_deref(), Some("model"));
    assert_eq!(state.ignored, ["epoch", "optimizer"]);
    let zip = read_torch_checkpoint(dir.join("wrapped.pth")).unwrap();
    assert_eq!(
        state.keys().collect::<Vec<_>>(),
        zip.keys().collect::<Vec<_>>()
    );
    for key in zip.keys() {
        assert!(
            state.get(key).unwrap().equal(zip.get(key).unwrap()),
            "{key} differs from the zip file's"
        );
    }
    let (vs, net) = common::build("resnet8", 10, 32);
    load_weights(&vs, &path, LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let d = common::max_abs_diff(&eval_logits(&*net, &fx["__input"]), &fx["__logits"]);
    assert!(
        d <= TOL,
        "legacy.pth: logits differ from PyTorch's by {d:e}"
    );

    // Every dtype, views and shared storages, as from the zip file.
    let legacy = read_torch_checkpoint(dir.join("legacy_misc.pth")).unwrap();
    let zip = read_torch_checkpoint(dir.join("misc.pth")).unwrap();
    assert_eq!(legacy.len(), zip.len());
    for key in zip.keys() {
        let (a, b) = (legacy.get(key).unwrap(), zip.get(key).unwrap());
        assert_eq!(a.kind(), b.kind(), "{key}");
        assert!(a.equal(b), "{key} differs from the zip file's");
    }

    // Cut in its pickles or in its storages, a legacy file is a clear error.
    let good = std::fs::read(&path).unwrap();
    let scratch = scratch("truncated-legacy");
    for (cut, what) in [(200, "without a STOP"), (good.len() - 10, "truncated?")] {
        let cut_path = scratch.join(format!("cut{cut}.pth"));
        std::fs::write(&cut_path, &good[..cut]).unwrap();
        read_error(&cut_path, what);
    }
}

#[test]
fn whole_model_files_say_what_to_do() {
    let dir = fixtures_or_skip!();
    read_error(
        &dir.join("whole_model.pth"),
        "pickled resnet.CifarResNet object",
    );
    read_error(&dir.join("whole_model.pth"), "save model.state_dict()");

    let good = std::fs::read(dir.join("plain.pth")).unwrap();
    let scratch = scratch("truncated-resnet8");
    let path = scratch.join("plain.pth");
    std::fs::write(&path, &good[..good.len() * 2 / 3]).unwrap();
    read_error(&path, "truncated");
}

#[test]
fn safetensors_round_trip_gives_identical_logits() {
    let dir = scratch("safetensors");
    let path = dir.join("resnet8.safetensors");
    let xs = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (vs, net) = common::build("resnet8", 10, 32);
    save_safetensors(&vs, &path).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["resnet8.safetensors"], "no temporary file is left");

    let (fresh_vs, fresh) = common::build("resnet8", 10, 32);
    let ours = eval_logits(&*net, &xs);
    assert!(common::max_abs_diff(&eval_logits(&*fresh, &xs), &ours) > 1e-3);
    let report = load_safetensors(&fresh_vs, &path, LoadOptions::default()).unwrap();
    assert_eq!(report.loaded, vs.variables().len());
    assert_eq!(common::max_abs_diff(&eval_logits(&*fresh, &xs), &ours), 0.0);

    let (other_vs, other) = common::build("resnet8", 10, 32);
    load_weights(&other_vs, &path, LoadOptions::default()).unwrap();
    assert_eq!(common::max_abs_diff(&eval_logits(&*other, &xs), &ours), 0.0);
    // An extension kd does not know: the first bytes tell.
    let odd = dir.join("resnet8.weights");
    std::fs::copy(&path, &odd).unwrap();
    let (odd_vs, _) = common::build("resnet8", 10, 32);
    load_weights(&odd_vs, &odd, LoadOptions::default()).unwrap();
}

#[test]
fn safetensors_errors_name_the_file_and_the_key() {
    let dir = scratch("safetensors-errors");
    let path = dir.join("resnet8.safetensors");
    let (vs, _) = common::build("resnet8", 10, 32);
    save_safetensors(&vs, &path).unwrap();
    let file = path.display().to_string();

    let (vs100, _) = common::build("resnet8", 100, 32);
    let (msg, found) =
        problems(load_safetensors(&vs100, &path, LoadOptions::default()).unwrap_err());
    assert_eq!(
        found,
        [
            Problem::Shape {
                key: "fc.bias".into(),
                model: vec![100],
                checkpoint: vec![10]
            },
            Problem::Shape {
                key: "fc.weight".into(),
                model: vec![100, 64],
                checkpoint: vec![10, 64]
            },
        ]
    );
    assert!(msg.starts_with(&file), "{msg}");
    assert!(
        msg.contains("model [100, 64], checkpoint [10, 64]"),
        "{msg}"
    );

    // Missing and unexpected keys.
    let mut state = read_safetensors(&path).unwrap();
    state.tensors.retain(|(k, _)| k != "conv1.weight");
    state.tensors.push((
        "fc2.bias".into(),
        Tensor::zeros([10], (Kind::Float, Device::Cpu)),
    ));
    let edited = dir.join("edited.safetensors");
    write_safetensors(&state.tensors, &edited).unwrap();
    let (msg, found) =
        problems(load_safetensors(&vs, &edited, LoadOptions::default()).unwrap_err());
    assert_eq!(
        found,
        [
            Problem::Missing {
                key: "conv1.weight".into()
            },
            Problem::Unexpected {
                key: "fc2.bias".into()
            },
        ]
    );
    assert!(msg.starts_with(&edited.display().to_string()), "{msg}");

    // A truncated file, a missing one, one of no known format.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for bad in [cut, dir.join("absent.safetensors")] {
        let e = load_safetensors(&vs, &bad, LoadOptions::default()).unwrap_err();
        assert!(matches!(e, CheckpointError::Safetensors { .. }), "{e:?}");
        assert!(e.to_string().starts_with(&bad.display().to_string()), "{e}");
    }
    let junk = dir.join("weights.dat");
    std::fs::write(&junk, "junk junk junk junk").unwrap();
    let e = load_weights(&vs, &junk, LoadOptions::default()).unwrap_err();
    assert!(matches!(e, CheckpointError::UnknownFormat { .. }));
    assert!(
        e.to_string().starts_with(&junk.display().to_string()),
        "{e}"
    );
}

#[test]
fn export_for_pytorch_adds_num_batches_tracked_and_loads_strictly_in_pytorch() {
    let dir = scratch("export");
    let path = dir.join("resnet8.safetensors");
    let (vs, net) = common::build("resnet8", 10, 32);
    save_safetensors_for_pytorch(&vs, &path).unwrap();
    let state: StateDict = read_safetensors(&path).unwrap();
    let counters: Vec<&str> = state
        .keys()
        .filter(|k| k.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(counters.len(), bn_count(&vs));
    assert!(counters.contains(&"layer1.0.bn1.num_batches_tracked"));
    let c = state.get("bn1.num_batches_tracked").unwrap();
    assert_eq!(
        (c.kind(), c.size(), c.int64_value(&[])),
        (Kind::Int64, vec![], 0)
    );
    assert_eq!(state.len(), vs.variables().len() + counters.len());
    // kd reads its own export back, skipping the counters.
    let report = checkpoint::load_weights(&vs, &path, LoadOptions::default()).unwrap();
    assert_eq!(report.skipped_num_batches_tracked.len(), counters.len());

    // PyTorch's strict load_state_dict takes it and computes the same logits.
    let Some(fx_dir) = fixtures() else {
        eprintln!("skipping the PyTorch side: no .venv/bin/python and no KD_PYTHON");
        return;
    };
    let py = common::python().unwrap();
    let out = std::process::Command::new(&py)
        .arg(script())
        .arg("check-safetensors")
        .arg(fx_dir)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyTorch could not load kd's export:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = Tensor::read_npz(fx_dir.join("check.npz")).unwrap();
    let xs = &expected(fx_dir)["__input"];
    let d = common::max_abs_diff(&eval_logits(&*net, xs), &theirs[0].1);
    assert!(d <= TOL, "PyTorch's logits on kd's export differ by {d:e}");
}
