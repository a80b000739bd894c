//! The `kd` binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kd"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("kd runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kd-data/tests/fixtures")
}

#[test]
fn kd_links_no_libtorch_but_the_engine_does() {
    // `kd` must start where libtorch cannot be loaded; the engine must keep libtorch (and with
    // it libtorch_cuda) linked despite --as-needed.
    let needed = |bin: &str| {
        let bytes = std::fs::read(bin).unwrap();
        let has = |name: &str| bytes.windows(name.len()).any(|w| w == name.as_bytes());
        (has("libtorch_cpu.so\0"), has("libtorch.so\0"))
    };
    assert_eq!(needed(env!("CARGO_BIN_EXE_kd")), (false, false));
    assert_eq!(needed(env!("CARGO_BIN_EXE_kd-engine")), (true, true));
}

#[test]
fn doctor_reports_libtorch() {
    let out = run(kd().arg("doctor"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("libtorch    2.11.0"), "{stdout}");
    assert!(stdout.contains("CUDA"), "{stdout}");
    let out = run(kd().args(["doctor", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["built_against"], "2.11.0");
    assert_eq!(v["kd_version"], env!("CARGO_PKG_VERSION"));
    assert!(v["intra_op_threads"].as_i64().unwrap() >= 1);
}

#[test]
fn doctor_explains_a_libtorch_that_does_not_load() {
    // A copy of the engine whose rpath points nowhere: the dynamic loader cannot find libtorch.
    let lib = env!("KD_BUILD_LIBTORCH_LIB");
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_kd-engine")).unwrap();
    let bogus = "/".repeat(lib.len() - 8) + "nowhere/";
    let mut patched = 0;
    let mut i = 0;
    while let Some(pos) = bytes[i..]
        .windows(lib.len())
        .position(|w| w == lib.as_bytes())
    {
        bytes[i + pos..i + pos + lib.len()].copy_from_slice(bogus.as_bytes());
        i += pos + lib.len();
        patched += 1;
    }
    assert!(patched > 0, "the engine has no rpath to {lib}");
    let dir = tempfile::tempdir().unwrap();
    let engine = dir.path().join("kd-engine");
    std::fs::write(&engine, &bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&engine, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = run(kd()
        .arg("doctor")
        .env("KD_ENGINE", &engine)
        .env_remove("LD_LIBRARY_PATH"));
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("libtorch could not be loaded"), "{stderr}");
    assert!(stderr.contains("scripts/setup.sh"), "{stderr}");
}

#[test]
fn doctor_without_an_engine_says_how_to_build_it() {
    let out = run(kd()
        .arg("doctor")
        .env("KD_ENGINE", "/nonexistent/kd-engine"));
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("not found") && stderr.contains("cargo build --release -p kd-cli"),
        "{stderr}"
    );
}

#[test]
fn data_info_describes_a_dataset_and_names_a_bad_path() {
    let out = run(kd()
        .args(["data", "info"])
        .arg(fixtures().join("cifar-10-batches-py")));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("cifar10 (python)") && stdout.contains("airplane"),
        "{stdout}"
    );

    let out = run(kd().args(["data", "info", "/no/such/dir"]));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("/no/such/dir") && stderr.contains("not found"),
        "{stderr}"
    );
}

#[test]
fn data_export_writes_pngs_of_the_synthetic_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(kd()
        .args(["data", "export", "synthetic", "--per-class", "2", "--out"])
        .arg(dir.path()));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("wrote 20 images"), "{stdout}");
    let pngs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "png")
        })
        .count();
    assert_eq!(pngs, 21);
}

#[test]
fn demo_runs_and_checks_itself() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(kd().args(["demo", "--out"]).arg(dir.path()));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(stdout.contains("identical"), "{stdout}");
    assert!(dir.path().join("samples.png").is_file());
    assert!(dir.path().join("subset.json").is_file());
}

#[test]
fn unknown_subcommands_and_options_are_rejected_by_name() {
    let out = run(kd().args(["data", "info", "--colour"]));
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("--colour"), "{stderr}");
}

