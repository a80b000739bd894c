"""Wide ResNets `wrn_D_K` in PyTorch, for parity fixtures (see make.py).

Written from kd-codebases.md A.6/B.4 with RepDistiller's module names (`conv1`,
`block<g>.layer.<i>.{bn1,conv1,bn2,conv2,convShortcut}`, `bn1`, `fc`): pre-activation blocks,
widths 16K/32K/64K, strides 1/2/2, BN-ReLU-global pool-fc head. With `preact`, f1–f3 go through
the BN that follows them, called a second time as the reference does.
"""

import math

import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.convShortcut = None if c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x):
        a = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return y + (x if self.convShortcut is None else self.convShortcut(a))


class Group(nn.Module):
    def __init__(self, n, c_in, c_out, stride):
        super().__init__()
        self.layer = nn.Sequential(*[Block(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen, num_classes):
        super().__init__()
        n = (depth - 4) // 6
        c = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, c[0], 3, padding=1, bias=False)
        self.block1 = Group(n, c[0], c[1], 1)
        self.block2 = Group(n, c[1], c[2], 2)
        self.block3 = Group(n, c[2], c[3], 2)
        self.bn1 = nn.BatchNorm2d(c[3])
        self.fc = nn.Linear(c[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / k))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x, is_feat=False, preact=False):
        f0 = self.conv1(x)
        f1 = self.block1(f0)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        h = F.relu(self.bn1(f3))
        f4 = F.avg_pool2d(h, h.size(3)).flatten(1)
        logits = self.fc(f4)
        if not is_feat:
            return logits
        if preact:
            f1 = self.block2.layer[0].bn1(f1)
            f2 = self.block3.layer[0].bn1(f2)
            f3 = self.bn1(f3)
        return [f0, f1, f2, f3, f4], logits


def build(name, num_classes):
    parts = name.split("_")
    if len(parts) != 3 or parts[0] != "wrn":
        raise ValueError(f"wrn.py: unknown model {name}")
    return WideResNet(int(parts[1]), int(parts[2]), num_classes)
