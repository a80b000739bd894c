//! ImageFolder and Tiny-ImageNet readers: layouts, errors and the decode cache, on trees built
//! in temporary directories, plus CIFAR-10 as JPEG files when the shared data is present.

mod common;

use image::{Rgb, RgbImage};
use kd_data::folder::{
    CacheOutcome, CachePolicy, FolderOptions, is_image_folder, is_tiny_imagenet, load_image_folder,
    load_image_folder_with_stats, load_tiny_imagenet, load_tiny_imagenet_with_stats,
    tiny_imagenet_classes,
};
use kd_data::{DataError, Split};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A `w`×`h` image whose pixel (x, y) is `(base + x, base + y, base + x + y)`, so every position
/// and channel is recognisable.
fn pattern(w: u32, h: u32, base: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([base + x as u8, base + y as u8, base + (x + y) as u8])
    })
}

fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb(rgb))
}

/// Saves `img` at `path` (format from the extension), creating the parent directories.
fn save(path: &Path, img: &RgbImage) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save_with_format(path, format_of(path)).unwrap();
}

fn format_of(path: &Path) -> image::ImageFormat {
    let ext = path
        .extension()
        .unwrap()
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    if ext == "png" {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    }
}

/// The CHW bytes of an RGB image.
fn chw(img: &RgbImage) -> Vec<u8> {
    (0..3)
        .flat_map(|c| img.pixels().map(move |p| p.0[c]))
        .collect()
}

fn no_cache() -> FolderOptions {
    FolderOptions {
        cache: CachePolicy::Off,
        ..FolderOptions::default()
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// root/{b,a}/ with PNGs (some nested, mixed-case extensions) and files that must be skipped.
fn small_tree(root: &Path) {
    save(&root.join("b/2.PNG"), &pattern(4, 3, 100));
    save(&root.join("b/1.png"), &pattern(4, 3, 90));
    save(&root.join("a/z.Png"), &pattern(4, 3, 10));
    save(&root.join("a/sub/y.png"), &pattern(4, 3, 20));
    save(&root.join("a/x.png"), &pattern(4, 3, 0));
    write(&root.join("a/notes.txt"), "not an image");
    write(&root.join("a/.hidden.png"), "skipped: hidden");
    save(&root.join(".ipynb_checkpoints/c.png"), &pattern(4, 3, 0));
}

#[test]
fn classes_sorted_files_in_torchvision_order_pixels_chw() {
    let tmp = tempfile::tempdir().unwrap();
    small_tree(tmp.path());
    let ds = load_image_folder(tmp.path(), Split::Train, &no_cache()).unwrap();
    assert_eq!(ds.classes(), &["a", "b"]);
    assert_eq!(ds.labels(), &[0, 0, 0, 1, 1]);
    assert_eq!(ds.shape(), kd_data::ImageShape::new(3, 3, 4));
    // Directory first (a/ before a/sub/), then file name: x, z, sub/y, then 1, 2.
    for (i, base) in [0, 10, 20, 90, 100].into_iter().enumerate() {
        assert_eq!(
            ds.image(i),
            chw(&pattern(4, 3, base)).as_slice(),
            "sample {i}"
        );
    }
    // The same tree is the one split, whichever is asked for.
    assert_eq!(
        load_image_folder(tmp.path(), Split::Test, &no_cache())
            .unwrap()
            .labels(),
        ds.labels()
    );
}

#[test]
fn jpeg_files_decode_close_to_their_colour() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("red/0.jpg"), &solid(8, 8, [200, 30, 40]));
    save(&tmp.path().join("blue/0.JPEG"), &solid(8, 8, [10, 40, 220]));
    let ds = load_image_folder(tmp.path(), Split::Train, &no_cache()).unwrap();
    assert_eq!(ds.classes(), &["blue", "red"]);
    let mean = |i: usize, c: usize| {
        ds.image(i)[c * 64..(c + 1) * 64]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / 64.0
    };
    for (i, rgb) in [[10.0, 40.0, 220.0], [200.0, 30.0, 40.0]]
        .iter()
        .enumerate()
    {
        for (c, want) in rgb.iter().enumerate() {
            assert!(
                (mean(i, c) - want).abs() < 4.0,
                "sample {i} channel {c}: {} vs {want}",
                mean(i, c)
            );
        }
    }
}

