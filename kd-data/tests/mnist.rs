//! MNIST/Fashion-MNIST idx readers: the real Fashion-MNIST files when installed, small crafted
//! files (raw and gzip) for layouts and every bad input handled.

mod common;

use kd_data::mnist::{self, FASHION_MNIST_CLASSES, MnistVariant};
use kd_data::{DataError, ImageShape, Normalization, Split};
use md5::{Digest, Md5};
use std::io::Write;
use std::path::{Path, PathBuf};

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

#[test]
fn fashion_mnist_real_files() {
    let Some(root) = common::fashion_mnist() else {
        return;
    };
    let train = mnist::load(&root, Split::Train, MnistVariant::FashionMnist).unwrap();
    assert_eq!(train.name(), "fashion-mnist/train");
    assert_eq!(
        (train.len(), train.shape()),
        (60_000, ImageShape::new(1, 28, 28))
    );
    assert_eq!(train.class_counts(), vec![6000; 10]);
    assert_eq!(&train.labels()[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert_eq!(train.classes(), FASHION_MNIST_CLASSES);
    assert_eq!(
        (train.classes()[0].as_str(), train.classes()[9].as_str()),
        ("T-shirt/top", "Ankle boot")
    );
    // The md5 of the decompressed pixels, computed with Python's gzip and hashlib.
    assert_eq!(md5_hex(train.images()), "f209073e486d5113ebe2cc431d4df862");
    // The pixel statistics are those of the Normalization preset.
    let preset = Normalization::for_dataset("fashion-mnist").unwrap();
    let (mean, std) = train.channel_stats();
    assert!(
        (mean[0] - f64::from(preset.mean[0])).abs() < 1e-4,
        "{mean:?}"
    );
    assert!((std[0] - f64::from(preset.std[0])).abs() < 1e-4, "{std:?}");

    let test = mnist::load(&root, Split::Test, MnistVariant::FashionMnist).unwrap();
    assert_eq!((test.name(), test.len()), ("fashion-mnist/test", 10_000));
    assert_eq!(test.class_counts(), vec![1000; 10]);
    assert_eq!(&test.labels()[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    assert_eq!(md5_hex(test.images()), "b7656a891b218fc13e45205c48a92cae");
}

// ----- crafted files -----

const ROWS: usize = 5;
const COLS: usize = 4;

/// An idx3 file of `n` images of 5×4 whose pixel j of image i is `i * 20 + j`.
fn idx_images(n: usize) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 3];
    for d in [n, ROWS, COLS] {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend((0..n * ROWS * COLS).map(|p| p as u8));
    out
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 1];
    out.extend((labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The error of reading crafted images and labels, as text without the file name it names.
fn error_of(images: &[u8], labels: &[u8]) -> (DataError, String) {
    let tmp = tempfile::tempdir().unwrap();
    let i = write(tmp.path(), "images", images);
    let l = write(tmp.path(), "labels", labels);
    let e = mnist::load_files(&i, &l, MnistVariant::Mnist).unwrap_err();
    let text = e.to_string();
    let named = [&i, &l]
        .into_iter()
        .find_map(|p| text.strip_prefix(&format!("{}: ", p.display())));
    let rest = named
        .unwrap_or_else(|| panic!("the error names a file: {text}"))
        .to_owned();
    (e, rest)
}

#[test]
fn raw_and_gzip_files_read_the_same_whatever_their_names() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = mnist::load_files(
        &write(tmp.path(), "a.gz", &idx_images(3)),
        &write(tmp.path(), "b", &idx_labels(&[7, 0, 9])),
        MnistVariant::Mnist,
    )
    .unwrap();
    let gz = mnist::load_files(
        &write(tmp.path(), "c", &gzip(&idx_images(3))),
        &write(tmp.path(), "d.idx", &gzip(&idx_labels(&[7, 0, 9]))),
        MnistVariant::Mnist,
    )
    .unwrap();
    assert_eq!(raw.shape(), ImageShape::new(1, ROWS, COLS));
    assert_eq!(raw.labels(), &[7, 0, 9]);
    assert_eq!(raw.image(2), (40..60).collect::<Vec<u8>>().as_slice());
    assert_eq!(raw.classes()[3], "3");
    assert_eq!((gz.images(), gz.labels()), (raw.images(), raw.labels()));
}

#[test]
fn load_finds_the_files_in_the_usual_layouts() {
    let cases = [
        ("", MnistVariant::Mnist),
        ("raw", MnistVariant::FashionMnist),
        ("MNIST/raw", MnistVariant::Mnist),
        ("FashionMNIST/raw", MnistVariant::FashionMnist),
    ];
    for (sub, variant) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(sub);
        write(&dir, "t10k-images-idx3-ubyte.gz", &gzip(&idx_images(2)));
        write(&dir, "t10k-labels-idx1-ubyte", &idx_labels(&[1, 2]));
        assert_eq!(mnist::find(tmp.path(), variant), Some(dir.clone()), "{sub}");
        let d = mnist::load(tmp.path(), Split::Test, variant).unwrap();
        assert_eq!(d.name(), format!("{}/test", variant.name()));
        assert_eq!(d.labels(), &[1, 2]);
        // The train files are not there.
        let e = mnist::load(tmp.path(), Split::Train, variant).unwrap_err();
        assert!(
            matches!(&e, DataError::NotFound { path, .. } if *path == dir.join("train-images-idx3-ubyte")),
            "{e}"
        );
    }
    // torchvision's folder of the other dataset is not this one's.
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("FashionMNIST/raw"),
        "train-images-idx3-ubyte",
        &idx_images(1),
    );
    assert_eq!(mnist::find(tmp.path(), MnistVariant::Mnist), None);
    let e = mnist::load(tmp.path(), Split::Train, MnistVariant::Mnist).unwrap_err();
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if path == tmp.path()),
        "{e}"
    );
    assert!(e.to_string().contains("MNIST/raw"), "{e}");
}

