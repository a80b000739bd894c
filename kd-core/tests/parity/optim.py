#!/usr/bin/env python3
"""Runs torch.optim.SGD (foreach=False) on fixed gradients for kd-core/tests/optim.rs.

    .venv/bin/python kd-core/tests/parity/optim.py DIR

Two parameters, `weight` [4, 3] and `bias` [4], start from seeded values (`init.<p>`, float64)
and take 5 steps; step i has gradient `grad<i>.<p>` (float64, seeded) and learning rate
`lrs[i]` (set on every param group before the step). Each gradient is made by backward of
sum(p · grad) after `zero_grad()` (set_to_none), as a training step would.

For each case below and each dtype D in {f64, f32} (everything cast to D), DIR/optim.npz
(make.py's writer) holds the parameters after every step as `<case>.<D>.step<i>.<p>`:

  * momentum:    momentum 0.9, weight decay 5e-4 (RepDistiller);
  * nesterov:    the same with nesterov=True;
  * dampening:   momentum 0.9, dampening 0.1, weight decay 5e-4;
  * no_decay_1d: nesterov as above but the bias in a second param group with weight decay 0
                 (kd_data's groups);
  * plain:       momentum 0, weight decay 5e-4;
  * skip_bias:   as `momentum`, but at step 2 the loss does not involve the bias, so its
                 gradient is None and PyTorch skips it.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make  # noqa: E402

STEPS = 5
LRS = [0.1, 0.1, 0.05, 0.01, 0.2]
CASES = {
    "momentum": dict(momentum=0.9, dampening=0.0, nesterov=False, weight_decay=5e-4),
    "nesterov": dict(momentum=0.9, dampening=0.0, nesterov=True, weight_decay=5e-4),
    "dampening": dict(momentum=0.9, dampening=0.1, nesterov=False, weight_decay=5e-4),
    "no_decay_1d": dict(momentum=0.9, dampening=0.0, nesterov=True, weight_decay=5e-4),
    "plain": dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=5e-4),
    "skip_bias": dict(momentum=0.9, dampening=0.0, nesterov=False, weight_decay=5e-4),
}
DTYPE_NAMES = {torch.float64: "f64", torch.float32: "f32"}


def run(case, dtype, init, grads, out):
    w = init["weight"].to(dtype).clone().requires_grad_(True)
    b = init["bias"].to(dtype).clone().requires_grad_(True)
    kw = dict(CASES[case])
    wd = kw.pop("weight_decay")
    if case == "no_decay_1d":
        groups = [{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}]
    else:
        groups = [{"params": [w, b], "weight_decay": wd}]
    opt = torch.optim.SGD(groups, lr=LRS[0], foreach=False, **kw)
    for i in range(STEPS):
        opt.zero_grad()
        loss = (w * grads[i]["weight"].to(dtype)).sum()
        if not (case == "skip_bias" and i == 2):
            loss = loss + (b * grads[i]["bias"].to(dtype)).sum()
        loss.backward()
        for g in opt.param_groups:
            g["lr"] = LRS[i]
        opt.step()
        out[f"{case}.{DTYPE_NAMES[dtype]}.step{i}.weight"] = w.detach().clone()
        out[f"{case}.{DTYPE_NAMES[dtype]}.step{i}.bias"] = b.detach().clone()


def main():
    gen = torch.Generator().manual_seed(3)
    init = {
        "weight": torch.randn(4, 3, generator=gen, dtype=torch.float64),
        "bias": torch.randn(4, generator=gen, dtype=torch.float64),
    }
    grads = [
        {
            "weight": torch.randn(4, 3, generator=gen, dtype=torch.float64),
            "bias": torch.randn(4, generator=gen, dtype=torch.float64),
        }
        for _ in range(STEPS)
    ]
    out = {"lrs": torch.tensor(LRS, dtype=torch.float64)}
    for p in ["weight", "bias"]:
        out[f"init.{p}"] = init[p]
        for i in range(STEPS):
            out[f"grad{i}.{p}"] = grads[i][p]
    for case in CASES:
        for dtype in [torch.float64, torch.float32]:
            run(case, dtype, init, grads, out)
    make.write_npz(os.path.join(sys.argv[1], "optim.npz"), out)


if __name__ == "__main__":
    main()