#[test]
fn split_subfolders_train_and_val() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("train/cat/0.png"), &pattern(2, 2, 1));
    save(&tmp.path().join("train/dog/0.png"), &pattern(2, 2, 2));
    save(&tmp.path().join("val/cat/0.png"), &pattern(2, 2, 3));
    let train = load_image_folder(tmp.path(), Split::Train, &no_cache()).unwrap();
    let test = load_image_folder(tmp.path(), Split::Test, &no_cache()).unwrap();
    assert_eq!(train.len(), 2);
    assert_eq!(test.len(), 1);
    assert_eq!(test.image(0), chw(&pattern(2, 2, 3)).as_slice());
    assert!(test.name().ends_with("/test"), "{}", test.name());
}

#[test]
fn test_split_prefers_test_over_val() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("test/cat/0.png"), &pattern(2, 2, 5));
    save(&tmp.path().join("val/cat/0.png"), &pattern(2, 2, 6));
    let test = load_image_folder(tmp.path(), Split::Test, &no_cache()).unwrap();
    assert_eq!(test.image(0), chw(&pattern(2, 2, 5)).as_slice());
}

#[test]
fn missing_test_split_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("train/cat/0.png"), &pattern(2, 2, 1));
    let e = load_image_folder(tmp.path(), Split::Test, &no_cache()).unwrap_err();
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if path.ends_with("test")),
        "{e}"
    );
    assert!(e.to_string().contains("val/"), "{e}");
}

#[test]
fn grayscale_uses_pil_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let img = RgbImage::from_fn(3, 1, |x, _| {
        Rgb([[255, 0, 0], [0, 255, 0], [0, 0, 255]][x as usize])
    });
    save(&tmp.path().join("c/0.png"), &img);
    let opts = FolderOptions {
        channels: 1,
        ..no_cache()
    };
    let ds = load_image_folder(tmp.path(), Split::Train, &opts).unwrap();
    assert_eq!(ds.shape(), kd_data::ImageShape::new(1, 1, 3));
    // PIL's convert("L"): R·299/1000 + G·587/1000 + B·114/1000.
    assert_eq!(ds.image(0), &[76, 150, 29]);
}

#[test]
fn target_size_resizes_every_image() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("c/0.png"), &solid(8, 6, [12, 34, 56]));
    save(&tmp.path().join("c/1.png"), &solid(3, 5, [200, 100, 0]));
    save(&tmp.path().join("c/2.png"), &pattern(4, 4, 0));
    let opts = FolderOptions {
        size: Some((4, 4)),
        ..no_cache()
    };
    let ds = load_image_folder(tmp.path(), Split::Train, &opts).unwrap();
    assert_eq!(ds.shape(), kd_data::ImageShape::new(3, 4, 4));
    assert_eq!(
        ds.image(0),
        chw(&solid(4, 4, [12, 34, 56])).as_slice(),
        "a flat colour stays flat"
    );
    assert_eq!(ds.image(1), chw(&solid(4, 4, [200, 100, 0])).as_slice());
    assert_eq!(
        ds.image(2),
        chw(&pattern(4, 4, 0)).as_slice(),
        "an image of the target size is not touched"
    );
}

#[test]
fn differing_sizes_without_target_name_the_file_and_both_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("c/0.png"), &pattern(4, 4, 0));
    save(&tmp.path().join("c/1.png"), &pattern(4, 4, 0));
    save(&tmp.path().join("c/2.png"), &pattern(5, 3, 0));
    save(&tmp.path().join("d/3.png"), &pattern(6, 6, 0));
    let e = load_image_folder(tmp.path(), Split::Train, &no_cache()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, DataError::Format { path, .. } if path.ends_with("c/2.png")),
        "{msg}"
    );
    assert!(
        msg.contains("3×5") && msg.contains("4×4") && msg.contains("0.png"),
        "{msg}"
    );
}

