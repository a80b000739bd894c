//! CIFAR-10/100 readers: the binary version on the real records of `cifar-exact-prefix.tar.gz`,
//! the python version on the committed fixtures (made from those records by
//! `tests/fixtures/make_fixtures.py`), folder detection, and every bad input handled.

mod common;

use kd_data::cifar::{
    self, CIFAR10_CLASSES, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, Cifar100Labels,
    CifarDir, CifarFormat, CifarKind,
};
use kd_data::{DataError, Dataset, Split};
use md5::{Digest, Md5};
use std::path::{Path, PathBuf};

const FINE: Cifar100Labels = Cifar100Labels::Fine;
const COARSE: Cifar100Labels = Cifar100Labels::Coarse;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

fn json_u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The items of a `.npy` file of `uint8` (the archive's label files).
fn read_npy_u8(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(
        header.contains("'descr': '|u1'") && header.contains("'fortran_order': False"),
        "{header}"
    );
    bytes[start + header_len..].to_vec()
}

/// The official binary records a dataset was read from: each label byte(s), then the pixels.
fn binary_records(label_sets: &[&Dataset]) -> Vec<u8> {
    let first = label_sets[0];
    let mut out = Vec::new();
    for i in 0..first.len() {
        out.extend(label_sets.iter().map(|d| d.label(i) as u8));
        out.extend_from_slice(first.image(i));
    }
    out
}

// ----- the python version: committed fixtures -----

#[test]
fn python_fixtures_decode_to_their_manifest() {
    for (file, entry) in manifest() {
        let path = fixtures().join(&file);
        let records = entry["records"].as_u64().unwrap() as usize;
        let (kind, label_sets) = if file.starts_with("cifar-100") {
            (
                CifarKind::Cifar100,
                vec![(FINE, "fine_labels"), (COARSE, "coarse_labels")],
            )
        } else {
            (CifarKind::Cifar10, vec![(FINE, "labels")])
        };
        for (labels, key) in label_sets {
            let d = cifar::load_python_file(&path, kind, labels).unwrap();
            assert_eq!(d.len(), records, "{file}");
            assert_eq!(d.shape(), cifar::IMAGE_SHAPE);
            assert_eq!(
                d.labels(),
                json_u32s(&entry[key]).as_slice(),
                "{file} {key}"
            );
            assert_eq!(
                md5_hex(d.images()),
                entry["pixels_md5"].as_str().unwrap(),
                "{file}"
            );
        }
    }
}

#[test]
fn python_folders_load_by_split_with_their_meta_names() {
    let manifest = manifest();
    let train = cifar::load(&fixtures(), CifarKind::Cifar10, Split::Train, FINE).unwrap();
    assert_eq!(train.name(), "cifar10/train");
    let expected: Vec<u32> = (1..=5)
        .flat_map(|i| {
            json_u32s(&manifest[&format!("cifar-10-batches-py/data_batch_{i}")]["labels"])
        })
        .collect();
    assert_eq!(train.labels(), expected.as_slice());
    assert_eq!(train.classes(), CIFAR10_CLASSES);
    let test = cifar::load(&fixtures(), CifarKind::Cifar10, Split::Test, FINE).unwrap();
    assert_eq!(
        test.labels(),
        json_u32s(&manifest["cifar-10-batches-py/test_batch"]["labels"]).as_slice()
    );

    let fine = cifar::load(&fixtures(), CifarKind::Cifar100, Split::Train, FINE).unwrap();
    assert_eq!(fine.name(), "cifar100/train");
    assert_eq!(fine.num_classes(), 100);
    assert_eq!(
        fine.labels(),
        json_u32s(&manifest["cifar-100-python/train"]["fine_labels"]).as_slice()
    );
    let coarse = cifar::load(&fixtures(), CifarKind::Cifar100, Split::Test, COARSE).unwrap();
    assert_eq!(coarse.name(), "cifar100-coarse/test");
    assert_eq!(coarse.classes(), CIFAR100_COARSE_CLASSES);
    assert_eq!(
        coarse.labels(),
        json_u32s(&manifest["cifar-100-python/test"]["coarse_labels"]).as_slice()
    );
}

#[test]
fn official_meta_pickles_name_the_official_classes() {
    // These two files are the official ones (Python 2 cPickle output), copied from the archive.
    let c10 = fixtures().join("cifar-10-batches-py/batches.meta");
    assert_eq!(
        cifar::read_class_names(&c10, CifarKind::Cifar10, FINE).unwrap(),
        CIFAR10_CLASSES
    );
    let c100 = fixtures().join("cifar-100-python/meta");
    assert_eq!(
        cifar::read_class_names(&c100, CifarKind::Cifar100, FINE).unwrap(),
        CIFAR100_FINE_CLASSES
    );
    assert_eq!(
        cifar::read_class_names(&c100, CifarKind::Cifar100, COARSE).unwrap(),
        CIFAR100_COARSE_CLASSES
    );
    assert_eq!(CIFAR10_CLASSES[0], "airplane");
    assert_eq!(CIFAR100_FINE_CLASSES[0], "apple");
}

#[test]
fn repickled_files_of_other_protocols_read_the_same() {
    let manifest = manifest();
    let reference = cifar::load_python_file(
        &fixtures().join("cifar-10-batches-py/test_batch"),
        CifarKind::Cifar10,
        FINE,
    )
    .unwrap()
    .gather(&[0, 1]);
    for name in [
        "proto2_bytes_keys",
        "proto4_str_keys",
        "proto5",
        "proto4_fortran",
    ] {
        let d = cifar::load_python_file(
            &fixtures().join("repickled").join(name),
            CifarKind::Cifar10,
            FINE,
        )
        .unwrap();
        assert_eq!(d.images(), reference.images(), "{name}");
        assert_eq!(d.labels(), reference.labels(), "{name}");
        assert_eq!(
            md5_hex(d.images()),
            manifest[&format!("repickled/{name}")]["pixels_md5"]
                .as_str()
                .unwrap()
        );
    }
}

#[test]
fn find_sees_a_release_folder_and_its_parent() {
    let all = cifar::find_all(&fixtures());
    assert_eq!(
        all,
        vec![
            CifarDir::new(
                CifarKind::Cifar10,
                CifarFormat::Python,
                fixtures().join("cifar-10-batches-py")
            ),
            CifarDir::new(
                CifarKind::Cifar100,
                CifarFormat::Python,
                fixtures().join("cifar-100-python")
            ),
        ]
    );
    let inner = fixtures().join("cifar-100-python");
    assert_eq!(
        cifar::find(&inner),
        Some(CifarDir::new(
            CifarKind::Cifar100,
            CifarFormat::Python,
            inner.clone()
        ))
    );
    let d = cifar::load(&inner, CifarKind::Cifar100, Split::Test, FINE).unwrap();
    assert_eq!(d.len(), 4);
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(cifar::find(empty.path()), None);
}

// ----- the binary version: real records -----

fn prefix_archive() -> Option<PathBuf> {
    common::unpacked("cifar-exact-prefix.tar.gz")
}

#[test]
fn cifar10_binary_prefixes_round_trip_to_the_official_bytes() {
    let Some(root) = prefix_archive() else { return };
    let dir = root.join("cifar10_exact_prefix");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let expected_counts = [
        ("data_batch_1", 1102),
        ("data_batch_2", 1017),
        ("data_batch_3", 1017),
        ("data_batch_4", 1285),
        ("data_batch_5", 1017),
        ("test_batch", 1017),
    ];
    for (batch, count) in expected_counts {
        let info = &summary[batch];
        let d = cifar::load_binary_file(
            &dir.join(format!("{batch}_prefix.bin")),
            CifarKind::Cifar10,
            FINE,
        )
        .unwrap();
        assert_eq!(d.name(), format!("cifar10/{batch}_prefix"));
        assert_eq!(d.len(), count, "{batch}");
        assert_eq!(d.len() as u64, info["exact_images"].as_u64().unwrap());
        assert_eq!(
            &d.labels()[..10],
            json_u32s(&info["first10"]).as_slice(),
            "{batch}"
        );
        let all_labels = read_npy_u8(&dir.join(format!("{batch}_labels_all10000.npy")));
        assert_eq!(all_labels.len(), 10_000);
        let labels: Vec<u32> = all_labels[..count].iter().map(|&l| l.into()).collect();
        assert_eq!(d.labels(), labels.as_slice(), "{batch}");
        // Labels and pixels put back together are the official file, byte for byte.
        assert_eq!(
            md5_hex(&binary_records(&[&d])),
            info["bin_md5"].as_str().unwrap(),
            "{batch}"
        );
        // No batches.meta.txt beside the prefixes: the official names.
        assert_eq!(d.classes(), CIFAR10_CLASSES);
    }
}

#[test]
fn cifar100_binary_prefixes_round_trip_to_the_official_bytes() {
    let Some(root) = prefix_archive() else { return };
    let dir = root.join("cifar100_exact_prefix");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for (split, count) in [("train", 1117), ("test", 916)] {
        let path = dir.join(format!("{split}_prefix.bin"));
        let fine = cifar::load_binary_file(&path, CifarKind::Cifar100, FINE).unwrap();
        let coarse = cifar::load_binary_file(&path, CifarKind::Cifar100, COARSE).unwrap();
        assert_eq!(fine.len(), count);
        assert_eq!(
            fine.len() as u64,
            summary[split]["exact_images"].as_u64().unwrap()
        );
        assert_eq!(fine.images(), coarse.images());
        assert_eq!((fine.num_classes(), coarse.num_classes()), (100, 20));
        for (d, which) in [(&fine, "fine"), (&coarse, "coarse")] {
            let all = read_npy_u8(&dir.join(format!("{split}_{which}_labels_all.npy")));
            let labels: Vec<u32> = all[..count].iter().map(|&l| l.into()).collect();
            assert_eq!(d.labels(), labels.as_slice(), "{split} {which}");
        }
        let md5 = md5_hex(&binary_records(&[&coarse, &fine]));
        assert_eq!(md5, summary[split]["bin_md5"].as_str().unwrap(), "{split}");
    }
}

#[test]
fn python_fixtures_hold_the_same_records_as_the_binary_files() {
    let Some(root) = prefix_archive() else { return };
    for (file, entry) in manifest() {
        let source = root.join(entry["source"].as_str().unwrap());
        let kind = if file.starts_with("cifar-100") {
            CifarKind::Cifar100
        } else {
            CifarKind::Cifar10
        };
        for labels in [FINE, COARSE] {
            let py = cifar::load_python_file(&fixtures().join(&file), kind, labels).unwrap();
            let bin = cifar::load_binary_file(&source, kind, labels).unwrap();
            let prefix = bin.gather(&(0..py.len()).collect::<Vec<_>>());
            assert_eq!(py.images(), prefix.images(), "{file}");
            assert_eq!(py.labels(), prefix.labels(), "{file}");
        }
    }
}

#[test]
fn archive_meta_pickles_match_the_builtin_names() {
    let Some(root) = prefix_archive() else { return };
    let c10 = root.join("cifar10_exact_prefix/batches.meta");
    assert_eq!(
        cifar::read_class_names(&c10, CifarKind::Cifar10, FINE).unwrap(),
        CIFAR10_CLASSES
    );
    let c100 = root.join("cifar100_exact_prefix/meta");
    assert_eq!(
        cifar::read_class_names(&c100, CifarKind::Cifar100, FINE).unwrap(),
        CIFAR100_FINE_CLASSES
    );
    assert_eq!(
        cifar::read_class_names(&c100, CifarKind::Cifar100, COARSE).unwrap(),
        CIFAR100_COARSE_CLASSES
    );
}

#[cfg(unix)]
#[test]
fn load_finds_the_binary_layouts_and_concatenates_batches() {
    use std::os::unix::fs::symlink;
    let Some(root) = prefix_archive() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let c10 = tmp.path().join("cifar-10-batches-bin");
    let c100 = tmp.path().join("cifar-100-binary");
    std::fs::create_dir_all(&c10).unwrap();
    std::fs::create_dir_all(&c100).unwrap();
    let src10 = root.join("cifar10_exact_prefix");
    for b in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ] {
        symlink(
            src10.join(format!("{b}_prefix.bin")),
            c10.join(format!("{b}.bin")),
        )
        .unwrap();
    }
    for s in ["train", "test"] {
        symlink(
            root.join(format!("cifar100_exact_prefix/{s}_prefix.bin")),
            c100.join(format!("{s}.bin")),
        )
        .unwrap();
    }
    let names: Vec<String> = (0..10).map(|i| format!("class {i}")).collect();
    std::fs::write(c10.join("batches.meta.txt"), names.join("\n") + "\n\n").unwrap();

    let train = cifar::load(tmp.path(), CifarKind::Cifar10, Split::Train, FINE).unwrap();
    assert_eq!(train.len(), 1102 + 1017 + 1017 + 1285 + 1017);
    let mut expected = Vec::new();
    for (i, n) in [1102, 1017, 1017, 1285, 1017].into_iter().enumerate() {
        let all = read_npy_u8(&src10.join(format!("data_batch_{}_labels_all10000.npy", i + 1)));
        expected.extend(all[..n].iter().map(|&l| u32::from(l)));
    }
    assert_eq!(train.labels(), expected.as_slice());
    assert_eq!(
        train.classes(),
        names.as_slice(),
        "batches.meta.txt is used"
    );
    let batch5 =
        cifar::load_binary_file(&c10.join("data_batch_5.bin"), CifarKind::Cifar10, FINE).unwrap();
    assert_eq!(
        &train.images()[train.images().len() - batch5.images().len()..],
        batch5.images()
    );
    assert_eq!(
        cifar::load(&c10, CifarKind::Cifar10, Split::Test, FINE)
            .unwrap()
            .len(),
        1017
    );

    let test = cifar::load(tmp.path(), CifarKind::Cifar100, Split::Test, COARSE).unwrap();
    assert_eq!(
        (test.name(), test.len(), test.num_classes()),
        ("cifar100-coarse/test", 916, 20)
    );
    let train = cifar::load(tmp.path(), CifarKind::Cifar100, Split::Train, FINE).unwrap();
    assert_eq!((train.len(), train.classes()[0].as_str()), (1117, "apple"));
}

