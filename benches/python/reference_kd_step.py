"""PyTorch eager reference for kd's KD-step benchmark (benches/benches/kd_step.rs).

One knowledge-distillation training step on the CPU, RepDistiller's recipe: batch 64 of 3x32x32
images, 100 classes, loss 0.1*CE + 0.9*KL(T=4) with KL = kl_div(batchmean)*T^2, SGD lr 0.05,
momentum 0.9, weight decay 5e-4. The teacher is in eval mode under torch.no_grad(), the student in
train mode. Two views per pair:
  * x:      the plain KD step;
  * x+flip: Good-DA-in-KD's augmented view x' = the horizontally flipped batch (precomputed) with
            lw_mix = [1, 0, 1]: a teacher forward on x', a second student forward on x' and a KD
            term on it (separate forwards, as the reference code).
The models are the parity fixtures' PyTorch definitions that reference_models.py uses.

    .venv/bin/python benches/python/reference_kd_step.py [--threads 2] [--seconds 10] \
        [--pairs resnet32x4:resnet8x4,resnet56:resnet20] [--channels-last]

--channels-last runs the models and batches in torch.channels_last, as kd does on the CPU by
default (run.memory_format = "auto"); without it, PyTorch's default NCHW, as the reference code.
"""
import argparse
import importlib
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_models import FAMILY  # noqa: E402  (also puts the parity models on sys.path)

T = 4.0
GAMMA, ALPHA = 0.1, 0.9


def build(name, classes):
    return importlib.import_module(FAMILY[name]).build(name, classes)


def distill_kl(z_s, z_t):
    """RepDistiller's DistillKL: KL(softmax(z_t/T) || softmax(z_s/T)) * T^2 / batch."""
    return F.kl_div(F.log_softmax(z_s / T, dim=1), F.softmax(z_t / T, dim=1), reduction="batchmean") * T * T


def make_step(teacher, student, opt, x, y, x_aug):
    def step():
        with torch.no_grad():
            z_t = teacher(x)
            z_t_aug = teacher(x_aug) if x_aug is not None else None
        z_s = student(x)
        loss = GAMMA * F.cross_entropy(z_s, y) + ALPHA * distill_kl(z_s, z_t)
        if x_aug is not None:
            loss = loss + ALPHA * distill_kl(student(x_aug), z_t_aug)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_steps(step, warmup, seconds, min_steps):
    """Per-step wall times after `warmup` untimed steps, for at least `seconds` and `min_steps`."""
    for _ in range(warmup):
        step()
    times, start = [], time.perf_counter()
    while len(times) < min_steps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=int(os.environ.get("KD_BENCH_THREADS", 2)))
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per case (at least)")
    ap.add_argument("--min-steps", type=int, default=10, help="timed steps per case (at least)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per case")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--channels-last", action="store_true", help="models and batches in torch.channels_last")
    ap.add_argument("--pairs", default=os.environ.get("KD_BENCH_PAIRS", "resnet32x4:resnet8x4,resnet56:resnet20"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, args.classes, (args.batch,))
    x_flip = x.flip(3)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x, x_flip = x.contiguous(memory_format=fmt), x_flip.contiguous(memory_format=fmt)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.classes} classes, CPU, "
          f"{'channels_last' if args.channels_last else 'contiguous'}")
    print(f"{'case':<32} {'mean img/s':>10} {'median img/s':>12} {'steps':>6}")
    for pair in args.pairs.split(","):
        t_name, s_name = (p.strip() for p in pair.split(":"))
        for view, x_aug in (("x", None), ("x+flip", x_flip)):
            teacher = build(t_name, args.classes).eval().to(memory_format=fmt)
            for p in teacher.parameters():
                p.requires_grad_(False)
            student = build(s_name, args.classes).train().to(memory_format=fmt)
            opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
            times = time_steps(make_step(teacher, student, opt, x, y, x_aug), args.warmup, args.seconds,
                               args.min_steps)
            mean = args.batch * len(times) / sum(times)
            median = args.batch / statistics.median(times)
            case = f"{t_name}-{s_name}/{view}"
            print(f"{case:<32} {mean:>10.1f} {median:>12.1f} {len(times):>6}", flush=True)


if __name__ == "__main__":
    main()