#[test]
fn undecodable_image_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("c/0.png"), &pattern(2, 2, 0));
    write(&tmp.path().join("c/1.jpg"), "this is not a JPEG");
    let e = load_image_folder(tmp.path(), Split::Train, &no_cache()).unwrap_err();
    assert!(
        matches!(&e, DataError::Decode { path, .. } if path.ends_with("c/1.jpg")),
        "{e}"
    );
}

#[test]
fn missing_root_and_file_root() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let e = load_image_folder(&missing, Split::Train, &no_cache()).unwrap_err();
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if *path == missing),
        "{e}"
    );
    let file = tmp.path().join("file");
    write(&file, "x");
    let e = load_image_folder(&file, Split::Train, &no_cache()).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
}

#[test]
fn empty_tree_says_no_classes() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("readme.txt"), "no classes here");
    let e = load_image_folder(tmp.path(), Split::Train, &no_cache()).unwrap_err();
    assert!(e.to_string().contains("no class subdirectories"), "{e}");
}

#[test]
fn class_without_images_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("cat/0.png"), &pattern(2, 2, 0));
    write(&tmp.path().join("dog/readme.txt"), "no images");
    let e = load_image_folder(tmp.path(), Split::Train, &no_cache()).unwrap_err();
    assert!(
        e.to_string().contains("class `dog` has no image files"),
        "{e}"
    );
}

#[test]
fn rejects_bad_options() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("c/0.png"), &pattern(2, 2, 0));
    let e = load_image_folder(
        tmp.path(),
        Split::Train,
        &FolderOptions {
            channels: 2,
            ..no_cache()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("channels = 2"), "{e}");
    let e = load_image_folder(
        tmp.path(),
        Split::Train,
        &FolderOptions {
            size: Some((0, 4)),
            ..no_cache()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("size = 0×4"), "{e}");
}

#[test]
fn detects_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("folder");
    save(&folder.join("train/cat/0.png"), &pattern(2, 2, 0));
    let flat = tmp.path().join("flat");
    save(&flat.join("cat/0.png"), &pattern(2, 2, 0));
    let tiny = tmp.path().join("tiny");
    tiny_tree(&tiny);
    let empty = tmp.path().join("empty");
    fs::create_dir_all(empty.join("cat")).unwrap();
    assert!(is_image_folder(&folder) && is_image_folder(&flat));
    assert!(
        !is_image_folder(&tiny)
            && !is_image_folder(&empty)
            && !is_image_folder(&tmp.path().join("none"))
    );
    assert!(is_tiny_imagenet(&tiny));
    assert!(!is_tiny_imagenet(&folder) && !is_tiny_imagenet(&flat));
}

// ------------------------------------------------------------------------------------------
// The cache

fn cached(dir: &Path) -> FolderOptions {
    FolderOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..FolderOptions::default()
    }
}

fn written_path(outcome: &CacheOutcome) -> PathBuf {
    match outcome {
        CacheOutcome::Written(p) => p.clone(),
        other => panic!("expected a written cache, got {other:?}"),
    }
}

#[test]
fn second_load_reads_the_cache_in_the_dataset_root() {
    let tmp = tempfile::tempdir().unwrap();
    small_tree(tmp.path());
    let (first, stats) =
        load_image_folder_with_stats(tmp.path(), Split::Train, &FolderOptions::default()).unwrap();
    assert_eq!(stats.decoded, 5);
    let path = written_path(&stats.cache);
    assert!(
        path.starts_with(tmp.path().join(".kd-cache")) && path.is_file(),
        "{}",
        path.display()
    );
    let (second, stats) =
        load_image_folder_with_stats(tmp.path(), Split::Train, &FolderOptions::default()).unwrap();
    assert_eq!(stats.cache, CacheOutcome::Hit(path));
    assert!(stats.from_cache());
    assert_eq!(stats.decoded, 0);
    assert_eq!(first, second);
    // The cache directory is hidden, so the tree still has its two classes.
    assert_eq!(second.classes(), &["a", "b"]);
}