// ----- bad input -----

/// A fake binary file of `records` records with the given label bytes and constant pixels.
fn write_binary(dir: &Path, name: &str, label_bytes: &[&[u8]]) -> PathBuf {
    let mut bytes = Vec::new();
    for labels in label_bytes {
        bytes.extend_from_slice(labels);
        bytes.extend(std::iter::repeat_n(7u8, 3072));
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn label_out_of_range(e: DataError) -> (PathBuf, usize, u64, usize) {
    match e {
        DataError::LabelOutOfRange {
            path,
            index,
            label,
            num_classes,
        } => (path, index, label, num_classes),
        other => panic!("expected LabelOutOfRange, got {other}"),
    }
}

#[test]
fn binary_size_must_be_whole_records() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train.bin");
    std::fs::write(&path, vec![0u8; 2 * 3074 + 1]).unwrap();
    let e = cifar::load_binary_file(&path, CifarKind::Cifar100, FINE).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: 6149 bytes is not a whole number of 3074-byte records",
            path.display()
        )
    );
    // The same bytes are 2 CIFAR-10 records of 3073 bytes, plus 3 bytes.
    let e = cifar::load_binary_file(&path, CifarKind::Cifar10, FINE).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("6149 bytes is not a whole number of 3073-byte records"),
        "{e}"
    );
}

