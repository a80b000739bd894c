#!/usr/bin/env python3
"""Writes PyTorch's values and student-logit gradients of the KD losses kd-core/tests/losses.rs
compares with kd's.

    .venv/bin/python kd-core/tests/parity/losses.py DIR

Writes DIR/losses.npz (make.py's writer) holding, for each dtype D in {f64, f32}:

  * `D.student`, `D.teacher`: [8, 100] logits (3·randn, seeded), where student row 1 and
    teacher row 0 have one logit of 1000 so that their softmax underflows to exact zeros
    (at T = 1 even in float64); `labels`: [8] int64 classes;
  * for each loss L and `D.L.value` (a scalar) and `D.L.grad` (d L / d student):
    `kl_T1`, `kl_T4`, `kl_T20`: F.kl_div(log_softmax(s/T), softmax(t/T), reduction='batchmean')
    · T · T, as RepDistiller's DistillKL; `mse`: nn.MSELoss(); `smooth_l1`: nn.SmoothL1Loss();
    `ce`: F.cross_entropy(s, labels);
  * `D.entropy_student`, `D.entropy_teacher`: -(softmax(z) · log_softmax(z)).sum(1);
  * `D.inf_grad`: kd_data's injected gradient (C·(s−t) − Σ_j (s−t)_j) / C² / B.
"""

import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make  # noqa: E402

B, C = 8, 100


def logits():
    gen = torch.Generator().manual_seed(7)
    s = 3 * torch.randn(B, C, generator=gen, dtype=torch.float64)
    t = 3 * torch.randn(B, C, generator=gen, dtype=torch.float64)
    s[1, 3] = 1000.0
    t[0, 5] = 1000.0
    labels = torch.randint(0, C, (B,), generator=gen)
    return s, t, labels


def kl(s, t, T):
    return F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T


def main():
    out_dir = sys.argv[1]
    s64, t64, labels = logits()
    out = {"labels": labels}
    losses = {
        "kl_T1": lambda s, t: kl(s, t, 1.0),
        "kl_T4": lambda s, t: kl(s, t, 4.0),
        "kl_T20": lambda s, t: kl(s, t, 20.0),
        "mse": nn.MSELoss(),
        "smooth_l1": nn.SmoothL1Loss(),
        "ce": lambda s, t: F.cross_entropy(s, labels),
    }
    for name, dtype in [("f64", torch.float64), ("f32", torch.float32)]:
        s0, t0 = s64.to(dtype), t64.to(dtype)
        out[f"{name}.student"] = s0
        out[f"{name}.teacher"] = t0
        for loss_name, loss_fn in losses.items():
            s = s0.clone().requires_grad_(True)
            value = loss_fn(s, t0)
            value.backward()
            out[f"{name}.{loss_name}.value"] = value.detach().reshape(1)
            out[f"{name}.{loss_name}.grad"] = s.grad
        for who, z in [("student", s0), ("teacher", t0)]:
            out[f"{name}.entropy_{who}"] = -(F.softmax(z, dim=1) * F.log_softmax(z, dim=1)).sum(1)
        d = s0 - t0
        out[f"{name}.inf_grad"] = (C * d - d.sum(dim=1, keepdim=True)) / C**2 / B
    make.write_npz(os.path.join(out_dir, "losses.npz"), out)


if __name__ == "__main__":
    main()