#[test]
fn missing_label_file_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "train-images-idx3-ubyte", &idx_images(1));
    let e = mnist::load(tmp.path(), Split::Train, MnistVariant::Mnist).unwrap_err();
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if *path == tmp.path().join("train-labels-idx1-ubyte")),
        "{e}"
    );
    assert!(
        e.to_string().contains("nor train-labels-idx1-ubyte.gz"),
        "{e}"
    );
}

#[test]
fn bad_magic_is_an_error() {
    let (_, m) = error_of(&idx_labels(&[1]), &idx_labels(&[1]));
    assert_eq!(
        m,
        "magic number 0x00000801, expected 0x00000803 (u8 images)"
    );
    let (_, m) = error_of(&idx_images(1), &idx_images(1));
    assert_eq!(
        m,
        "magic number 0x00000803, expected 0x00000801 (u8 labels)"
    );
}

#[test]
fn truncated_and_oversized_files_are_errors() {
    let labels = idx_labels(&[1, 2, 3]);
    let images = idx_images(3);
    let (_, m) = error_of(&images[..images.len() - 1], &labels);
    assert_eq!(
        m,
        "header says 3 images of 5×4 (60 bytes after the 16-byte header) but only 59 follow (truncated?) in the file"
    );
    let mut long = images.clone();
    long.push(0);
    let (_, m) = error_of(&long, &labels);
    assert_eq!(
        m,
        "header says 3 images of 5×4 (60 bytes after the 16-byte header) but more follow in the file"
    );
    let (_, m) = error_of(&gzip(&long), &labels);
    assert!(
        m.ends_with("but more follow in the decompressed data"),
        "{m}"
    );
    let (_, m) = error_of(&images, &labels[..9]);
    assert_eq!(
        m,
        "header says 3 labels (3 bytes after the 8-byte header) but only 1 follow (truncated?) in the file"
    );
    let (_, m) = error_of(&images[..10], &labels);
    assert_eq!(
        m,
        "the file has 10 bytes, too few for the 16-byte idx header"
    );
    // A gzip stream cut short.
    let gz = gzip(&images);
    let (e, m) = error_of(&gz[..gz.len() / 2], &labels);
    assert!(matches!(e, DataError::Format { .. }), "{e}");
    assert!(m.starts_with("cannot decompress: "), "{m}");
}

#[test]
fn empty_images_are_an_error() {
    let mut images = idx_images(0);
    images[8..12].copy_from_slice(&0u32.to_be_bytes());
    let (_, m) = error_of(&images, &idx_labels(&[]));
    assert_eq!(m, "header says images of 0×4 pixels");
}

#[test]
fn label_count_must_match_image_count() {
    let (e, m) = error_of(&idx_images(3), &idx_labels(&[1, 2]));
    assert!(
        matches!(e, DataError::Format { ref path, .. } if path.ends_with("labels")),
        "{e}"
    );
    assert!(
        m.starts_with("2 labels but ") && m.ends_with("images has 3 images"),
        "{m}"
    );
}

#[test]
fn labels_above_nine_are_out_of_range() {
    let (e, _) = error_of(&idx_images(3), &idx_labels(&[1, 9, 10]));
    match e {
        DataError::LabelOutOfRange {
            path,
            index,
            label,
            num_classes,
        } => {
            assert!(path.ends_with("labels"));
            assert_eq!((index, label, num_classes), (2, 10, 10));
        }
        other => panic!("expected LabelOutOfRange, got {other}"),
    }
}