#[test]
fn refresh_and_off_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let caches = tmp.path().join("caches");
    save(&tmp.path().join("data/c/0.png"), &pattern(2, 2, 0));
    let root = tmp.path().join("data");
    let off = FolderOptions {
        cache: CachePolicy::Off,
        ..cached(&caches)
    };
    let (_, stats) = load_image_folder_with_stats(&root, Split::Train, &off).unwrap();
    assert_eq!((stats.decoded, stats.cache), (1, CacheOutcome::Off));
    assert!(!caches.exists(), "Off writes nothing");
    let (_, stats) = load_image_folder_with_stats(&root, Split::Train, &cached(&caches)).unwrap();
    let path = written_path(&stats.cache);
    assert!(path.starts_with(&caches));
    let refresh = FolderOptions {
        cache: CachePolicy::Refresh,
        ..cached(&caches)
    };
    let (_, stats) = load_image_folder_with_stats(&root, Split::Train, &refresh).unwrap();
    assert_eq!(
        (stats.decoded, stats.cache),
        (1, CacheOutcome::Written(path))
    );
}

#[test]
fn options_get_their_own_cache() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("c/0.png"), &pattern(4, 4, 0));
    let rgb =
        load_image_folder_with_stats(tmp.path(), Split::Train, &FolderOptions::default()).unwrap();
    let gray_opts = FolderOptions {
        channels: 1,
        ..FolderOptions::default()
    };
    let (gray, stats) = load_image_folder_with_stats(tmp.path(), Split::Train, &gray_opts).unwrap();
    assert_ne!(written_path(&stats.cache), written_path(&rgb.1.cache));
    assert_eq!(gray.shape().channels, 1);
    let (_, stats) =
        load_image_folder_with_stats(tmp.path(), Split::Train, &FolderOptions::default()).unwrap();
    assert!(
        stats.from_cache(),
        "the RGB cache survives the gray load: {stats:?}"
    );
}

/// Loads once to write the cache, damages it with `damage`, and checks the next load rejects it
/// with a reason containing `reason`, decodes, gives the same data, and leaves a valid cache.
fn check_rebuilt(damage: impl Fn(&Path), reason: &str) {
    let tmp = tempfile::tempdir().unwrap();
    small_tree(tmp.path());
    let opts = FolderOptions::default();
    let (good, stats) = load_image_folder_with_stats(tmp.path(), Split::Train, &opts).unwrap();
    let path = written_path(&stats.cache);
    damage(&path);
    let (again, stats) = load_image_folder_with_stats(tmp.path(), Split::Train, &opts).unwrap();
    match &stats.cache {
        CacheOutcome::Rebuilt { path: p, reason: r } => {
            assert_eq!(p, &path);
            assert!(r.contains(reason), "reason `{r}` lacks `{reason}`");
        }
        other => panic!("expected a rebuilt cache, got {other:?}"),
    }
    assert_eq!(stats.decoded, 5);
    assert_eq!(again, good);
    assert!(
        load_image_folder_with_stats(tmp.path(), Split::Train, &opts)
            .unwrap()
            .1
            .from_cache()
    );
}

#[test]
fn truncated_cache_is_rebuilt() {
    check_rebuilt(
        |p| {
            let len = fs::metadata(p).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len - 7)
                .unwrap();
        },
        "bytes, expected",
    );
}

#[test]
fn cache_cut_inside_its_header_is_rebuilt() {
    check_rebuilt(
        |p| {
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(20)
                .unwrap()
        },
        "cut short",
    );
}

