//! CRD's sampling of positives and negatives, the reference's `CIFAR100InstanceSample`: per
//! sample, its positive (itself in `exact` mode, a uniformly drawn sample of its class in
//! `relax` mode) and K negatives drawn from the samples of the other classes — without
//! replacement, unless K exceeds their number (then with replacement, as the reference's
//! `np.random.choice(…, replace=k > len)`).
//!
//! The draws come from the generator it is given (the trainer's is keyed by seed, epoch and
//! step), so a resumed run draws what the uninterrupted run would. Indices are memory rows: the
//! training samples' dataset indices, sorted and numbered from 0.

use super::crd::CrdMode;
use super::{Contrast, DistillError};
use kd_augment::Rng;
use tch::{Device, Tensor};

/// The draws of one batch, on the CPU (made on the loader's side, moved to the device later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContrastDraw {
    /// Each sample's memory row.
    pub rows: Vec<i64>,
    /// Per sample, `k + 1` memory rows: the positive, then the negatives.
    pub sample: Vec<i64>,
    /// Negatives per sample.
    pub k: usize,
}

impl ContrastDraw {
    /// The draw as tensors on `device`.
    pub fn to_device(&self, device: Device) -> Contrast {
        let n = self.rows.len() as i64;
        Contrast {
            rows: Tensor::from_slice(&self.rows).to_device(device),
            sample: Tensor::from_slice(&self.sample)
                .view([n, self.k as i64 + 1])
                .to_device(device),
        }
    }
}

/// The sampler of a training set.
#[derive(Clone, Debug)]
pub struct ContrastSampler {
    k: usize,
    mode: CrdMode,
    /// Dataset index → memory row (`u32::MAX` for a sample not trained on).
    row_of: Vec<u32>,
    /// Memory rows grouped by class.
    by_class: Vec<u32>,
    /// Class `c`'s rows are `by_class[start[c]..start[c + 1]]`.
    start: Vec<usize>,
    /// Each memory row's class.
    class_of_row: Vec<u32>,
}

impl ContrastSampler {
    /// The sampler of the samples `train` (dataset indices, repeats ignored) of a dataset with
    /// `labels`, drawing `k` negatives per sample.
    pub fn new(
        train: &[usize],
        labels: &[u32],
        k: usize,
        mode: CrdMode,
    ) -> Result<Self, DistillError> {
        let mut samples = train.to_vec();
        samples.sort_unstable();
        samples.dedup();
        let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        let mut row_of = vec![u32::MAX; labels.len()];
        let mut count = vec![0usize; classes];
        let class_of_row: Vec<u32> = samples.iter().map(|&i| labels[i]).collect();
        for (row, &i) in samples.iter().enumerate() {
            row_of[i] = row as u32;
            count[labels[i] as usize] += 1;
        }
        if count.iter().filter(|&&c| c > 0).count() < 2 {
            return Err(DistillError::Param {
                key: "loss.distiller".into(),
                value: "\"crd\"".into(),
                why: "CRD draws its negatives from other classes, but the training samples are of one class".into(),
            });
        }
        let mut start = vec![0usize; classes + 1];
        for c in 0..classes {
            start[c + 1] = start[c] + count[c];
        }
        let mut fill = start.clone();
        let mut by_class = vec![0u32; samples.len()];
        for (row, &c) in class_of_row.iter().enumerate() {
            by_class[fill[c as usize]] = row as u32;
            fill[c as usize] += 1;
        }
        Ok(ContrastSampler {
            k,
            mode,
            row_of,
            by_class,
            start,
            class_of_row,
        })
    }

    /// Memory rows (training samples).
    pub fn rows(&self) -> usize {
        self.class_of_row.len()
    }

    /// Negatives per sample.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The memory row of dataset index `i`, if it is a training sample.
    pub fn row_of(&self, i: usize) -> Option<usize> {
        self.row_of
            .get(i)
            .filter(|&&r| r != u32::MAX)
            .map(|&r| r as usize)
    }

    /// Each memory row's class.
    pub fn classes(&self) -> &[u32] {
        &self.class_of_row
    }

    /// The draws for a batch of dataset `indices`.
    ///
    /// # Panics
    ///
    /// If an index is not a training sample (the trainer only passes its loader's).
    pub fn draw(&self, indices: &[usize], rng: &mut Rng) -> ContrastDraw {
        let k = self.k;
        let mut rows = Vec::with_capacity(indices.len());
        let mut sample = Vec::with_capacity(indices.len() * (k + 1));
        // A permutation of 0..rows, back to the identity after each sample's partial shuffle.
        let mut scratch: Vec<u32> = (0..self.rows() as u32).collect();
        let mut swaps: Vec<usize> = Vec::with_capacity(k);
        for &i in indices {
            let row = self.row_of(i).expect("a training sample");
            let c = self.class_of_row[row] as usize;
            let (lo, hi) = (self.start[c], self.start[c + 1]);
            rows.push(row as i64);
            sample.push(match self.mode {
                CrdMode::Exact => row as i64,
                CrdMode::Relax => self.by_class[lo + rng.below((hi - lo) as u64) as usize] as i64,
            });
            // The v-th negative: the v-th row of by_class outside class c.
            let n_neg = self.rows() - (hi - lo);
            let negative = |v: usize| self.by_class[if v < lo { v } else { v + hi - lo }] as i64;
            if k > n_neg {
                sample.extend((0..k).map(|_| negative(rng.below(n_neg as u64) as usize)));
            } else {
                swaps.clear();
                for j in 0..k {
                    let r = j + rng.below((n_neg - j) as u64) as usize;
                    scratch.swap(j, r);
                    swaps.push(r);
                    sample.push(negative(scratch[j] as usize));
                }
                for (j, &r) in swaps.iter().enumerate().rev() {
                    scratch.swap(j, r);
                }
            }
        }
        ContrastDraw { rows, sample, k }
    }
}
