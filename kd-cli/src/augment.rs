//! `kd augment preview`: a grid of original and augmented images, to see what a pipeline or a
//! scheme does.

use crate::cli::{PreviewArgs, SplitArg};
use crate::data;
use anyhow::{Context, Result, bail};
use kd_augment::normalize::Normalize;
use kd_augment::scheme::SchemeParams;
use kd_augment::{ImageShape, Pipeline, Rng, StrongSpec, StrongerDa, Transform};
use kd_data::{Dataset, export};

/// Runs `kd augment preview`.
pub fn preview(args: &PreviewArgs) -> Result<()> {
    let split = match args.split {
        SplitArg::Train => kd_data::Split::Train,
        SplitArg::Test => kd_data::Split::Test,
    };
    let ds = data::open(&args.data, split)?;
    if ds.len() < args.images {
        bail!(
            "{} has {} images; --images {} is too many",
            ds.name(),
            ds.len(),
            args.images
        );
    }
    // One image per class in turn, so the rows show different classes.
    let by_class: Vec<Vec<usize>> = ds
        .indices_by_class()
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect();
    let picked: Vec<usize> = (0..args.images)
        .map(|k| {
            let class = &by_class[k % by_class.len()];
            class[(k / by_class.len()) % class.len()]
        })
        .collect();
    let (rows, shape, what) = match (&args.pipeline, &args.scheme) {
        (Some(p), None) => (
            pipeline_rows(&ds, &picked, p, args)?,
            ds.shape(),
            format!("pipeline \"{p}\""),
        ),
        (None, Some(s)) => (
            scheme_rows(&ds, &picked, s, args)?,
            ds.shape(),
            format!("scheme {s}"),
        ),
        _ => bail!("give exactly one of --pipeline and --scheme"),
    };
    let flat: Vec<&[u8]> = rows
        .iter()
        .flat_map(|r| r.iter().map(Vec::as_slice))
        .collect();
    export::write_grid(&args.out, &flat, shape, args.samples + 1, args.scale, 2)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {}: {} images of {} (one per row; first column the original, then {} draws of {what})",
        args.out.display(),
        args.images,
        ds.name(),
        args.samples
    );
    Ok(())
}

/// Centres `image` of `from` on a black canvas of `to`, cropping where it is larger, so images
/// of different sizes share one grid.
fn fit(image: &[u8], from: ImageShape, to: ImageShape) -> Vec<u8> {
    if from == to {
        return image.to_vec();
    }
    let mut out = vec![0u8; to.len()];
    let (dy, dx) = (
        to.height as isize - from.height as isize,
        to.width as isize - from.width as isize,
    );
    for c in 0..to.channels.min(from.channels) {
        for y in 0..to.height {
            let sy = y as isize - dy / 2;
            if sy < 0 || sy >= from.height as isize {
                continue;
            }
            for x in 0..to.width {
                let sx = x as isize - dx / 2;
                if sx >= 0 && sx < from.width as isize {
                    out[c * to.plane() + y * to.width + x] =
                        image[c * from.plane() + sy as usize * from.width + sx as usize];
                }
            }
        }
    }
    out
}

fn pipeline_rows(
    ds: &Dataset,
    picked: &[usize],
    spec: &str,
    args: &PreviewArgs,
) -> Result<Vec<Vec<Vec<u8>>>> {
    let (mean, _) = ds.channel_stats();
    let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let pipeline = Pipeline::parse(spec, ds.shape(), Some(&mean))?;
    let out_shape = pipeline.output_shape(ds.shape());
    Ok(picked
        .iter()
        .map(|&i| {
            let mut row = vec![ds.image(i).to_vec()];
            for s in 0..args.samples {
                let mut rng = Rng::from_keys(&[args.seed, i as u64, s as u64]);
                let mut out = vec![0u8; out_shape.len()];
                pipeline.apply(ds.image(i), ds.shape(), &mut rng, &mut out);
                row.push(fit(&out, out_shape, ds.shape()));
            }
            row
        })
        .collect())
}

/// A scheme acts on a normalised batch with one draw per batch: column `s` is one batch draw
/// over all the picked images, so a column shows the batch's shared decision.
fn scheme_rows(
    ds: &Dataset,
    picked: &[usize],
    scheme: &str,
    args: &PreviewArgs,
) -> Result<Vec<Vec<Vec<u8>>>> {
    let spec: StrongSpec = scheme.parse()?;
    let shape = ds.shape();
    let (mean, std) = ds.channel_stats();
    let normalize = Normalize::from_f64(&mean, &std)?;
    let da = StrongerDa::from_spec(
        spec,
        SchemeParams::for_image_size(shape.height),
        shape,
        normalize.clone(),
    )?;
    let bytes: Vec<u8> = picked
        .iter()
        .flat_map(|&i| ds.image(i).iter().copied())
        .collect();
    let mut batch = vec![0f32; bytes.len()];
    normalize.apply_batch_into(&bytes, shape, &mut batch);
    let mut rows: Vec<Vec<Vec<u8>>> = picked.iter().map(|&i| vec![ds.image(i).to_vec()]).collect();
    for s in 0..args.samples {
        let out = da.apply(&batch, &mut Rng::from_keys(&[args.seed, s as u64]))?;
        // CutMixPick's pool has n_run rows per image; show the first run.
        let images = &out.images()[..batch.len()];
        let mut shown = vec![0u8; images.len()];
        normalize.denormalize_batch_to_u8(images, shape, &mut shown);
        for (row, img) in rows.iter_mut().zip(shown.chunks_exact(shape.len())) {
            row.push(img.to_vec());
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_centres_smaller_and_crops_larger_images() {
        let small = ImageShape::new(1, 2, 2);
        let big = ImageShape::new(1, 4, 4);
        let out = fit(&[1, 2, 3, 4], small, big);
        assert_eq!(out, vec![0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0]);
        let back = fit(&out, big, small);
        assert_eq!(back, vec![1, 2, 3, 4]);
    }
}