#[test]
fn cache_with_bad_magic_is_rebuilt() {
    check_rebuilt(
        |p| {
            let mut bytes = fs::read(p).unwrap();
            bytes[..8].copy_from_slice(b"GARBAGE!");
            fs::write(p, bytes).unwrap();
        },
        "bad magic",
    );
}

#[test]
fn cache_with_wrong_fingerprint_is_rebuilt() {
    check_rebuilt(
        |p| {
            let mut bytes = fs::read(p).unwrap();
            bytes[12] ^= 0xff;
            fs::write(p, bytes).unwrap();
        },
        "stale",
    );
}

#[test]
fn changed_image_invalidates_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    small_tree(tmp.path());
    let opts = FolderOptions::default();
    load_image_folder_with_stats(tmp.path(), Split::Train, &opts).unwrap();
    // A different size in bytes: caught even where modification times are coarse.
    save(&tmp.path().join("a/x.png"), &solid(4, 3, [1, 2, 3]));
    let (ds, stats) = load_image_folder_with_stats(tmp.path(), Split::Train, &opts).unwrap();
    assert!(
        matches!(&stats.cache, CacheOutcome::Rebuilt { reason, .. } if reason.contains("stale")),
        "{stats:?}"
    );
    assert_eq!(ds.image(0), chw(&solid(4, 3, [1, 2, 3])).as_slice());
    // An added file changes the list.
    save(&tmp.path().join("b/3.png"), &pattern(4, 3, 7));
    let (ds, stats) = load_image_folder_with_stats(tmp.path(), Split::Train, &opts).unwrap();
    assert_eq!((ds.len(), stats.decoded), (6, 6));
}

#[test]
fn unwritable_cache_is_skipped_without_error() {
    let tmp = tempfile::tempdir().unwrap();
    save(&tmp.path().join("data/c/0.png"), &pattern(2, 2, 0));
    let blocker = tmp.path().join("blocker");
    write(&blocker, "a file where the cache directory should go");
    let opts = cached(&blocker.join("cache"));
    let (ds, stats) =
        load_image_folder_with_stats(&tmp.path().join("data"), Split::Train, &opts).unwrap();
    assert_eq!(ds.len(), 1);
    assert!(
        matches!(&stats.cache, CacheOutcome::Skipped { reason, .. } if reason.contains("cannot create")),
        "{stats:?}"
    );
}

// ------------------------------------------------------------------------------------------
// Tiny-ImageNet

const WORDS: &str =
    "n00000001\tentity\nn01000000\tgoldfish, Carassius auratus\nn99999999\tsomething else\n";

/// A two-class Tiny-ImageNet: class n01000000 is red, n02000000 (absent from words.txt) blue.
/// wnids.txt is deliberately unsorted.
fn tiny_tree(root: &Path) {
    write(&root.join("wnids.txt"), "n02000000\nn01000000\n");
    write(&root.join("words.txt"), WORDS);
    let red = solid(8, 8, [220, 10, 10]);
    let blue = solid(8, 8, [10, 10, 220]);
    save(&root.join("train/n01000000/images/n01000000_0.JPEG"), &red);
    save(&root.join("train/n01000000/images/n01000000_1.JPEG"), &red);
    write(
        &root.join("train/n01000000/n01000000_boxes.txt"),
        "n01000000_0.JPEG\t0\t0\t7\t7\n",
    );
    save(&root.join("train/n02000000/images/n02000000_0.JPEG"), &blue);
    save(&root.join("val/images/val_0.JPEG"), &blue);
    save(&root.join("val/images/val_1.JPEG"), &red);
    save(&root.join("val/images/val_2.JPEG"), &red);
    save(&root.join("val/images/val_3.JPEG"), &blue);
    write(
        &root.join("val/val_annotations.txt"),
        "val_0.JPEG\tn02000000\t0\t1\t6\t7\nval_1.JPEG\tn01000000\t2\t2\t5\t5\n\
         val_2.JPEG\tn01000000\t0\t0\t7\t7\n",
    );
    save(&root.join("test/images/test_0.JPEG"), &red);
}

