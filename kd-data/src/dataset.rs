//! The in-memory dataset every reader produces: decoded `u8` images, labels and class names.

use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};

pub use kd_augment::ImageShape;

/// A labelled image dataset, decoded once and held in memory.
///
/// Images are stored back to back, each `shape.len()` bytes in CHW order. Labels are class
/// indices in `0..classes.len()`. A [`Dataset`] is immutable; subsets and loaders refer to it by
/// index, so its indices stay the identity of a sample (CRD's memory bank relies on that).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    name: String,
    shape: ImageShape,
    images: Vec<u8>,
    labels: Vec<u32>,
    classes: Vec<String>,
}

impl Dataset {
    /// Checks that the sizes agree and every label names a class.
    pub fn new(
        name: impl Into<String>,
        shape: ImageShape,
        images: Vec<u8>,
        labels: Vec<u32>,
        classes: Vec<String>,
    ) -> Result<Self> {
        let name = name.into();
        if shape.is_empty() {
            return Err(DataError::invalid(
                "image shape",
                shape,
                "an image needs at least one pixel",
            ));
        }
        if images.len() != labels.len() * shape.len() {
            return Err(DataError::invalid(
                format!("{name}: image bytes"),
                images.len(),
                format!(
                    "expected {} labels × {} bytes = {}",
                    labels.len(),
                    shape.len(),
                    labels.len() * shape.len()
                ),
            ));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= classes.len())
        {
            return Err(DataError::invalid(
                format!("{name}: label of sample {i}"),
                l,
                format!("outside 0..{}", classes.len()),
            ));
        }
        Ok(Dataset {
            name,
            shape,
            images,
            labels,
            classes,
        })
    }

    /// A short name such as `cifar100/train`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shape of every image.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Class names, indexed by label.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The bytes of image `i` (CHW).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The label of sample `i`.
    pub fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    /// All images, back to back.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// How many samples each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The sample indices of each class, in dataset order.
    pub fn indices_by_class(&self) -> Vec<Vec<usize>> {
        let mut by_class = vec![Vec::new(); self.classes.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        by_class
    }

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1] (population std).
    pub fn channel_stats(&self) -> (Vec<f64>, Vec<f64>) {
        let c = self.shape.channels;
        let plane = self.shape.plane();
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for img in self.images.chunks_exact(self.shape.len()) {
            for (ch, px) in img.chunks_exact(plane).enumerate() {
                let (s, q) = px.iter().fold((0u64, 0u64), |(s, q), &p| {
                    (s + p as u64, q + (p as u64) * (p as u64))
                });
                sum[ch] += s as f64;
                sq[ch] += q as f64;
            }
        }
        let n = (self.len() * plane) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n / 255.0).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q / n / (255.0 * 255.0) - m * m).max(0.0).sqrt())
            .collect();
        (mean, std)
    }

    /// A new dataset holding copies of the samples at `indices`, in that order.
    ///
    /// Loaders do not need this (they take indices); it is for exporting and for tests.
    pub fn gather(&self, indices: &[usize]) -> Dataset {
        let n = self.shape.len();
        let mut images = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            name: self.name.clone(),
            shape: self.shape,
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }

    /// Renames the dataset (readers name it after the file; callers may prefer their own name).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Splits the dataset into its parts: `(images, labels, classes)`.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u32>, Vec<String>) {
        (self.images, self.labels, self.classes)
    }
}

/// Which part of a dataset to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training set.
    Train,
    /// The test set (Tiny-ImageNet: its labelled `val` set).
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let shape = ImageShape::new(1, 2, 2);
        let images = vec![0, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30, 40];
        Dataset::new(
            "t",
            shape,
            images,
            vec![0, 1, 1],
            vec!["a".into(), "b".into()],
        )
        .unwrap()
    }

    #[test]
    fn accessors_and_counts() {
        let d = tiny();
        assert_eq!(d.len(), 3);
        assert_eq!(d.image(2), &[10, 20, 30, 40]);
        assert_eq!(d.class_counts(), vec![1, 2]);
        assert_eq!(d.indices_by_class(), vec![vec![0], vec![1, 2]]);
        let g = d.gather(&[2, 0]);
        assert_eq!(g.labels(), &[1, 0]);
        assert_eq!(g.image(0), &[10, 20, 30, 40]);
    }

    #[test]
    fn rejects_label_out_of_range_and_size_mismatch() {
        let shape = ImageShape::new(1, 1, 1);
        let e = Dataset::new(
            "x",
            shape,
            vec![0, 0],
            vec![0, 2],
            vec!["a".into(), "b".into()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("label of sample 1"), "{e}");
        let e = Dataset::new("x", shape, vec![0], vec![0, 0], vec!["a".into()]).unwrap_err();
        assert!(e.to_string().contains("image bytes"), "{e}");
    }

    #[test]
    fn channel_stats_of_constant_images() {
        let shape = ImageShape::new(2, 1, 2);
        let d = Dataset::new("c", shape, vec![0, 0, 255, 255], vec![0], vec!["a".into()]).unwrap();
        let (m, s) = d.channel_stats();
        assert_eq!(m, vec![0.0, 1.0]);
        assert_eq!(s, vec![0.0, 0.0]);
    }
}
