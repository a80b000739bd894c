"""PyTorch eager reference for kd's model benchmarks (benches/benches/models.rs).

For each model: images/s of an eval forward and of one SGD training step (forward, cross-entropy,
backward, SGD momentum 0.9, weight decay 5e-4) at batch 64 on the CPU, with the same thread count
as the Rust bench. The architectures are the parity fixtures' PyTorch definitions
(kd-core/tests/parity/*.py), which the tests prove equal to kd's models.

    .venv/bin/python benches/python/reference_models.py [--threads 2] [--seconds 3] [model ...]
"""
import argparse
import importlib
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "kd-core", "tests", "parity"))
FAMILY = {
    **{n: "resnet" for n in ["resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                             "resnet8x4", "resnet32x4", "ResNet50", "resnet18", "resnet34"]},
    **{n: "wrn" for n in ["wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"]},
    **{n: "vgg" for n in ["vgg8", "vgg11", "vgg13", "vgg16", "vgg19"]},
    **{n: "mobile" for n in ["MobileNetV2", "ShuffleV1", "ShuffleV2"]},
}


def rate(fn, images, seconds):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n * images / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("models", nargs="*", default=list(FAMILY))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 100, (args.batch,))
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, CPU")
    print(f"{'model':<12} {'forward img/s':>14} {'train img/s':>12}")
    for name in args.models:
        model = importlib.import_module(FAMILY[name]).build(name, 100)
        model.eval()

        def forward():
            with torch.no_grad():
                model(x)

        fwd = rate(forward, args.batch, args.seconds)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        train = rate(step, args.batch, args.seconds)
        print(f"{name:<12} {fwd:>14.0f} {train:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
