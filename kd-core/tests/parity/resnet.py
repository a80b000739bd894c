"""The ResNets of kd's zoo in PyTorch, for parity fixtures (see make.py).

Written from the descriptions in kd-codebases.md B.4 and good-da-in-kd.md §3.2, with the
reference's module names so that the `state_dict` keys are the ones kd uses:

  * RepDistiller's CIFAR ResNets (`resnet8` … `resnet110`, `resnet8x4`, `resnet32x4`):
    post-activation BasicBlocks, `downsample` projection shortcut, global average pool, `fc`;
  * RepDistiller's CIFAR `ResNet50` (kuangliu layout): Bottlenecks, `shortcut`, `linear`;
  * torchvision-layout `resnet18` / `resnet34`: 7×7/2 stem, 3×3/2 max-pool, adaptive pool, `fc`.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _kaiming(module):
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _proj(c_in, c_out, stride):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
    )


class CifarBlock(nn.Module):
    """conv-BN-ReLU-conv-BN + shortcut, then ReLU; returns (out, pre-ReLU sum)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = _proj(c_in, c_out, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = y + (x if self.downsample is None else self.downsample(x))
        return F.relu(s), s


def _run_stage(stage, x):
    pre = None
    for block in stage:
        x, pre = block(x)
    return x, pre


class CifarResNet(nn.Module):
    def __init__(self, depth, widths, num_classes):
        super().__init__()
        n = (depth - 2) // 6
        c0, c1, c2, c3 = widths
        self.conv1 = nn.Conv2d(3, c0, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        cin = c0
        for idx, (c, s) in enumerate([(c1, 1), (c2, 2), (c3, 2)], start=1):
            blocks = [CifarBlock(cin if i == 0 else c, c, s if i == 0 else 1) for i in range(n)]
            setattr(self, f"layer{idx}", nn.Sequential(*blocks))
            cin = c
        self.fc = nn.Linear(c3, num_classes)
        _kaiming(self)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = _run_stage(self.layer1, f0)
        f2, p2 = _run_stage(self.layer2, f1)
        f3, p3 = _run_stage(self.layer3, f2)
        f4 = F.avg_pool2d(f3, f3.size(3)).flatten(1)
        logits = self.fc(f4)
        if not is_feat:
            return logits
        return ([f0, p1, p2, p3, f4] if preact else [f0, f1, f2, f3, f4]), logits


class Bottleneck(nn.Module):
    """1×1-3×3(stride)-1×1 with expansion 4; `shortcut` is empty or conv1×1+BN."""

    def __init__(self, c_in, planes, stride):
        super().__init__()
        c_out = 4 * planes
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut = _proj(c_in, c_out, stride) if stride != 1 or c_in != c_out else nn.Sequential()

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        s = self.bn3(self.conv3(y)) + self.shortcut(x)
        return F.relu(s), s


class ResNet50(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for idx, (planes, n, s) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
            blocks = []
            for i in range(n):
                blocks.append(Bottleneck(cin, planes, s if i == 0 else 1))
                cin = 4 * planes
            setattr(self, f"layer{idx}", nn.Sequential(*blocks))
        self.linear = nn.Linear(2048, num_classes)
        _kaiming(self)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = _run_stage(self.layer1, f0)
        f2, p2 = _run_stage(self.layer2, f1)
        f3, p3 = _run_stage(self.layer3, f2)
        f4, p4 = _run_stage(self.layer4, f3)
        f5 = F.adaptive_avg_pool2d(f4, 1).flatten(1)
        logits = self.linear(f5)
        if not is_feat:
            return logits
        return ([f0, p1, p2, p3, p4, f5] if preact else [f0, f1, f2, f3, f4, f5]), logits


class TvBlock(nn.Module):
    """torchvision's BasicBlock: conv-BN-ReLU-conv-BN + identity/downsample, ReLU."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = _proj(c_in, c_out, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class TvResNet(nn.Module):
    """torchvision's ResNet-18/34; features [stem after ReLU, layer1..4, pooled]; `preact`
    is ignored (the reference raises on it, kd returns the usual features)."""

    def __init__(self, counts, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for idx, (c, n) in enumerate(zip([64, 128, 256, 512], counts), 1):
            s = 1 if idx == 1 else 2
            blocks = [TvBlock(cin if i == 0 else c, c, s if i == 0 else 1) for i in range(n)]
            setattr(self, f"layer{idx}", nn.Sequential(*blocks))
            cin = c
        self.fc = nn.Linear(512, num_classes)
        _kaiming(self)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(f0, 3, stride=2, padding=1)
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        f5 = F.adaptive_avg_pool2d(f4, 1).flatten(1)
        logits = self.fc(f5)
        if not is_feat:
            return logits
        return [f0, f1, f2, f3, f4, f5], logits


CIFAR = {
    "resnet8": (8, [16, 16, 32, 64]),
    "resnet14": (14, [16, 16, 32, 64]),
    "resnet20": (20, [16, 16, 32, 64]),
    "resnet32": (32, [16, 16, 32, 64]),
    "resnet44": (44, [16, 16, 32, 64]),
    "resnet56": (56, [16, 16, 32, 64]),
    "resnet110": (110, [16, 16, 32, 64]),
    "resnet8x4": (8, [32, 64, 128, 256]),
    "resnet32x4": (32, [32, 64, 128, 256]),
}


def build(name, num_classes):
    if name in CIFAR:
        depth, widths = CIFAR[name]
        return CifarResNet(depth, widths, num_classes)
    if name == "ResNet50":
        return ResNet50(num_classes)
    if name == "resnet18":
        return TvResNet([2, 2, 2, 2], num_classes)
    if name == "resnet34":
        return TvResNet([3, 4, 6, 3], num_classes)
    raise ValueError(f"resnet.py: unknown model {name}")