#[test]
fn binary_empty_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("test_batch.bin");
    std::fs::write(&path, b"").unwrap();
    let e = cifar::load_binary_file(&path, CifarKind::Cifar10, FINE).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: empty file: expected 3073-byte cifar10 records",
            path.display()
        )
    );
}

#[test]
fn binary_labels_out_of_range_name_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let c10 = write_binary(tmp.path(), "c10.bin", &[&[9], &[10]]);
    let e = cifar::load_binary_file(&c10, CifarKind::Cifar10, FINE).unwrap_err();
    assert_eq!(label_out_of_range(e), (c10.clone(), 1, 10, 10));

    let fine = write_binary(tmp.path(), "fine.bin", &[&[19, 99], &[0, 0], &[3, 100]]);
    let e = cifar::load_binary_file(&fine, CifarKind::Cifar100, FINE).unwrap_err();
    assert_eq!(label_out_of_range(e), (fine.clone(), 2, 100, 100));
    // A coarse label past 19 is corruption even when the fine labels are read.
    let coarse = write_binary(tmp.path(), "coarse.bin", &[&[20, 5]]);
    for labels in [FINE, COARSE] {
        let e = cifar::load_binary_file(&coarse, CifarKind::Cifar100, labels).unwrap_err();
        assert_eq!(label_out_of_range(e), (coarse.clone(), 0, 20, 20));
    }
    let good = write_binary(tmp.path(), "good.bin", &[&[19, 99], &[0, 7]]);
    let d = cifar::load_binary_file(&good, CifarKind::Cifar100, COARSE).unwrap();
    assert_eq!(d.labels(), &[19, 0]);
    assert!(d.images().iter().all(|&p| p == 7));
}

