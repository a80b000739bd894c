"""RepDistiller's mobile models in PyTorch, for parity fixtures (see make.py).

Written from kd-codebases.md B.4 with the reference's module names, so the `state_dict` keys
are the ones kd uses:

  * `MobileNetV2` (`mobile_half`, T=6, W=0.5, 32×32): `conv1` = Sequential(conv 3×3/2, BN,
    ReLU), `blocks.{s}.{j}.conv` = Sequential(1×1, BN, ReLU, dw 3×3, BN, ReLU, 1×1, BN),
    `conv2` = Sequential(1×1 → 1280, BN, ReLU), `classifier` = Sequential(Linear);
  * `ShuffleV1` (groups 3, [240, 480, 960], [4, 8, 4]): `conv1`, `bn1`,
    `layer{1,2,3}.{j}.{conv1,bn1,conv2,bn2,conv3,bn3}`, `linear`;
  * `ShuffleV2` (net size 1): `conv1`, `bn1`, `layer{l}.0` down-sampling units
    (`conv1`–`conv5`, `bn1`–`bn5`), `layer{l}.{j≥1}` basic units (`conv1`–`conv3`,
    `bn1`–`bn3`), `conv2`, `bn2`, `linear`.

The channel shuffles are written as the reference writes them (view, swap the group axes,
reshape), so kd's use of libtorch's `channel_shuffle` is checked against that form.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


# --- MobileNetV2 --------------------------------------------------------------------------


def _conv_bn(c_in, c_out, k, stride=1, groups=1, relu=True):
    mods = [
        nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        mods.append(nn.ReLU(inplace=True))
    return mods


class InvertedResidual(nn.Module):
    def __init__(self, c_in, c_out, stride, t):
        super().__init__()
        mid = c_in * t
        self.residual = stride == 1 and c_in == c_out
        self.conv = nn.Sequential(
            *_conv_bn(c_in, mid, 1),
            *_conv_bn(mid, mid, 3, stride, groups=mid),
            *_conv_bn(mid, c_out, 1, relu=False),
        )

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2),
                (None, 96, 3, 1), (None, 160, 3, 2), (None, 320, 1, 1)]

    def __init__(self, t, width, num_classes, input_size=32):
        super().__init__()
        c = int(32 * width)
        self.conv1 = nn.Sequential(*_conv_bn(3, c, 3, 2))
        self.blocks = nn.ModuleList()
        for t0, ch, n, s in self.SETTINGS:
            c_out = int(ch * width)
            units = []
            for j in range(n):
                units.append(InvertedResidual(c, c_out, s if j == 0 else 1, t0 or t))
                c = c_out
            self.blocks.append(nn.Sequential(*units))
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(*_conv_bn(c, last, 1))
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        self.pool = input_size // 16
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x, is_feat=False, preact=False):
        x = self.conv1(x)
        feats = [x]
        for s, stage in enumerate(self.blocks):
            x = stage(x)
            if s in (1, 2, 4, 6):
                feats.append(x)
        x = self.conv2(x)
        pooled = F.avg_pool2d(x, self.pool, ceil_mode=True).flatten(1)
        feats.append(pooled)
        logits = self.classifier(pooled)
        return (feats, logits) if is_feat else logits


# --- ShuffleNet v1 ------------------------------------------------------------------------


class V1Unit(nn.Module):
    def __init__(self, c_in, c_out, stride, groups):
        super().__init__()
        mid = c_out // 4
        self.g = 1 if c_in == 24 else groups
        self.stride = stride
        self.conv1 = nn.Conv2d(c_in, mid, 1, groups=self.g, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)

    def forward(self, x):
        y = shuffle(F.relu(self.bn1(self.conv1(x))), self.g)
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.stride == 2:
            s = torch.cat([y, F.avg_pool2d(x, 3, 2, 1)], 1)
        else:
            s = y + x
        return F.relu(s), s


def _stages(model, x):
    outs, pres = [], []
    for l in (1, 2, 3):
        for unit in getattr(model, f"layer{l}"):
            x, pre = unit(x)
        outs.append(x)
        pres.append(pre)
    return x, outs, pres


class ShuffleV1(nn.Module):
    def __init__(self, num_classes, widths=(240, 480, 960), counts=(4, 8, 4), groups=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        c = 24
        for l, (w, n) in enumerate(zip(widths, counts), 1):
            units = []
            for j in range(n):
                units.append(V1Unit(c, w - c if j == 0 else w, 2 if j == 0 else 1, groups))
                c = w
            setattr(self, f"layer{l}", nn.Sequential(*units))
        self.linear = nn.Linear(widths[2], num_classes)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        x, outs, pres = _stages(self, f0)
        pooled = F.avg_pool2d(x, 4).flatten(1)
        logits = self.linear(pooled)
        if not is_feat:
            return logits
        return [f0, *(pres if preact else outs), pooled], logits


# --- ShuffleNet v2 ------------------------------------------------------------------------


class V2Basic(nn.Module):
    def __init__(self, channels):
        super().__init__()
        c = channels // 2
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x):
        half = x.shape[1] // 2
        keep, work = x[:, :half], x[:, half:]
        y = F.relu(self.bn1(self.conv1(work)))
        y = self.bn3(self.conv3(self.bn2(self.conv2(y))))
        return shuffle(torch.cat([keep, F.relu(y)], 1), 2), torch.cat([keep, y], 1)


class V2Down(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        mid = c_out // 2
        self.conv1 = nn.Conv2d(c_in, c_in, 3, 2, 1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv2 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        # No pre-activation of its own: a stage's preact comes from its last basic unit.
        return shuffle(torch.cat([left, right], 1), 2), None


class ShuffleV2(nn.Module):
    def __init__(self, num_classes, widths=(116, 232, 464, 1024), counts=(3, 7, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        c = 24
        for l, n in enumerate(counts, 1):
            w = widths[l - 1]
            units = [V2Down(c, w)] + [V2Basic(w) for _ in range(n)]
            setattr(self, f"layer{l}", nn.Sequential(*units))
            c = w
        self.conv2 = nn.Conv2d(widths[2], widths[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        x, outs, pres = _stages(self, f0)
        x = F.relu(self.bn2(self.conv2(x)))
        pooled = F.avg_pool2d(x, 4).flatten(1)
        logits = self.linear(pooled)
        if not is_feat:
            return logits
        return [f0, *(pres if preact else outs), pooled], logits


def build(name, num_classes):
    if name == "MobileNetV2":
        return MobileNetV2(6, 0.5, num_classes)
    if name == "ShuffleV1":
        return ShuffleV1(num_classes)
    if name == "ShuffleV2":
        return ShuffleV2(num_classes)
    raise ValueError(f"unknown mobile model {name}")
