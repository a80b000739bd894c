//! `kd analyze` as a user runs it: two trained models on a small synthetic training set, and
//! every file it writes checked against the per-sample values it reports.

mod common;

use common::{Csv, fails, kd, ok, train};
use std::path::Path;

/// The float64 values of a version-1 `.npy` file.
fn read_npy_f64(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]);
    assert!(header.contains("'descr': '<f8'"), "{header}");
    bytes[10 + header_len..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn numbers(csv: &Csv, name: &str) -> Vec<f64> {
    csv.column(name)
        .iter()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn analyze_reports_confidence_cases_density_and_ece_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let teacher = train(d, "teacher", "resnet8", 2);
    let student = train(d, "student", "resnet8", 1);
    let out = d.join("analysis");
    // The teacher by its run (architecture from its config.toml), the student as ARCH=PATH.
    ok(kd()
        .args(["--quiet", "analyze", "--models"])
        .arg(format!(
            "{},resnet8={}",
            teacher.display(),
            student.display()
        ))
        .arg("--data")
        .arg(d.join("teacher/config.toml"))
        .args(["--bins", "25", "--out"])
        .arg(&out));

    let per = Csv::read(&out.join("per_sample.csv"));
    assert_eq!(
        per.rows.len(),
        300,
        "the synthetic training set: 10 classes × 30"
    );
    let mut correct = Vec::new();
    for m in ["teacher", "student"] {
        let c: Vec<bool> = per
            .column(&format!("{m}_correct"))
            .iter()
            .map(|v| *v == "1")
            .collect();
        let h = numbers(&per, &format!("{m}_entropy"));
        let tld = numbers(&per, &format!("{m}_tld"));
        for i in 0..300 {
            assert!(
                h[i] >= 0.0 && h[i] <= 10f64.ln() + 1e-9,
                "{m} entropy {}",
                h[i]
            );
            // TLD is the margin of the true class: positive means right, negative wrong.
            assert!(tld[i] <= 0.0 || c[i], "{m} sample {i}");
            assert!(tld[i] >= 0.0 || !c[i], "{m} sample {i}");
        }
        assert_eq!(read_npy_f64(&out.join(format!("{m}.entropy.npy"))), h);
        assert_eq!(read_npy_f64(&out.join(format!("{m}.tld.npy"))), tld);
        let models = Csv::read(&out.join("models.csv"));
        let right = c.iter().filter(|&&c| c).count() as f64;
        let top1 = models.num("model", m, "top1").unwrap();
        assert!((top1 - 100.0 * right / 300.0).abs() < 1e-9, "{m}: {top1}");
        let ece = models.num("model", m, "ece").unwrap();
        assert!((0.0..=100.0).contains(&ece), "{m}: ECE {ece}");
        let mean_h = models.num("model", m, "mean_entropy").unwrap();
        assert!((mean_h - h.iter().sum::<f64>() / 300.0).abs() < 1e-9);
        correct.push(c);
    }

    // The four cases: counts and the teacher's mean entropy per case, from the per-sample values.
    let t_entropy = numbers(&per, "teacher_entropy");
    let cases = Csv::read(&out.join("cases.csv"));
    assert_eq!(cases.rows.len(), 4);
    let mut total = 0;
    for (name, t, s) in [
        ("T/T", true, true),
        ("T/F", true, false),
        ("F/T", false, true),
        ("F/F", false, false),
    ] {
        let members: Vec<usize> = (0..300)
            .filter(|&i| correct[0][i] == t && correct[1][i] == s)
            .collect();
        assert_eq!(
            cases.num("case", name, "count").unwrap() as usize,
            members.len(),
            "{name}"
        );
        total += members.len();
        let mean = cases.num("case", name, "teacher_mean_entropy");
        match mean {
            None => assert!(members.is_empty()),
            Some(v) => {
                let want =
                    members.iter().map(|&i| t_entropy[i]).sum::<f64>() / members.len() as f64;
                assert!((v - want).abs() < 1e-9, "{name}: {v} vs {want}");
            }
        }
    }
    assert_eq!(total, 300);

    // Each model's TLD density integrates to 1 over a range that holds every TLD.
    let density = Csv::read(&out.join("tld_density.csv"));
    let all_tld: Vec<f64> = ["teacher_tld", "student_tld"]
        .iter()
        .flat_map(|c| numbers(&per, c))
        .collect();
    for m in ["teacher", "student"] {
        let rows: Vec<&Vec<String>> = density.rows.iter().filter(|r| r[0] == m).collect();
        assert_eq!(rows.len(), 25);
        let area: f64 = rows
            .iter()
            .map(|r| {
                let (lo, hi, v): (f64, f64, f64) = (
                    r[1].parse().unwrap(),
                    r[2].parse().unwrap(),
                    r[3].parse().unwrap(),
                );
                (hi - lo) * v
            })
            .sum();
        assert!(
            (area - 1.0).abs() < 1e-9,
            "{m}: the density integrates to {area}"
        );
        let lo: f64 = rows[0][1].parse().unwrap();
        let hi: f64 = rows[24][2].parse().unwrap();
        assert!(all_tld.iter().all(|&v| v >= lo && v <= hi));
    }
    for f in ["tld_density.png", "tld_density.svg"] {
        assert!(out.join(f).metadata().unwrap().len() > 0, "{f}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("| T/F") && report.contains("ECE"),
        "{report}"
    );

    // Mistakes are named.
    let loose = d.join("loose.safetensors");
    std::fs::copy(&teacher, &loose).unwrap();
    let e = fails(
        kd().args(["analyze", "--data", "synthetic", "--models"])
            .arg(&loose),
    );
    assert!(e.contains("ARCH=PATH"), "{e}");
    let e = fails(kd().args([
        "analyze",
        "--data",
        "synthetic",
        "--models",
        "resnet8=nowhere.safetensors",
    ]));
    assert!(
        e.contains("nowhere.safetensors") && e.contains("does not exist"),
        "{e}"
    );
    let e = fails(
        kd().args([
            "analyze",
            "--data",
            "synthetic",
            "--labels",
            "a,b",
            "--models",
        ])
        .arg(format!("resnet8={}", loose.display())),
    );
    assert!(e.contains("--labels"), "{e}");
    let e = fails(
        kd().args([
            "analyze",
            "--data",
            "synthetic",
            "--tld-range=5,1",
            "--models",
        ])
        .arg(format!("resnet8={}", loose.display())),
    );
    assert!(e.contains("--tld-range"), "{e}");
}