#[test]
fn missing_data_files_are_not_found_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ] {
        write_binary(&dir, name, &[&[1]]);
    }
    let e = cifar::load(tmp.path(), CifarKind::Cifar10, Split::Train, FINE).unwrap_err();
    match e {
        DataError::NotFound { path, .. } => assert_eq!(path, dir.join("data_batch_3.bin")),
        other => panic!("expected NotFound, got {other}"),
    }
    let e = cifar::load(tmp.path(), CifarKind::Cifar10, Split::Test, FINE).unwrap_err();
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if path.ends_with("test_batch.bin")),
        "{e}"
    );
    let missing = tmp.path().join("nope");
    let e = cifar::load_python_file(&missing, CifarKind::Cifar10, FINE).unwrap_err();
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if *path == missing),
        "{e}"
    );
}

#[test]
fn load_without_any_cifar_folder_says_what_it_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let e = cifar::load(tmp.path(), CifarKind::Cifar100, Split::Train, FINE).unwrap_err();
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if path == tmp.path()),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("cifar-100-binary or cifar-100-python"),
        "{e}"
    );
    // A CIFAR-10 folder does not satisfy a request for CIFAR-100.
    std::fs::create_dir(tmp.path().join("cifar-10-batches-bin")).unwrap();
    write_binary(
        &tmp.path().join("cifar-10-batches-bin"),
        "test_batch.bin",
        &[&[1]],
    );
    assert!(cifar::load(tmp.path(), CifarKind::Cifar100, Split::Test, FINE).is_err());
    assert_eq!(
        cifar::load(tmp.path(), CifarKind::Cifar10, Split::Test, FINE)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn meta_file_with_the_wrong_number_of_names_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-100-binary");
    std::fs::create_dir(&dir).unwrap();
    write_binary(&dir, "test.bin", &[&[1, 2]]);
    std::fs::write(dir.join("coarse_label_names.txt"), "a\nb\nc\n").unwrap();
    let e = cifar::load(tmp.path(), CifarKind::Cifar100, Split::Test, COARSE).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: 3 class names, expected 20",
            dir.join("coarse_label_names.txt").display()
        )
    );
    // The fine names have no meta file: the official ones.
    let d = cifar::load(tmp.path(), CifarKind::Cifar100, Split::Test, FINE).unwrap();
    assert_eq!(d.classes()[2], "baby");
}

