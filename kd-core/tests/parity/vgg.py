"""RepDistiller's CIFAR VGGs (with BatchNorm) in PyTorch, for parity fixtures (see make.py).

Written from kd-codebases.md B.4 with the reference's module names, so the `state_dict` keys
are the ones kd uses: `block0` … `block4` are `nn.Sequential`s of conv3×3 (bias) → BN → ReLU
triples whose final ReLU is left out (conv at index 3i, BN at 3i+1), then `classifier`.
Max-pooling follows blocks 0–2, and block 3 only on 64×64 inputs; the head is a global
average pool and `Linear(512, classes)`.
"""

import math

import torch.nn.functional as F
from torch import nn

WIDTHS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3],
    "vgg19": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def _block(c_in, widths):
    mods = []
    for w in widths:
        if mods:
            mods.append(nn.ReLU(inplace=True))
        mods += [nn.Conv2d(c_in, w, 3, padding=1), nn.BatchNorm2d(w)]
        c_in = w
    return nn.Sequential(*mods)


class Vgg(nn.Module):
    def __init__(self, widths, num_classes):
        super().__init__()
        c_in = 3
        for b, ws in enumerate(widths):
            setattr(self, f"block{b}", _block(c_in, ws))
            c_in = ws[-1]
        self.classifier = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x, is_feat=False, preact=False):
        side = x.shape[2]
        x = F.relu(self.block0(x))
        feats, pres = [x], [x]
        for b in range(1, 5):
            if b < 4 or side == 64:
                x = F.max_pool2d(x, 2, 2)
            pre = getattr(self, f"block{b}")(x)
            x = F.relu(pre)
            feats.append(x)
            pres.append(pre)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        feats.append(pooled)
        pres.append(pooled)
        logits = self.classifier(pooled)
        if not is_feat:
            return logits
        return (pres if preact else feats), logits


def build(name, num_classes):
    if name not in WIDTHS:
        raise ValueError(f"unknown VGG {name}")
    return Vgg(WIDTHS[name], num_classes)
