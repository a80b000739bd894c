#!/usr/bin/env python3
"""Runs torch.amp.GradScaler on the CPU for kd-core/tests/amp.rs.

    .venv/bin/python kd-core/tests/parity/amp.py DIR

A float32 parameter `w` [4] (seeded, `init`) is trained by SGD(lr=0.1, momentum=0.9,
weight_decay=5e-4, foreach=False) under GradScaler("cpu", init_scale=2**16, growth_factor=2,
backoff_factor=0.5, growth_interval=2) for 8 steps. Step i: zero_grad, loss = Σ w · c_i,
scaler.scale(loss).backward(), scaler.step(opt), scaler.update(). The coefficients `c<i>`
(float32) are seeded normals, except that step 3 has an entry of 1e35 (its scaled gradient
overflows float32 to inf) and step 6 a NaN; those steps are skipped and back the scale off.

DIR/amp.npz (make.py's writer) holds `init`, `c<i>`, and after each step `w<i>`,
`scale<i>` (float64 [1]) and `tracker<i>` (int64 [1]).
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make  # noqa: E402

STEPS = 8


def main():
    gen = torch.Generator().manual_seed(5)
    init = torch.randn(4, generator=gen)
    cs = [torch.randn(4, generator=gen) for _ in range(STEPS)]
    cs[3][1] = 1e35
    cs[6][2] = float("nan")
    w = init.clone().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=False)
    scaler = torch.amp.GradScaler(
        "cpu", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2
    )
    out = {"init": init}
    for i, c in enumerate(cs):
        out[f"c{i}"] = c
        opt.zero_grad()
        loss = (w * c).sum()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        state = scaler.state_dict()
        out[f"w{i}"] = w.detach().clone()
        out[f"scale{i}"] = torch.tensor([state["scale"]], dtype=torch.float64)
        out[f"tracker{i}"] = torch.tensor([state["_growth_tracker"]], dtype=torch.int64)
    make.write_npz(os.path.join(sys.argv[1], "amp.npz"), out)


if __name__ == "__main__":
    main()