fn is_red(ds: &kd_data::Dataset, i: usize) -> bool {
    let img = ds.image(i);
    let plane = img.len() / 3;
    img[0] > 150 && img[2 * plane] < 80
}

#[test]
fn tiny_imagenet_train_split() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_tree(tmp.path());
    let ds = load_tiny_imagenet(tmp.path(), Split::Train, &no_cache()).unwrap();
    assert_eq!(ds.classes(), &["goldfish, Carassius auratus", "n02000000"]);
    assert_eq!(ds.labels(), &[0, 0, 1]);
    assert_eq!(ds.shape(), kd_data::ImageShape::new(3, 8, 8));
    assert_eq!(
        (0..3).map(|i| is_red(&ds, i)).collect::<Vec<_>>(),
        [true, true, false]
    );
}

#[test]
fn tiny_imagenet_val_is_the_test_split_ordered_by_class() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_tree(tmp.path());
    let ds = load_tiny_imagenet(tmp.path(), Split::Test, &no_cache()).unwrap();
    // val_3 has no annotation and is not part of the set; val_1, val_2 (n01), then val_0 (n02).
    assert_eq!(ds.labels(), &[0, 0, 1]);
    assert_eq!(
        (0..3).map(|i| is_red(&ds, i)).collect::<Vec<_>>(),
        [true, true, false]
    );
}

#[test]
fn tiny_imagenet_class_names_and_cache() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_tree(tmp.path());
    assert_eq!(
        tiny_imagenet_classes(tmp.path()).unwrap(),
        vec![
            (
                "n01000000".to_string(),
                "goldfish, Carassius auratus".to_string()
            ),
            ("n02000000".to_string(), "n02000000".to_string())
        ]
    );
    fs::remove_file(tmp.path().join("words.txt")).unwrap();
    let (ds, stats) =
        load_tiny_imagenet_with_stats(tmp.path(), Split::Test, &FolderOptions::default()).unwrap();
    assert_eq!(ds.classes(), &["n01000000", "n02000000"]);
    assert!(written_path(&stats.cache).starts_with(tmp.path().join(".kd-cache")));
    let (again, stats) =
        load_tiny_imagenet_with_stats(tmp.path(), Split::Test, &FolderOptions::default()).unwrap();
    assert!(stats.from_cache());
    assert_eq!(again, ds);
}

#[test]
fn tiny_imagenet_relabelled_val_invalidates_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_tree(tmp.path());
    let opts = FolderOptions::default();
    load_tiny_imagenet_with_stats(tmp.path(), Split::Test, &opts).unwrap();
    // Same files, different labels: val_0 becomes class n01000000.
    write(
        &tmp.path().join("val/val_annotations.txt"),
        "val_0.JPEG\tn01000000\t0\t1\t6\t7\nval_1.JPEG\tn01000000\t2\t2\t5\t5\nval_2.JPEG\tn01000000\t0\t0\t7\t7\n",
    );
    let (ds, stats) = load_tiny_imagenet_with_stats(tmp.path(), Split::Test, &opts).unwrap();
    assert!(!stats.from_cache());
    assert_eq!(ds.labels(), &[0, 0, 0]);
}

fn tiny_error(edit: impl Fn(&Path), split: Split) -> DataError {
    let tmp = tempfile::tempdir().unwrap();
    tiny_tree(tmp.path());
    edit(tmp.path());
    load_tiny_imagenet(tmp.path(), split, &no_cache()).unwrap_err()
}

fn set_annotations(text: &'static str) -> impl Fn(&Path) {
    move |root: &Path| write(&root.join("val/val_annotations.txt"), text)
}

