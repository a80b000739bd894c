"""PyTorch/torchvision reference throughput for kd's augmentation and loader benchmarks.

Measures, on this machine, what the reference code bases run per image:
  * crop+flip+normalise: RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize on
    PIL images, as torchvision's CIFAR dataset applies them (the standard DA of every reference);
  * the same plus AutoAugment(CIFAR10) (kd_data's `auto` mode, PIL path), and AutoAugment alone on a
    uint8 tensor (Good-DA-in-KD's stronger DA path);
  * Cutout(16) on a tensor; mixup and CutMix on a normalised batch of 64 as Good-DA-in-KD does them;
  * the whole loader: a CIFAR-like in-memory dataset through torch.utils.data.DataLoader, batch 64,
    with 0, 1 and 2 worker processes (0 = in the main process).
Everything runs with one torch thread so the figures are per core. Usage:
    .venv/bin/python benches/python/reference_augment.py [--size 32] [--seconds 3]
Needs torchvision==0.26.0 (`.venv/bin/pip install torchvision==0.26.0 --no-deps pillow`).
"""
import argparse
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

torch.set_num_threads(1)
MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


def rate(fn, n_per_call, seconds):
    fn()  # warm up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * n_per_call / (time.perf_counter() - start)


class InMemory(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's __getitem__: numpy HWC -> PIL -> transform."""

    def __init__(self, data, labels, transform):
        self.data, self.labels, self.transform = data, labels, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i])), int(self.labels[i])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    s, secs = args.size, args.seconds
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(10000, s, s, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=10000)
    pils = [Image.fromarray(x) for x in data[:512]]
    pad = s // 8
    standard = T.Compose([T.RandomCrop(s, padding=pad), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    auto = T.Compose([T.RandomCrop(s, padding=pad), T.RandomHorizontalFlip(),
                      T.AutoAugment(T.AutoAugmentPolicy.CIFAR10), T.ToTensor(), T.Normalize(MEAN, STD)])
    aa_tensor = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)
    tensors = [torch.from_numpy(x).permute(2, 0, 1).contiguous() for x in data[:512]]
    i = [0]

    def each(tf, items):
        def go():
            tf(items[i[0] % len(items)])
            i[0] += 1
        return go

    print(f"torchvision {__import__('torchvision').__version__}, torch {torch.__version__}, {s}x{s}, 1 thread")
    print(f"crop+flip+normalise (PIL)      {rate(each(standard, pils), 1, secs):10.0f} img/s")
    print(f"crop+flip+AutoAugment+norm     {rate(each(auto, pils), 1, secs):10.0f} img/s")
    print(f"AutoAugment CIFAR10 (u8 tensor){rate(each(aa_tensor, tensors), 1, secs):10.0f} img/s")

    batch = torch.randn(64, 3, s, s)

    def cutout():
        x = batch.clone()
        h, w = x.shape[2:]
        y, xx = np.random.randint(h), np.random.randint(w)
        L = 8 if s == 32 else 16
        mask = torch.ones(h, w)
        mask[max(y - L // 2, 0):min(y + L // 2, h), max(xx - L // 2, 0):min(xx + L // 2, w)] = 0
        return x * mask

    def mixup():
        lam = np.random.beta(1.0, 1.0)
        idx = torch.randperm(64)
        return lam * batch + (1 - lam) * batch[idx]

    def cutmix():
        lam = np.random.beta(1.0, 1.0)
        h, w = batch.shape[2:]
        cut = np.sqrt(1 - lam)
        cw, ch = int(w * cut), int(h * cut)
        cx, cy = np.random.randint(w), np.random.randint(h)
        x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
        y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
        idx = torch.randperm(64)
        while (idx == torch.arange(64)).any():
            idx = torch.randperm(64)
        out = batch.clone()
        out[:, :, y1:y2, x1:x2] = batch[idx, :, y1:y2, x1:x2]
        return out

    print(f"Cutout (batch of 64, tensor)   {rate(cutout, 64, secs):10.0f} img/s")
    print(f"mixup (batch of 64)            {rate(mixup, 64, secs):10.0f} img/s")
    print(f"CutMix (batch of 64)           {rate(cutmix, 64, secs):10.0f} img/s")

    ds = InMemory(data, labels, standard)
    for workers in (0, 1, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                             drop_last=True, persistent_workers=workers > 0)
        next(iter(loader))
        start, n = time.perf_counter(), 0
        for x, y in loader:
            n += x.shape[0]
        print(f"DataLoader crop+flip+norm, {workers} worker(s): {n / (time.perf_counter() - start):10.0f} img/s")


if __name__ == "__main__":
    main()
