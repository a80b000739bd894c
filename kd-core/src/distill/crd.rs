//! Contrastive representation distillation (RepDistiller's `crd`, B.7 of kd-codebases.md).
//!
//! The pooled vectors `feat[-1]` of each network go through a trainable linear embedding to
//! `feat_dim` = 128 dimensions, L2-normalised (`embed_s`, `embed_t`). Two memory banks hold one
//! 128-d row per training sample: `memory_v1` the student's embeddings, `memory_v2` the
//! teacher's, both starting U(±1/√(128/3)). For each sample of a batch, its positive (itself,
//! `exact`, or a random sample of its class, `relax`) and K negatives (samples of other classes,
//! [`super::contrast::ContrastSampler`]) are scored against the anchor:
//!
//! * student anchor: `P_s(i, j) = exp(⟨g_s(i), memory_v2[j]⟩/τ) / Z_s`;
//! * teacher anchor: `P_t(i, j) = exp(⟨g_t(i), memory_v1[j]⟩/τ) / Z_t`;
//!
//! with `Z = mean(exp(·/τ))·N` fixed on the first batch (the normalisation constants, kept in
//! `contrast.z` and in the checkpoint). The loss is the NCE loss of the CRD paper's eq. 18 on
//! each anchor, summed ([`nce_loss`]). After scoring, the batch's own rows are updated without
//! gradient: `memory[idx] ← normalize(m·memory[idx] + (1−m)·g)`, m = `nce_m` = 0.5.
//!
//! The memory has one row per sample the run trains on: the whole training set, or the subset
//! (`data.subset`) with N its size, rows in the order of the dataset indices.

use super::layers::Embed;
use super::{Contrast, DistillError, Distiller, Method, Setup, last};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module};

/// The ε of the reference's NCE loss.
const EPS: f64 = 1e-7;

/// How a sample's positive is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrdMode {
    /// The sample itself.
    Exact,
    /// A random sample of the same class.
    Relax,
}

/// `[loss.crd]`: the reference's `--feat_dim`, `--nce_k`, `--nce_t`, `--nce_m`, `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrdParams {
    /// The embedding dimension.
    pub feat_dim: i64,
    /// Negatives per sample (drawn without replacement unless there are fewer samples of other
    /// classes, as the reference).
    pub nce_k: usize,
    /// The temperature τ.
    pub nce_t: f64,
    /// The memory's momentum.
    pub nce_m: f64,
    /// `exact` or `relax` positives.
    pub mode: CrdMode,
}

impl Default for CrdParams {
    fn default() -> Self {
        CrdParams {
            feat_dim: 128,
            nce_k: 16384,
            nce_t: 0.07,
            nce_m: 0.5,
            mode: CrdMode::Exact,
        }
    }
}

/// CRD with its embeddings and memory banks.
#[derive(Debug)]
pub struct Crd {
    embed_s: Embed,
    embed_t: Embed,
    /// `contrast.memory_v1`: the student side.
    memory_s: Tensor,
    /// `contrast.memory_v2`: the teacher side.
    memory_t: Tensor,
    /// `contrast.z`: `[Z_s, Z_t]`, −1 until the first batch sets them.
    z: Tensor,
    /// Whether `z` is set; read from `z` on the first batch (it may come from a checkpoint).
    z_set: Option<bool>,
    rows: i64,
    temperature: f64,
    momentum: f64,
}

impl Crd {
    /// The embeddings and a memory of `setup.train_samples` rows per side.
    pub fn new(setup: &Setup, path: &nn::Path) -> Result<Self, DistillError> {
        let p = setup.params.crd;
        let rows = setup.train_samples as i64;
        if rows == 0 {
            return Err(DistillError::Param {
                key: "loss.distiller".into(),
                value: "\"crd\"".into(),
                why: "CRD's memory needs training samples".into(),
            });
        }
        let dim = |shapes: &[Vec<i64>]| shapes[shapes.len() - 1].iter().product::<i64>();
        let contrast = path / "contrast";
        let stdv = 1.0 / (p.feat_dim as f64 / 3.0).sqrt();
        let memory = |name: &str| {
            let mut m = contrast.zeros_no_train(name, &[rows, p.feat_dim]);
            let _ = tch::no_grad(|| m.uniform_(-stdv, stdv));
            m
        };
        let mut z = contrast.ones_no_train("z", &[2]);
        let _ = tch::no_grad(|| z.fill_(-1.0));
        Ok(Crd {
            embed_s: Embed::new(
                &(path / "embed_s"),
                dim(setup.student_shapes),
                p.feat_dim,
                true,
            ),
            embed_t: Embed::new(
                &(path / "embed_t"),
                dim(setup.teacher_shapes),
                p.feat_dim,
                true,
            ),
            memory_s: memory("memory_v1"),
            memory_t: memory("memory_v2"),
            z,
            z_set: None,
            rows,
            temperature: p.nce_t,
            momentum: p.nce_m,
        })
    }