#[test]
fn tiny_imagenet_unknown_wnid_names_file_and_line() {
    let e = tiny_error(
        set_annotations("val_0.JPEG\tn02000000\t0\t1\t6\t7\nval_1.JPEG\tn05555555\t2\t2\t5\t5\n"),
        Split::Test,
    );
    let msg = e.to_string();
    assert!(
        msg.contains("val_annotations.txt: line 2: wnid `n05555555` is not in wnids.txt"),
        "{msg}"
    );
}

#[test]
fn tiny_imagenet_short_annotation_line() {
    let e = tiny_error(
        set_annotations("val_0.JPEG\tn02000000\t0\t1\t6\t7\n\nval_1.JPEG\tn01000000\t2\n"),
        Split::Test,
    );
    let msg = e.to_string();
    assert!(
        msg.contains("val_annotations.txt: line 3: expected 6 tab-separated fields"),
        "{msg}"
    );
    assert!(msg.contains("found 3"), "{msg}");
}

#[test]
fn tiny_imagenet_non_integer_box() {
    let e = tiny_error(
        set_annotations("val_0.JPEG\tn02000000\t0\t1\tsix\t7\n"),
        Split::Test,
    );
    assert!(
        e.to_string()
            .contains("line 1: box coordinate `six` is not an integer"),
        "{e}"
    );
}

#[test]
fn tiny_imagenet_annotation_with_a_path() {
    let e = tiny_error(
        set_annotations("../wnids.txt\tn02000000\t0\t1\t6\t7\n"),
        Split::Test,
    );
    assert!(
        e.to_string()
            .contains("line 1: `../wnids.txt` is not a plain file name"),
        "{e}"
    );
}

#[test]
fn tiny_imagenet_empty_annotations() {
    let e = tiny_error(set_annotations("\n"), Split::Test);
    assert!(
        e.to_string()
            .contains("val_annotations.txt: no annotations"),
        "{e}"
    );
}

#[test]
fn tiny_imagenet_duplicate_annotation() {
    let e = tiny_error(
        set_annotations("val_0.JPEG\tn02000000\t0\t1\t6\t7\nval_0.JPEG\tn01000000\t0\t1\t6\t7\n"),
        Split::Test,
    );
    assert!(
        e.to_string()
            .contains("line 2: `val_0.JPEG` already listed at line 1"),
        "{e}"
    );
}

#[test]
fn tiny_imagenet_missing_val_image() {
    let e = tiny_error(
        |root| fs::remove_file(root.join("val/images/val_2.JPEG")).unwrap(),
        Split::Test,
    );
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if path.ends_with("val/images/val_2.JPEG")),
        "{e}"
    );
    assert!(e.to_string().contains("val_annotations.txt line 3"), "{e}");
}

#[test]
fn tiny_imagenet_missing_train_class_folder() {
    let e = tiny_error(
        |root| fs::remove_dir_all(root.join("train/n02000000")).unwrap(),
        Split::Train,
    );
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if path.ends_with("train/n02000000/images")),
        "{e}"
    );
}

#[test]
fn tiny_imagenet_empty_train_class_folder() {
    let e = tiny_error(
        |root| fs::remove_file(root.join("train/n02000000/images/n02000000_0.JPEG")).unwrap(),
        Split::Train,
    );
    assert!(
        e.to_string()
            .contains("class `n02000000` has no image files"),
        "{e}"
    );
}

#[test]
fn tiny_imagenet_missing_or_bad_wnids() {
    let e = tiny_error(
        |root| fs::remove_file(root.join("wnids.txt")).unwrap(),
        Split::Train,
    );
    assert!(
        matches!(&e, DataError::NotFound { path, .. } if path.ends_with("wnids.txt")),
        "{e}"
    );
    let e = tiny_error(
        |root| write(&root.join("wnids.txt"), "n01000000\nn02000000\nn01000000\n"),
        Split::Train,
    );
    assert!(
        e.to_string()
            .contains("line 3: wnid `n01000000` already listed at line 1"),
        "{e}"
    );
    let e = tiny_error(|root| write(&root.join("wnids.txt"), "\n\n"), Split::Train);
    assert!(e.to_string().contains("wnids.txt: no wnids"), "{e}");
}

