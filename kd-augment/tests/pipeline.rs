//! Pipelines from strings: parsing, errors that name what is wrong, chaining, and the two
//! randomness modes.

use kd_augment::crop::{Crop, Fill};
use kd_augment::flip::Flip;
use kd_augment::{ImageShape, Pipeline, PipelineSpec, Randomness, Rng, Transform};

const SHAPE: ImageShape = ImageShape::new(3, 8, 8);

fn image(seed: u64) -> Vec<u8> {
    let mut rng = Rng::seed_from_u64(seed);
    (0..SHAPE.len()).map(|_| rng.below(256) as u8).collect()
}

fn run(p: &Pipeline, input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![0; p.output_shape(SHAPE).len()];
    p.apply(input, SHAPE, rng, &mut out);
    out
}

#[test]
fn canonical_strings_round_trip() {
    for text in [
        "crop:4,flip,cutout:8",
        "crop:4:size=6:fill=mean@batch,flip:1@sample",
        "autoaugment:svhn,randaugment:n=1:m=5,trivialaugment",
        "center_crop:6,identity",
    ] {
        let spec: PipelineSpec = text.parse().unwrap();
        let canonical = spec.to_string();
        assert_eq!(
            canonical.parse::<PipelineSpec>().unwrap(),
            spec,
            "{text} -> {canonical}"
        );
    }
    assert_eq!("".parse::<PipelineSpec>().unwrap().to_string(), "identity");
    assert_eq!(
        " crop:4 , flip ".parse::<PipelineSpec>().unwrap().ops.len(),
        2
    );
}

#[test]
fn serde_uses_the_string_form() {
    let spec: PipelineSpec = "crop:4,flip".parse().unwrap();
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(json, "\"crop:4:fill=0,flip:0.5\"");
    assert_eq!(serde_json::from_str::<PipelineSpec>(&json).unwrap(), spec);
    let err = serde_json::from_str::<PipelineSpec>("\"crop:4,flp\"").unwrap_err();
    assert!(err.to_string().contains("'flp'"), "{err}");
}

#[test]
fn errors_name_the_op_key_or_value() {
    let cases = [
        ("crop:4,flp", "'flp'", "did you mean 'flip'"),
        ("crop", "'crop'", "needs padding"),
        ("crop:x", "'crop'", "padding = 'x'"),
        ("crop:4:colour=3", "'crop'", "unknown key 'colour'"),
        ("crop:4:fill=red", "'crop'", "fill = 'red'"),
        ("flip@later", "flip@later", "unknown mode '@later'"),
        ("flip:0.5:0.6", "'flip'", "at most 1 positional"),
        ("autoaugment:cifar1000", "'autoaugment'", "cifar1000"),
        ("crop:4:padding=2", "'crop'", "'padding' given twice"),
    ];
    for (text, names, says) in cases {
        let e = text.parse::<PipelineSpec>().unwrap_err().to_string();
        assert!(e.contains(names) && e.contains(says), "{text}: {e}");
    }
}

#[test]
fn build_errors_name_the_parameter() {
    let e = Pipeline::parse("flip:1.5", SHAPE, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1.5"), "{e}");
    let e = Pipeline::parse("crop:0:size=9", SHAPE, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains('9'), "{e}");
    let e = Pipeline::parse("cutout:4:fill=mean", SHAPE, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mean"), "{e}");
    assert!(Pipeline::parse("cutout:4:fill=mean", SHAPE, Some(&[0.5, 0.5, 0.5])).is_ok());
    let e = Pipeline::parse("randaugment:m=40", SHAPE, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("40"), "{e}");
}

#[test]
fn a_pipeline_is_its_ops_in_order_on_one_generator() {
    let p = Pipeline::parse("crop:2:size=6,flip", SHAPE, None).unwrap();
    assert_eq!(p.output_shape(SHAPE), ImageShape::new(3, 6, 6));
    let crop = Crop::new(6, 2, Fill::All(0)).unwrap();
    let flip = Flip::default();
    for seed in 0..50 {
        let input = image(seed);
        let got = run(&p, &input, &mut Rng::seed_from_u64(seed));
        let mut rng = Rng::seed_from_u64(seed);
        let mut mid = vec![0; 3 * 36];
        crop.apply(&input, SHAPE, &mut rng, &mut mid);
        let mut want = vec![0; 3 * 36];
        flip.apply(&mid, ImageShape::new(3, 6, 6), &mut rng, &mut want);
        assert_eq!(got, want, "seed {seed}");
    }
}

#[test]
fn same_seed_same_output_and_seeds_differ() {
    let p = Pipeline::parse("crop:4,flip,cutout:4,autoaugment", SHAPE, None).unwrap();
    let input = image(1);
    let a = run(&p, &input, &mut Rng::seed_from_u64(9));
    assert_eq!(a, run(&p, &input, &mut Rng::seed_from_u64(9)));
    let differing = (10..40)
        .filter(|&s| run(&p, &input, &mut Rng::seed_from_u64(s)) != a)
        .count();
    assert!(differing >= 25, "{differing} of 30 seeds differ");
}

/// An op marked @batch makes the same decision for every image of a batch; the others still
/// draw per image. Checked with a flip of p = 0.5, whose decision is visible.
#[test]
fn per_batch_ops_draw_once_per_batch() {
    let p = Pipeline::parse("flip@batch", SHAPE, None).unwrap();
    let per_sample = Pipeline::parse("flip", SHAPE, None).unwrap();
    let images: Vec<Vec<u8>> = (0..16).map(image).collect();
    let flipped = |p: &Pipeline, batch_seed: u64| -> Vec<bool> {
        let batch_rng = Rng::seed_from_u64(batch_seed);
        images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let mut out = vec![0; SHAPE.len()];
                p.apply_in_batch(
                    img,
                    SHAPE,
                    &mut Rng::seed_from_u64(1000 + i as u64),
                    &batch_rng,
                    &mut out,
                );
                out != *img
            })
            .collect()
    };
    let mut both = [false, false];
    for batch_seed in 0..20 {
        let f = flipped(&p, batch_seed);
        assert!(f.iter().all(|&x| x == f[0]), "batch {batch_seed}: {f:?}");
        both[f[0] as usize] = true;
    }
    assert_eq!(both, [true, true], "the batch decision never changed");
    let f = flipped(&per_sample, 0);
    assert!(
        f.iter().any(|&x| x) && f.iter().any(|&x| !x),
        "per-sample flips all agreed: {f:?}"
    );
}

#[test]
fn default_randomness_applies_to_unmarked_ops_only() {
    let img = image(3);
    let batch = Rng::seed_from_u64(5);
    // Outputs for 32 images that share the batch generator but not their own.
    let outputs = |spec: &str, default: Randomness| -> Vec<Vec<u8>> {
        let p = spec
            .parse::<PipelineSpec>()
            .unwrap()
            .build(SHAPE, None, default)
            .unwrap();
        (0..32)
            .map(|i| {
                let mut out = vec![0; SHAPE.len()];
                p.apply_in_batch(&img, SHAPE, &mut Rng::seed_from_u64(i), &batch, &mut out);
                out
            })
            .collect()
    };
    let all_same = |o: &[Vec<u8>]| o.iter().all(|x| *x == o[0]);
    assert!(all_same(&outputs("flip", Randomness::PerBatch)));
    assert!(!all_same(&outputs("flip", Randomness::PerSample)));
    assert!(!all_same(&outputs("flip@sample", Randomness::PerBatch)));
    assert!(all_same(&outputs("flip@batch", Randomness::PerSample)));
}
