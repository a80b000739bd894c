//! Format detection and `kd data info`'s description, on the committed fixtures and real data.

mod common;

use kd_data::detect::{self, Found};
use kd_data::{ImageShape, Split};
use std::path::Path;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

#[test]
fn finds_cifar_python_from_the_parent_folder_and_describes_both_splits() {
    // The fixtures folder holds both cifar-10-batches-py/ and cifar-100-python/; the first
    // official name wins, and naming the folder itself picks the other.
    let found = detect::find(&fixtures().join("cifar-100-python")).unwrap();
    assert_eq!(found.format_name(), "cifar100 (python)");
    let info = detect::describe(&fixtures().join("cifar-100-python")).unwrap();
    assert_eq!(info.classes.len(), 100);
    assert_eq!(info.image_shape, ImageShape::new(3, 32, 32));
    assert_eq!(info.splits.len(), 2);
    assert_eq!(
        info.splits[0].samples,
        info.splits[0].class_counts.iter().sum::<usize>()
    );
    let text = info.to_string();
    assert!(
        text.contains("cifar100 (python)") && text.contains("apple"),
        "{text}"
    );

    let ds = detect::open(&fixtures().join("cifar-10-batches-py"), Split::Test).unwrap();
    assert_eq!(ds.name(), "cifar10/test");
    assert_eq!(ds.num_classes(), 10);
}

#[test]
fn fashion_mnist_is_named_from_its_path() {
    let Some(dir) = common::fashion_mnist() else {
        return;
    };
    let found = detect::find(&dir).unwrap();
    assert!(matches!(found, Found::Mnist { .. }));
    assert_eq!(found.format_name(), "fashion-mnist (idx)");
    let info = detect::describe(&dir).unwrap();
    assert_eq!(info.classes[0], "T-shirt/top");
    assert_eq!(
        info.splits.iter().map(|s| s.samples).collect::<Vec<_>>(),
        vec![60000, 10000]
    );
    assert!(
        info.splits
            .iter()
            .all(|s| s.class_counts.iter().all(|&c| c == s.samples / 10))
    );
}

#[test]
fn an_image_folder_with_train_and_test() {
    let Some(root) = common::unpacked("cifar10-jpg.tar.gz") else {
        return;
    };
    let root = root.join("cifar10_jpg_yoongikim");
    let found = detect::find(&root).unwrap();
    assert_eq!(found, Found::ImageFolder(root.clone()));
    let test = found.open(Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.classes()[0], "airplane");
}