#[test]
fn tiny_imagenet_malformed_words_line() {
    let e = tiny_error(
        |root| {
            write(
                &root.join("words.txt"),
                "n01000000\tgoldfish\nn02000000 no tab\n",
            )
        },
        Split::Train,
    );
    assert!(e.to_string().contains("words.txt: line 2: expected"), "{e}");
}

// ------------------------------------------------------------------------------------------
// CIFAR-10 as JPEG files (skipped without the shared data)

const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn cifar10_jpg() -> Option<PathBuf> {
    Some(common::unpacked("cifar10-jpg.tar.gz")?.join("cifar10_jpg_yoongikim"))
}

#[test]
fn cifar10_jpg_test_split_and_its_cache() {
    let Some(root) = cifar10_jpg() else { return };
    let caches = tempfile::tempdir().unwrap();
    let opts = cached(caches.path());
    let start = Instant::now();
    let (ds, stats) = load_image_folder_with_stats(&root, Split::Test, &opts).unwrap();
    let decode_time = start.elapsed();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.classes(), &CIFAR10_CLASSES);
    assert_eq!(ds.class_counts(), vec![1000; 10]);
    assert_eq!(ds.shape(), kd_data::ImageShape::new(3, 32, 32));
    assert_eq!(stats.decoded, 10_000);
    written_path(&stats.cache);
    let start = Instant::now();
    let (again, stats) = load_image_folder_with_stats(&root, Split::Test, &opts).unwrap();
    eprintln!(
        "cifar10-jpg test: decoded in {decode_time:?}, from cache in {:?}",
        start.elapsed()
    );
    assert!(stats.from_cache(), "{stats:?}");
    assert_eq!(stats.decoded, 0);
    assert_eq!(again, ds);
}

/// The JPEGs against the byte-exact official records: the k-th test record of class c is
/// `test/<c>/000k.jpg`, i.e. sample `1000 c + k`. Only JPEG loss separates them, so this checks
/// the channel order and the CHW layout on real images.
#[test]
fn cifar10_jpg_pixels_match_the_official_records() {
    let Some(root) = cifar10_jpg() else { return };
    let Some(exact) = common::unpacked("cifar-exact-prefix.tar.gz") else {
        return;
    };
    let records = fs::read(exact.join("cifar10_exact_prefix/test_batch_prefix.bin")).unwrap();
    let ds = load_image_folder(&root, Split::Test, &no_cache()).unwrap();
    let mut seen = [0usize; 10];
    let (mut total, mut count) = (0f64, 0usize);
    for record in records.chunks_exact(3073) {
        let class = record[0] as usize;
        let sample = 1000 * class + seen[class];
        seen[class] += 1;
        let diff: u64 = record[1..]
            .iter()
            .zip(ds.image(sample))
            .map(|(&a, &b)| a.abs_diff(b) as u64)
            .sum();
        let mean = diff as f64 / 3072.0;
        assert!(
            mean < 20.0,
            "sample {sample}: mean absolute difference {mean}"
        );
        total += mean;
        count += 1;
    }
    let mean = total / count as f64;
    eprintln!(
        "cifar10-jpg vs official test records: mean absolute difference {mean:.2} over {count} images"
    );
    assert!(count > 1000 && mean < 8.0, "{mean}");
}

#[test]
fn cifar10_jpg_train_split() {
    let Some(root) = cifar10_jpg() else { return };
    let start = Instant::now();
    let ds = load_image_folder(&root, Split::Train, &no_cache()).unwrap();
    eprintln!(
        "cifar10-jpg train: 50000 JPEGs decoded in {:?}",
        start.elapsed()
    );
    assert_eq!(ds.len(), 50_000);
    assert_eq!(ds.class_counts(), vec![5000; 10]);
    assert_eq!(ds.classes(), &CIFAR10_CLASSES);
}
