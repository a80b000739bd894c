#!/usr/bin/env python3
"""Learning rates from RepDistiller's rule and PyTorch's schedulers for
kd-core/tests/schedule.rs.

    .venv/bin/python kd-core/tests/parity/schedule.py DIR

Writes DIR/schedule.npz (make.py's writer), float64 vectors:

  * `repdistiller`: epochs 1..=240 of RepDistiller's `adjust_learning_rate` (lr 0.05, decay
    0.1 after epochs 150, 180, 210): `lr * 0.1 ** np.sum(epoch > milestones)`;
  * `multistep`: the LR of each 0-based epoch 0..200 of SGD(lr=0.1) under
    MultiStepLR(milestones=[100, 150], gamma=0.1) stepped once per epoch (kd_data);
  * `cosine`: the LR of each batch of 6 epochs × 5 batches under
    CosineAnnealingLR(T_max=30, eta_min=1e-3) from 0.1, stepped per batch;
  * `warmup_cosine`: the LR of each batch of 6 epochs × 5 batches with 2 warm-up epochs:
    SequentialLR([LinearLR(start_factor=1/10, total_iters=9),
    CosineAnnealingLR(T_max=20, eta_min=1e-3)], milestones=[10]) from 0.1, stepped per batch.
"""

import os
import sys
import warnings

import numpy as np
import torch
from torch.optim import lr_scheduler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make  # noqa: E402


def repdistiller():
    lr0, decay, milestones = 0.05, 0.1, [150, 180, 210]
    out = []
    for epoch in range(1, 241):
        # helper/util.py adjust_learning_rate
        steps = np.sum(epoch > np.asarray(milestones))
        lr = lr0 * (decay**steps) if steps > 0 else lr0
        out.append(float(lr))
    return out


def trace(make_scheduler, lr0, n):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def main():
    warnings.simplefilter("ignore")
    out = {
        "repdistiller": repdistiller(),
        "multistep": trace(lambda o: lr_scheduler.MultiStepLR(o, [100, 150], 0.1), 0.1, 200),
        "cosine": trace(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=1e-3), 0.1, 30),
        "warmup_cosine": trace(
            lambda o: lr_scheduler.SequentialLR(
                o,
                [
                    lr_scheduler.LinearLR(o, start_factor=1 / 10, end_factor=1.0, total_iters=9),
                    lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=1e-3),
                ],
                milestones=[10],
            ),
            0.1,
            30,
        ),
    }
    out = {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}
    make.write_npz(os.path.join(sys.argv[1], "schedule.npz"), out)


if __name__ == "__main__":
    main()
