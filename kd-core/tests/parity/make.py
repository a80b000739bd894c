#!/usr/bin/env python3
"""Writes a PyTorch parity fixture for one model of kd's zoo.

    .venv/bin/python kd-core/tests/parity/make.py --family resnet --model resnet8 \
        --num-classes 10 --out DIR [--input-size 32]

`<family>.py` (next to this script) defines `build(name, num_classes) -> torch.nn.Module`, the
architecture written in PyTorch from the reference's description, whose `forward(x,
is_feat=False, preact=False)` returns the logits, or `(features, logits)` with `is_feat`.

The script seeds torch with 0, builds the model, moves its BatchNorm affine parameters and
running statistics away from their 1/0 start (so that parity is not trivially met), and writes
DIR/fixture.npz (numpy's format, written here without numpy) holding:

  * every `state_dict` entry under its own key (`num_batches_tracked` left out: tch has none);
  * `__input`: the input, [4, 3, S, S];
  * `__logits`, `__feat_0` … `__feat_k`: eval-mode `forward(x, is_feat=True)`;
  * `__preact_0` … `__preact_k`: eval-mode `forward(x, is_feat=True, preact=True)`, when the
    model accepts `preact`;
  * `__train_logits`: one train-mode `forward(x)` (no grad) of the same input, and after it
    `__after_train:<bn>.running_mean` / `.running_var` for every BatchNorm.
"""

import argparse
import ctypes
import importlib
import os
import struct
import sys
import zipfile

import torch
from torch import nn

DTYPES = {
    torch.float32: "<f4",
    torch.float64: "<f8",
    torch.float16: "<f2",
    torch.int64: "<i8",
    torch.int32: "<i4",
    torch.uint8: "|u1",
    torch.bool: "|b1",
}


def npy_bytes(t):
    """A tensor as an .npy file (format 1.0, C order, little-endian)."""
    t = t.detach().cpu().contiguous()
    shape = tuple(t.shape)
    if len(shape) == 1:
        shape_s = f"({shape[0]},)"
    else:
        shape_s = "(" + ", ".join(str(d) for d in shape) + ")"
    header = f"{{'descr': '{DTYPES[t.dtype]}', 'fortran_order': False, 'shape': {shape_s}, }}"
    # Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64
    # and ended by a newline, as numpy writes it.
    pad = 64 - (10 + len(header) + 1) % 64
    header = (header + " " * (pad % 64) + "\n").encode("latin1")
    data = ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()) if t.numel() else b""
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def write_npz(path, arrays):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for key, t in arrays.items():
            z.writestr(key + ".npy", npy_bytes(t))


def batch_norms(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def perturb(model, side, gen):
    """Moves BN away from its 1/0 start and gives it running statistics near the batch ones.

    Running statistics are first taken from one calibration batch (momentum 1), so that eval-mode
    activations stay of order 1 even through deep nets, then scaled and shifted a little.
    """
    bns = batch_norms(model)
    with torch.no_grad():
        for _, m in bns:
            if m.affine:
                m.weight.copy_(torch.empty_like(m.weight).uniform_(0.8, 1.2, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        saved = [m.momentum for _, m in bns]
        for _, m in bns:
            m.momentum = 1.0
        model.train()
        model(torch.randn(8, 3, side, side, generator=gen))
        for (_, m), mo in zip(bns, saved):
            m.momentum = mo
            std = m.running_var.sqrt()
            m.running_mean.add_(0.1 * std * torch.randn(std.shape, generator=gen))
            m.running_var.mul_(torch.empty_like(std).uniform_(0.8, 1.25, generator=gen))
            if m.num_batches_tracked is not None:
                m.num_batches_tracked.zero_()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--num-classes", type=int, required=True)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    family = importlib.import_module(args.family)
    torch.set_num_threads(min(2, torch.get_num_threads()))

    torch.manual_seed(0)
    model = family.build(args.model, args.num_classes)
    gen = torch.Generator().manual_seed(1)
    perturb(model, args.input_size, gen)
    xs = torch.randn(4, 3, args.input_size, args.input_size, generator=gen)

    out = {}
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[k] = v.clone()
    out["__input"] = xs

    model.eval()
    with torch.no_grad():
        feats, logits = model(xs, is_feat=True)
        out["__logits"] = logits
        for i, f in enumerate(feats):
            out[f"__feat_{i}"] = f
        try:
            pfeats, _ = model(xs, is_feat=True, preact=True)
        except (TypeError, NotImplementedError):
            pfeats = None
        if pfeats is not None:
            for i, f in enumerate(pfeats):
                out[f"__preact_{i}"] = f

        model.train()
        out["__train_logits"] = model(xs)
    for name, m in batch_norms(model):
        prefix = f"{name}." if name else ""
        out[f"__after_train:{prefix}running_mean"] = m.running_mean.clone()
        out[f"__after_train:{prefix}running_var"] = m.running_var.clone()

    os.makedirs(args.out, exist_ok=True)
    write_npz(os.path.join(args.out, "fixture.npz"), out)


if __name__ == "__main__":
    main()
