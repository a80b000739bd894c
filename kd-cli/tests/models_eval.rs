//! `kd models` and `kd eval`, end to end through `kd-engine`, against PyTorch.

use std::path::{Path, PathBuf};
use std::process::Command;

fn kd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kd"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> Option<PathBuf> {
    let p = workspace().join(".venv/bin/python");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found (run scripts/setup.sh)", p.display());
        None
    }
}

#[test]
fn models_lists_the_zoo_with_reference_parameter_counts() {
    let out = kd().arg("models").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, params) in [
        ("resnet8", "83,892"),
        ("resnet32x4", "7,433,860"),
        ("ShuffleV2", "1,355,528"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(line.contains(params), "{line}");
    }
    let out = kd().args(["models", "--json"]).output().unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 24, "{} models", rows.len());
    let r20 = rows.iter().find(|r| r["name"] == "resnet20").unwrap();
    assert_eq!(r20["parameters"], 278_324);
    assert_eq!(r20["macs"], 40_818_944);
}

/// A PyTorch resnet8 saved as RepDistiller saves it (`{'model': state_dict}`) evaluates in kd to
/// the same logits as in PyTorch, on CIFAR-10 records in the python format.
#[test]
fn eval_of_a_torch_checkpoint_gives_pytorchs_logits() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("resnet8.pth");
    let data = workspace().join("kd-data/tests/fixtures/cifar-10-batches-py");
    let script = r#"
import pickle, sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import resnet
torch.manual_seed(0)
m = resnet.build("resnet8", 10)
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5)
m.eval()
torch.save({"model": m.state_dict(), "epoch": 240}, sys.argv[2])
with open(sys.argv[3] + "/test_batch", "rb") as f:
    d = pickle.load(f, encoding="bytes")
x = torch.tensor(d[b"data"], dtype=torch.float32).view(-1, 3, 32, 32) / 255
mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
with torch.no_grad():
    np.save(sys.argv[4], m((x - mean) / std).numpy())
"#;
    let want = dir.path().join("want.npy");
    let made = Command::new(&py)
        .args(["-c", script])
        .arg(workspace().join("kd-core/tests/parity"))
        .arg(&ckpt)
        .arg(&data)
        .arg(&want)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let got = dir.path().join("got.npy");
    let out = eval_resnet8(&ckpt, &data, &got);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("top-1") && stdout.contains("mean cross-entropy"),
        "{stdout}"
    );
    let compare = "import sys, numpy as np; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); \
                   assert a.shape == b.shape, (a.shape, b.shape); print(abs(a - b).max())";
    let out = Command::new(&py)
        .args(["-c", compare])
        .arg(&want)
        .arg(&got)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(diff <= 1e-4, "max |logits difference| {diff}");

    // `kd convert` checks the checkpoint against the model, then the safetensors evaluate the same.
    let st = dir.path().join("resnet8.safetensors");
    let out = kd()
        .arg("convert")
        .arg(&ckpt)
        .arg(&st)
        .args(["--model", "resnet8", "--classes", "10"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("'model' entry") && stdout.contains("ignored: epoch"),
        "{stdout}"
    );
    let again = dir.path().join("again.npy");
    let out = eval_resnet8(&st, &data, &again);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&again).unwrap());

    // The wrong class count is refused before writing, naming the key and both shapes.
    let bad = dir.path().join("bad.safetensors");
    let out = kd()
        .arg("convert")
        .arg(&ckpt)
        .arg(&bad)
        .args(["--model", "resnet8", "--classes", "100"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !bad.exists());
    assert!(
        stderr.contains("fc.weight") && stderr.contains("[10, 64]") && stderr.contains("[100, 64]"),
        "{stderr}"
    );
}

/// `kd eval` of resnet8 with `weights` on `data`, logits to `logits`.
fn eval_resnet8(weights: &Path, data: &Path, logits: &Path) -> std::process::Output {
    kd().args(["eval", "--model", "resnet8", "--device", "cpu", "--weights"])
        .arg(weights)
        .arg("--data")
        .arg(data)
        .arg("--save-logits")
        .arg(logits)
        .output()
        .unwrap()
}

#[test]
fn eval_names_a_missing_weights_file_and_an_unknown_model() {
    let data = workspace().join("kd-data/tests/fixtures/cifar-10-batches-py");
    let out = kd()
        .args([
            "eval",
            "--model",
            "resnet8",
            "--weights",
            "/no/such.pth",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/no/such.pth"), "{stderr}");
    let out = kd()
        .args([
            "eval",
            "--model",
            "resnet9",
            "--weights",
            "/x.pth",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown model 'resnet9'"), "{stderr}");
}