#[test]
fn augment_preview_writes_a_grid_for_a_pipeline_and_for_a_scheme() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--pipeline", "crop:4,flip,cutout:8"),
        ("--scheme", "crop+flip"),
    ] {
        let png = dir.path().join(format!("{}.png", &flag[2..]));
        let out = run(kd()
            .args([
                "augment",
                "preview",
                flag,
                value,
                "--images",
                "3",
                "--samples",
                "2",
                "--scale",
                "1",
                "--out",
            ])
            .arg(&png));
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("3 images"), "{stdout}");
        // 3 columns of 32 px with 2 px padding around and between, 3 rows likewise.
        let img = image_size(&png);
        assert_eq!(img, (3 * 32 + 4 * 2, 3 * 32 + 4 * 2));
    }
    let out = run(kd()
        .args(["augment", "preview", "--pipeline", "crop:4,flp", "--out"])
        .arg(dir.path().join("x.png")));
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("'flp'") && stderr.contains("did you mean 'flip'"),
        "{stderr}"
    );
}

/// Width and height from a PNG's IHDR chunk.
fn image_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG");
    let be = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    (be(16), be(20))
}

/// A subset file's class → sorted members.
fn by_class(path: &Path) -> std::collections::BTreeMap<String, Vec<u64>> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json["by_class"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(label, members)| {
            let mut v: Vec<u64> = members
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_u64().unwrap())
                .collect();
            v.sort();
            (label.clone(), v)
        })
        .collect()
}

fn subset_indices(path: &Path) -> Vec<usize> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn data_subset_keeps_delta_classes_and_zeta_samples() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subset.json");
    let out = run(kd()
        .args([
            "data",
            "subset",
            "synthetic",
            "--delta",
            "0.5",
            "--zeta",
            "0.2",
        ])
        .arg("--out")
        .arg(&file));
    assert!(out.status.success(), "{:?}", text(&out));
    // The synthetic dataset has 10 classes of 500 training images: 5 classes × 100.
    assert_eq!(subset_indices(&file).len(), 500);
    let classes = by_class(&file);
    assert_eq!(classes.len(), 5);
    assert!(classes.values().all(|v| v.len() == 100));
}

#[test]
fn data_subset_by_scores_keeps_the_lowest_scores_of_each_class() {
    let dir = tempfile::tempdir().unwrap();
    // Scores that fall as the index grows: the lowest 10% of each class are its last 50
    // samples in index order.
    let csv = dir.path().join("scores.csv");
    let rows: String = (0..5000).map(|i| format!("{i},{}\n", 5000 - i)).collect();
    std::fs::write(&csv, format!("index,entropy\n{rows}")).unwrap();
    let file = dir.path().join("subset.json");
    let out = run(kd()
        .args([
            "data",
            "subset",
            "synthetic",
            "--zeta",
            "0.1",
            "--column",
            "entropy",
        ])
        .arg("--scores")
        .arg(&csv)
        .arg("--out")
        .arg(&file));
    assert!(out.status.success(), "{:?}", text(&out));
    // The whole dataset as a subset gives each class's members.
    let all = dir.path().join("all.json");
    assert!(
        run(kd()
            .args(["data", "subset", "synthetic", "--out"])
            .arg(&all))
        .status
        .success()
    );
    let picked = by_class(&file);
    let classes = by_class(&all);
    assert_eq!(picked.len(), 10);
    for (label, members) in classes {
        assert_eq!(picked[&label], members[members.len() - 50..].to_vec());
    }
}

#[test]
fn data_subset_names_a_bad_score_line() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("scores.txt");
    std::fs::write(&scores, "0.5\n0.25\nabc\n").unwrap();
    let out = run(kd()
        .args(["data", "subset", "synthetic", "--zeta", "0.5", "--scores"])
        .arg(&scores)
        .arg("--out")
        .arg(dir.path().join("s.json")));
    assert!(!out.status.success());
    let (_, err) = text(&out);
    assert!(
        err.contains("scores.txt line 3") && err.contains("abc"),
        "{err}"
    );
}