    /// The CRD loss of a batch from the two embeddings (`[B, D]`, L2-normalised) and the
    /// batch's draw; scores against the memories, fixes Z on the first batch, then updates the
    /// memories' rows of the batch.
    pub fn contrast_loss(&mut self, g_s: &Tensor, g_t: &Tensor, draw: &Contrast) -> Tensor {
        let (b, d) = (g_s.size()[0], g_s.size()[1]);
        let k1 = draw.sample.size()[1];
        let idx = draw.sample.view([-1]);
        let score = |memory: &Tensor, anchor: &Tensor| {
            let w = memory.index_select(0, &idx).view([b, k1, d]);
            (w.bmm(&anchor.view([b, d, 1])) / self.temperature).exp()
        };
        // The student anchor against the teacher's memory, and the other way round.
        let out_s = score(&self.memory_t, g_s);
        let out_t = score(&self.memory_s, g_t);
        self.fix_normalization(&out_s, &out_t);
        let out_s = out_s / self.z.get(0);
        let out_t = out_t / self.z.get(1);
        self.update_memory(g_s, g_t, &draw.rows);
        nce_loss(&out_s, self.rows) + nce_loss(&out_t, self.rows)
    }

    /// Sets Z on the first batch (once per run: a resumed run reads it from the checkpoint).
    fn fix_normalization(&mut self, out_s: &Tensor, out_t: &Tensor) {
        let set = *self
            .z_set
            .get_or_insert_with(|| f64::try_from(self.z.get(0)).is_ok_and(|z| z > 0.0));
        if set {
            return;
        }
        tch::no_grad(|| {
            let n = self.rows as f64;
            self.z.get(0).copy_(&(out_s.mean(None) * n));
            self.z.get(1).copy_(&(out_t.mean(None) * n));
        });
        self.z_set = Some(true);
    }

    /// The momentum update of the batch's own rows, re-normalised.
    fn update_memory(&mut self, g_s: &Tensor, g_t: &Tensor, rows: &Tensor) {
        let m = self.momentum;
        tch::no_grad(|| {
            for (memory, g) in [(&mut self.memory_s, g_s), (&mut self.memory_t, g_t)] {
                let pos = memory.index_select(0, rows) * m + g.detach() * (1.0 - m);
                let norm = pos
                    .square()
                    .sum_dim_intlist(1, true, None)
                    .pow_tensor_scalar(0.5);
                let _ = memory.index_copy_(0, rows, &(pos / norm));
            }
        });
    }
}

/// The NCE loss of one anchor (eq. 18, the reference's `ContrastLoss`): `x` `[B, K+1, 1]` holds
/// the positive's score first, then the K negatives'; with the noise `P_n = 1/N` and m = K,
/// `−(1/B) Σ_i [log(P_pos/(P_pos + m·P_n + ε)) + Σ_k log(m·P_n/(P_neg,k + m·P_n + ε))]`.
pub fn nce_loss(x: &Tensor, n_data: i64) -> Tensor {
    let b = x.size()[0] as f64;
    let k = x.size()[1] - 1;
    let mpn = k as f64 / n_data as f64;
    let pos = x.select(1, 0);
    let log_d1 = (&pos / (&pos + (mpn + EPS))).log();
    let log_d0 = ((x.narrow(1, 1, k) + (mpn + EPS)).reciprocal() * mpn).log();
    -(log_d1.sum(None) + log_d0.sum(None)) / b
}

impl Distiller for Crd {
    fn method(&self) -> Method {
        Method::Crd
    }

    fn trainable(&self) -> &'static [&'static str] {
        &["embed_s", "embed_t"]
    }

    /// # Panics
    ///
    /// Without `contrast`: the trainer draws it for every batch of a CRD run.
    fn loss(&mut self, s: &[Tensor], t: &[Tensor], contrast: Option<&Contrast>) -> Option<Tensor> {
        let draw = contrast.expect("CRD needs the batch's contrast draw");
        let g_s = self.embed_s.forward(&last(s));
        let g_t = self.embed_t.forward(&last(t));
        Some(self.contrast_loss(&g_s, &g_t, draw))
    }
}
