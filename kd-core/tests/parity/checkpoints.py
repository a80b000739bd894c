#!/usr/bin/env python3
"""Writes the torch.save checkpoints kd-core/tests/checkpoint.rs imports, and checks kd's
safetensors export in PyTorch.

    .venv/bin/python kd-core/tests/parity/checkpoints.py write DIR
    .venv/bin/python kd-core/tests/parity/checkpoints.py check-safetensors DIR FILE

`write` builds resnet8 with 10 classes (resnet.py) seeded with 0, with make.py's perturbed
BatchNorm, and writes to DIR:

  * expected.npz: `__input` ([4, 3, 32, 32]) and its eval-mode `__logits`, and
    `__expect_<name>` (float64) for each tensor of misc.pth; input.pt: the input again;
  * the model's state_dict (with its `num_batches_tracked` and `_metadata`) as:
    plain.pth (the state_dict itself), wrapped.pth (RepDistiller's {'epoch', 'model',
    'best_acc', 'optimizer'}, the optimizer after one SGD step with momentum),
    dataparallel.pth (nn.DataParallel's, every key prefixed `module.`), net.pth ({'net':
    DataParallel state_dict, 'acc', 'epoch'}), state_dict.pth ({'state_dict', 'arch'}),
    model_state_dict.pth ({'model_state_dict', 'optimizer_state_dict'}), proto4.pth (pickle
    protocol 4), params.pth (a dict of the nn.Parameter objects and buffers);
  * misc.pth: float64, float16, bfloat16, int8/16/32/64, uint8 and bool tensors, a transposed
    (non-contiguous) one, two views at offsets into one shared storage (one strided), a scalar
    and an empty tensor;
  * whole_model.pth (torch.save(model)) and, with
    _use_new_zipfile_serialization=False, legacy.pth (as wrapped.pth) and legacy_misc.pth.

`check-safetensors` reads FILE (a safetensors file written by kd; read here with json and
torch.frombuffer, since the venv has no `safetensors` package), loads it into a fresh resnet8
with the strict `load_state_dict`, and writes DIR/check.npz holding `__logits`, its eval-mode
logits for DIR/input.pt.
"""

import copy
import json
import os
import struct
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make  # noqa: E402
import resnet  # noqa: E402

SAFETENSORS_DTYPES = {
    "F32": torch.float32,
    "F64": torch.float64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def model_and_input():
    torch.manual_seed(0)
    model = resnet.build("resnet8", 10)
    gen = torch.Generator().manual_seed(1)
    make.perturb(model, 32, gen)
    xs = torch.randn(4, 3, 32, 32, generator=gen)
    model.eval()
    return model, xs


def misc_tensors():
    gen = torch.Generator().manual_seed(2)
    base = torch.arange(24, dtype=torch.float32)
    return {
        "f64": torch.randn(2, 3, dtype=torch.float64, generator=gen),
        "f16": torch.randn(5, generator=gen).half(),
        "bf16": torch.randn(5, generator=gen).bfloat16(),
        "i64": torch.tensor([-3, 0, 2**40]),
        "i32": torch.tensor([-7, 8], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "transposed": torch.randn(3, 5, generator=gen).t(),
        # Two views of one storage: contiguous at offset 2, strided at offset 11.
        "view_a": base[2:8].view(2, 3),
        "view_b": base[10:22].view(3, 4)[:, 1:3],
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }


def write(out):
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, xs = model_and_input()
    with torch.no_grad():
        logits = model(xs)
    misc = misc_tensors()
    expected = {"__input": xs, "__logits": logits}
    for k, v in misc.items():
        expected[f"__expect_{k}"] = v.double()
    make.write_npz(os.path.join(out, "expected.npz"), expected)
    torch.save(xs, os.path.join(out, "input.pt"))

    sd = model.state_dict()
    # An optimizer with state, as RepDistiller saves it: stepped on a copy of the model.
    other = copy.deepcopy(model).train()
    opt = torch.optim.SGD(other.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    other(xs).sum().backward()
    opt.step()
    dp = nn.DataParallel(model).state_dict()
    assert all(k.startswith("module.") for k in dp)

    def save(obj, name, **kw):
        torch.save(obj, os.path.join(out, name), **kw)

    save(sd, "plain.pth")
    save({"epoch": 1, "model": sd, "best_acc": 71.5, "optimizer": opt.state_dict()}, "wrapped.pth")
    save(dp, "dataparallel.pth")
    save({"net": dp, "acc": 93.1, "epoch": 200}, "net.pth")
    save({"state_dict": sd, "arch": "resnet8"}, "state_dict.pth")
    save({"model_state_dict": sd, "optimizer_state_dict": opt.state_dict()}, "model_state_dict.pth")
    save(sd, "proto4.pth", pickle_protocol=4)
    params = dict(model.named_parameters())
    params.update(model.named_buffers())
    assert isinstance(params["conv1.weight"], nn.Parameter)
    save(params, "params.pth")
    save(misc, "misc.pth")
    save(model, "whole_model.pth")
    legacy = {"epoch": 1, "model": sd, "optimizer": opt.state_dict()}
    save(legacy, "legacy.pth", _use_new_zipfile_serialization=False)
    save(misc, "legacy_misc.pth", _use_new_zipfile_serialization=False)


def read_safetensors(path):
    """A safetensors file: u64 header length, JSON header, then the tensors' bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = SAFETENSORS_DTYPES[info["dtype"]]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def check_safetensors(out, path):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    torch.manual_seed(123)
    model = resnet.build("resnet8", 10)
    model.load_state_dict(read_safetensors(path), strict=True)
    model.eval()
    xs = torch.load(os.path.join(out, "input.pt"))
    with torch.no_grad():
        logits = model(xs)
    make.write_npz(os.path.join(out, "check.npz"), {"__logits": logits})


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "check-safetensors":
        check_safetensors(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
