"""PyTorch reference for kd's end-to-end epoch benchmark (benches/benches/epoch.rs).

One distillation epoch over the same 4,096 real CIFAR-10 training images, as RepDistiller and
Good-DA-in-KD run it:
  * the images decoded once into an in-memory uint8 NHWC array, as torchvision's CIFAR10 dataset
    holds them, and served by a Dataset whose __getitem__ is CIFAR10's (numpy -> PIL -> transform)
    with RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize (kd's `cifar10`
    constants);
  * DataLoader(batch_size=64, shuffle=True, num_workers=W, persistent_workers=True);
  * the KD step: teacher.eval() under no_grad, student.train(), 0.1*CE + 0.9*KL(T=4, batchmean)*T^2,
    SGD lr 0.05, momentum 0.9, weight decay 5e-4, zero_grad(set_to_none=True), loss.item() and the
    top-1 count per step (the trainers' bookkeeping);
  * with --strong cutmix (the "crop+flip+cutmix" case): Good-DA-in-KD's CutMix on the normalised
    batch tensor (one lambda ~ Beta(1, 1) and one box per batch, partners by a derangement), the
    teacher re-run on x', a second student forward on x' and lw_mix = [1, 0, 1] (a KD term on x').
The images are the i*50000//4096-th (i = 0..4095) of the training set in ImageFolder order, as in
the Rust bench; the archive is unpacked into the same folder the Rust bench uses if it is not there.

    .venv/bin/python benches/python/reference_epoch.py [--threads 2] [--workers 2] [--epochs 3] \
        [--pair resnet20:resnet8] [--case crop+flip|crop+flip+cutmix|both] [--channels-last]

--channels-last runs the models and batches in torch.channels_last, as kd does on the CPU by
default (run.memory_format = "auto"); without it, PyTorch's default NCHW, as the reference code.
"""
import argparse
import importlib
import os
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torchvision.datasets import ImageFolder

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from reference_models import FAMILY  # noqa: E402  (also puts the parity models on sys.path)

WORKSPACE = os.path.normpath(os.path.join(HERE, "..", ".."))
ARCHIVE_ROOT = "cifar10_jpg_yoongikim"
SAMPLES = 4096
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # kd-data's `cifar10` preset
TEMP, GAMMA, ALPHA = 4.0, 0.1, 0.9
LW_MIX = (1.0, 0.0, 1.0)