/// Python 2 style protocol-2 pickles, written as cPickle wrote CIFAR's python version.
mod py2 {
    pub enum Item<'a> {
        Ints(&'a [i64]),
        Array {
            shape: &'a [usize],
            code: &'a str,
            data: &'a [u8],
        },
        Text(&'a str),
    }

    fn string(out: &mut Vec<u8>, s: &[u8]) {
        if s.len() < 256 {
            out.push(b'U');
            out.push(s.len() as u8);
        } else {
            out.push(b'T');
            out.extend((s.len() as i32).to_le_bytes());
        }
        out.extend_from_slice(s);
    }

    fn int(out: &mut Vec<u8>, v: i64) {
        out.push(b'J');
        out.extend((v as i32).to_le_bytes());
    }

    fn item(out: &mut Vec<u8>, item: &Item) {
        match item {
            Item::Ints(values) => {
                out.extend(b"](");
                values.iter().for_each(|&v| int(out, v));
                out.push(b'e');
            }
            Item::Text(s) => string(out, s.as_bytes()),
            Item::Array { shape, code, data } => {
                out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R(K\x01(");
                shape.iter().for_each(|&d| int(out, d as i64));
                out.extend(b"tcnumpy\ndtype\n");
                string(out, code.as_bytes());
                out.extend(
                    b"K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89",
                );
                string(out, data);
                out.extend(b"tb");
            }
        }
    }

    /// `{key: item, ...}`, pickled.
    pub fn dict(entries: &[(&str, Item)]) -> Vec<u8> {
        let mut out = b"\x80\x02}(".to_vec();
        for (key, value) in entries {
            string(&mut out, key.as_bytes());
            item(&mut out, value);
        }
        out.extend(b"u.");
        out
    }
}

/// Reads `bytes` as a python-version CIFAR-10 file: the error, and the file's path.
fn python_error(bytes: &[u8]) -> (PathBuf, DataError) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data_batch_1");
    std::fs::write(&path, bytes).unwrap();
    let e = cifar::load_python_file(&path, CifarKind::Cifar10, FINE).unwrap_err();
    (path, e)
}

/// The error message for `bytes`, less the file name it must start with.
fn python_message(bytes: &[u8]) -> String {
    let (path, e) = python_error(bytes);
    let text = e.to_string();
    let prefix = format!("{}: ", path.display());
    assert!(
        text.starts_with(&prefix),
        "the error names the file: {text}"
    );
    text[prefix.len()..].to_owned()
}

#[test]
fn the_test_pickle_writer_matches_the_reader() {
    let pixels = vec![3u8; 2 * 3072];
    let bytes = py2::dict(&[
        (
            "data",
            py2::Item::Array {
                shape: &[2, 3072],
                code: "u1",
                data: &pixels,
            },
        ),
        ("labels", py2::Item::Ints(&[4, 9])),
        ("batch_label", py2::Item::Text("training batch 1 of 5")),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data_batch_1");
    std::fs::write(&path, bytes).unwrap();
    let d = cifar::load_python_file(&path, CifarKind::Cifar10, FINE).unwrap();
    assert_eq!(d.labels(), &[4, 9]);
    assert_eq!(d.images(), pixels.as_slice());
}

#[test]
fn truncated_and_garbage_pickles_are_format_errors() {
    let real = std::fs::read(fixtures().join("cifar-10-batches-py/data_batch_1")).unwrap();
    for end in [1, 2, 40, 200, real.len() / 2, real.len() - 1] {
        let (_, e) = python_error(&real[..end]);
        assert!(matches!(e, DataError::Format { .. }), "{end}: {e}");
    }
    let m = python_message(&real[..real.len() / 2]);
    assert!(m.contains("BINSTRING") && m.contains("truncated"), "{m}");
    let m = python_message(b"");
    assert_eq!(m, "empty file: expected a pickled dict");
    let mut rng = kd_augment::rng::Rng::seed_from_u64(5);
    for _ in 0..200 {
        let garbage: Vec<u8> = (0..64).map(|_| rng.next_u64() as u8).collect();
        let (_, e) = python_error(&garbage);
        assert!(matches!(e, DataError::Format { .. }), "{e}");
    }
    let m = python_message(b"\x80\x02]q\x00.");
    assert_eq!(m, "the pickle holds a list, expected a dict");
}

#[test]
fn pickled_data_of_the_wrong_shape_or_type_is_an_error() {
    let labels = py2::Item::Ints(&[1, 2]);
    let pixels = vec![0u8; 2 * 3072];
    let hwc = py2::dict(&[
        (
            "data",
            py2::Item::Array {
                shape: &[2, 32, 32, 3],
                code: "u1",
                data: &pixels,
            },
        ),
        ("labels", py2::Item::Ints(&[1, 2])),
    ]);
    assert_eq!(
        python_message(&hwc),
        "'data' has shape (2, 32, 32, 3), expected (N, 3072)"
    );
    let small = py2::dict(&[
        (
            "data",
            py2::Item::Array {
                shape: &[2, 3],
                code: "u1",
                data: &[0; 6],
            },
        ),
        ("labels", labels),
    ]);
    assert_eq!(
        python_message(&small),
        "'data' has shape (2, 3), expected (N, 3072)"
    );
    let wide = py2::dict(&[
        (
            "data",
            py2::Item::Array {
                shape: &[1, 3072],
                code: "u2",
                data: &pixels,
            },
        ),
        ("labels", py2::Item::Ints(&[1])),
    ]);
    assert_eq!(
        python_message(&wide),
        "'data' has dtype |u2, expected uint8 (|u1)"
    );
    let short = py2::dict(&[
        (
            "data",
            py2::Item::Array {
                shape: &[2, 3072],
                code: "u1",
                data: &pixels[..100],
            },
        ),
        ("labels", py2::Item::Ints(&[1, 2])),
    ]);
    let m = python_message(&short);
    assert!(
        m.contains("shape (2, 3072) and dtype |u1 needs 6144 bytes of data, found 100"),
        "{m}"
    );
    let text = py2::dict(&[
        ("data", py2::Item::Text("pixels")),
        ("labels", py2::Item::Ints(&[1])),
    ]);
    assert_eq!(
        python_message(&text),
        "'data' is a bytes, expected a numpy array"
    );
    let no_data = py2::dict(&[
        ("labels", py2::Item::Ints(&[1])),
        ("batch_label", py2::Item::Text("x")),
    ]);
    assert_eq!(
        python_message(&no_data),
        "no 'data' in the pickled dict (its keys: labels, batch_label)"
    );
}

#[test]
fn pickled_labels_must_match_the_images_and_the_classes() {
    let pixels = vec![0u8; 2 * 3072];
    let data = || py2::Item::Array {
        shape: &[2, 3072],
        code: "u1",
        data: &pixels,
    };
    let m = python_message(&py2::dict(&[
        ("data", data()),
        ("labels", py2::Item::Ints(&[1, 2, 3])),
    ]));
    assert_eq!(m, "'data' has 2 images but 'labels' has 3 labels");
    let (path, e) = python_error(&py2::dict(&[
        ("data", data()),
        ("labels", py2::Item::Ints(&[9, 10])),
    ]));
    assert_eq!(label_out_of_range(e), (path, 1, 10, 10));
    let m = python_message(&py2::dict(&[
        ("data", data()),
        ("labels", py2::Item::Ints(&[-1, 0])),
    ]));
    assert_eq!(m, "record 0 has label -1, outside 0..10");
    let m = python_message(&py2::dict(&[
        ("data", data()),
        ("labels", py2::Item::Text("ab")),
    ]));
    assert_eq!(m, "'labels' is a bytes, expected a list of integers");
    // A CIFAR-100 file read as CIFAR-10 lacks 'labels'.
    let m = python_message(&py2::dict(&[
        ("data", data()),
        ("fine_labels", py2::Item::Ints(&[1, 2])),
    ]));
    assert_eq!(m, "no 'labels' in the pickled dict (its keys: fine_labels)");
}