def cifar10_train_dir(archive, data_dir):
    root = os.path.join(data_dir, ARCHIVE_ROOT)
    if not os.path.isdir(os.path.join(root, "train")):
        if not os.path.isfile(archive):
            sys.exit(f"the CIFAR-10 archive {archive} is not there (pass --archive)")
        print(f"unpacking {archive} into {data_dir}", flush=True)
        os.makedirs(data_dir, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(data_dir, filter="data")
    return os.path.join(root, "train")


def load_subset(train_dir):
    """The bench's 4,096 images as torchvision's CIFAR10 holds its data: uint8 NHWC and labels."""
    folder = ImageFolder(train_dir)
    n = len(folder.samples)
    picked = [folder.samples[i * n // SAMPLES] for i in range(SAMPLES)]
    data = np.stack([np.asarray(Image.open(path).convert("RGB")) for path, _ in picked])
    labels = np.array([label for _, label in picked], dtype=np.int64)
    return data, labels, len(folder.classes)


class InMemoryCifar(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's __getitem__: numpy HWC -> PIL -> transform."""

    def __init__(self, data, labels, transform):
        self.data, self.labels, self.transform = data, labels, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i])), int(self.labels[i])


def rand_bbox(size, lam):
    """Good-DA-in-KD's rand_bbox (H, W = size[2], size[3], no axis swap)."""
    h, w = size[2], size[3]
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(w * cut_rat), int(h * cut_rat)
    cx, cy = np.random.randint(w), np.random.randint(h)
    x1, x2 = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
    y1, y2 = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
    return x1, y1, x2, y2


def cutmix(x):
    """One lambda and box per batch, partners by a derangement; x' = x*mask + x[partner]*(1-mask)."""
    lam = np.random.beta(1.0, 1.0)
    x1, y1, x2, y2 = rand_bbox(x.size(), lam)
    n = x.size(0)
    partner = torch.randperm(n)
    while (partner == torch.arange(n)).any():
        partner = torch.randperm(n)
    mask = torch.ones(x.size(2), x.size(3))
    mask[y1:y2, x1:x2] = 0
    return x * mask + x[partner] * (1 - mask)


def distill_kl(z_s, z_t):
    return F.kl_div(F.log_softmax(z_s / TEMP, dim=1), F.softmax(z_t / TEMP, dim=1), reduction="batchmean") * TEMP * TEMP


def train_epoch(loader, teacher, student, opt, strong, fmt):
    images, correct, loss_sum, start = 0, 0, 0.0, time.perf_counter()
    for x, y in loader:
        x = x.contiguous(memory_format=fmt)
        with torch.no_grad():
            z_t = teacher(x)
        z_s = student(x)
        loss = GAMMA * F.cross_entropy(z_s, y) + ALPHA * LW_MIX[0] * distill_kl(z_s, z_t)
        if strong:
            x_aug = cutmix(x).contiguous(memory_format=fmt)
            with torch.no_grad():
                z_t_aug = teacher(x_aug)
            loss = loss + ALPHA * LW_MIX[2] * distill_kl(student(x_aug), z_t_aug)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * x.size(0)
        correct += int((z_s.argmax(1) == y).sum())
        images += x.size(0)
    return images, time.perf_counter() - start, loss_sum / images


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=int(os.environ.get("KD_BENCH_THREADS", 2)))
    ap.add_argument("--workers", type=int, default=int(os.environ.get("KD_BENCH_WORKERS", 2)))
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per case, after one warm-up epoch")
    ap.add_argument("--pair", default=os.environ.get("KD_BENCH_PAIR", "resnet20:resnet8"))
    ap.add_argument("--channels-last", action="store_true", help="models and batches in torch.channels_last")
    ap.add_argument("--case", choices=["crop+flip", "crop+flip+cutmix", "both"], default="both")
    ap.add_argument("--archive", default=os.environ.get(
        "KD_BENCH_CIFAR_TGZ", os.path.join(WORKSPACE, "..", "shared", "datasets", "cifar10-jpg.tar.gz")))
    ap.add_argument("--data", default=os.environ.get("KD_BENCH_DATA", os.path.join(WORKSPACE, "target", "kd-bench-data")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, labels, classes = load_subset(cifar10_train_dir(args.archive, args.data))
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    dataset = InMemoryCifar(data, labels, transform)
    t_name, s_name = (p.strip() for p in args.pair.split(":"))
    cases = ["crop+flip", "crop+flip+cutmix"] if args.case == "both" else [args.case]
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    print(f"torch {torch.__version__}, torchvision {__import__('torchvision').__version__}, {args.threads} threads, "
          f"{args.workers} workers, {len(dataset)} images, batch 64, {t_name} -> {s_name}, CPU, "
          f"{'channels_last' if args.channels_last else 'contiguous'}")
    for case in cases:
        torch.manual_seed(0)
        np.random.seed(0)
        teacher = importlib.import_module(FAMILY[t_name]).build(t_name, classes).eval().to(memory_format=fmt)
        for p in teacher.parameters():
            p.requires_grad_(False)
        student = importlib.import_module(FAMILY[s_name]).build(s_name, classes).train().to(memory_format=fmt)
        opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=args.workers,
                                             persistent_workers=args.workers > 0)
        timed_images, timed_seconds = 0, 0.0
        for epoch in range(args.epochs + 1):
            images, seconds, loss = train_epoch(loader, teacher, student, opt, case.endswith("cutmix"), fmt)
            label = "warm-up" if epoch == 0 else f"epoch {epoch}"
            print(f"{case:<18} {label:<8} {images / seconds:8.1f} img/s  (loss {loss:.3f})", flush=True)
            if epoch > 0:
                timed_images, timed_seconds = timed_images + images, timed_seconds + seconds
        # Images over total time: the rate of the mean epoch time, as criterion reports it.
        print(f"{case:<18} {'all':<8} {timed_images / timed_seconds:8.1f} img/s over {args.epochs} epochs", flush=True)


if __name__ == "__main__":
    main()
