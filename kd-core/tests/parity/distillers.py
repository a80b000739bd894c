#!/usr/bin/env python3
"""Writes the fixture of kd-core/tests/distillers.rs: RepDistiller's distiller losses computed
with PyTorch on fixed features, with their gradients with respect to the student's features.

    .venv/bin/python kd-core/tests/parity/distillers.py kd-core/tests/fixtures

writes DIR/distillers.npz (make.py's writer), everything in float64. Each case `C` holds:

  * `C.s<i>`, `C.t<i>`: the student's and the teacher's feature lists (a batch of 6; `[C, H, W]`
    maps, the pooled vector last), seeded randn;
  * `C.param.<name>`: the distiller's modules' state_dict before the forward (BatchNorm moved
    away from 1/0), under the names kd gives them; BatchNorm runs in train mode;
  * `C.loss`: the loss; `C.grad<i>`: d loss / d `C.s<i>` (zeros where the loss does not reach).

The losses are written here from the descriptions in kd-codebases.md B.6–B.7 and RepDistiller's
code semantics (`distiller_zoo/`, `crd/`, `models/util.py`): FitNet (the four ConvReg cases), AT,
SP, CC, VID, RKD, PKT, AB (init loss), FT (main and init losses), FSP (init loss), NST; CRD over
two steps (`crd.step<k>.*`: the draws, features, loss, gradient, and after the step the memories
and the normalisation constants).
"""

import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make  # noqa: E402

B = 6
DT = torch.float64
OUT = {}

# Student and teacher features of a same-width pair and of a cross pair (different channels,
# sides and a different number of stages).
SAME_S = [(4, 8, 8), (4, 8, 8), (8, 4, 4), (16, 2, 2), (16,)]
SAME_T = [(4, 8, 8), (4, 8, 8), (8, 4, 4), (16, 2, 2), (16,)]
CROSS_S = [(3, 8, 8), (6, 8, 8), (10, 4, 4), (12, 2, 2), (12,)]
CROSS_T = [(5, 4, 4), (7, 4, 4), (9, 4, 4), (11, 2, 2), (13, 1, 1), (13,)]


def features(shapes, gen):
    return [torch.randn((B,) + s, generator=gen, dtype=DT) for s in shapes]


def perturb_bn(module, gen):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.empty_like(m.weight).uniform_(0.8, 1.2, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen, dtype=DT))


def record(name, s_shapes, t_shapes, loss_fn, module=None, seed=0):
    """Runs `loss_fn(student feats, teacher feats)` and stores the case."""
    gen = torch.Generator().manual_seed(1000 + seed)
    torch.manual_seed(seed)
    if module is not None:
        module = module().to(DT)
        perturb_bn(module, gen)
        module.train()
        for k, v in module.state_dict().items():
            if not k.endswith("num_batches_tracked"):
                OUT[f"{name}.param.{k}"] = v.clone()
    fs = [f.requires_grad_(True) for f in features(s_shapes, gen)]
    ft = features(t_shapes, gen)
    loss = loss_fn(fs, ft) if module is None else loss_fn(module, fs, ft)
    loss.backward()
    for i, f in enumerate(fs):
        OUT[f"{name}.s{i}"] = f.detach()
        OUT[f"{name}.grad{i}"] = f.grad if f.grad is not None else torch.zeros_like(f)
    for i, f in enumerate(ft):
        OUT[f"{name}.t{i}"] = f
    OUT[f"{name}.loss"] = loss.detach().reshape(1)


# ----------------------------------------------------------------------------- shared pieces


def pool_pair(a, b):
    ha, hb = a.shape[2], b.shape[2]
    if ha > hb:
        a = F.adaptive_avg_pool2d(a, (hb, hb))
    elif ha < hb:
        b = F.adaptive_avg_pool2d(b, (ha, ha))
    return a, b


def attention(f):
    return F.normalize(f.pow(2).mean(1).view(f.size(0), -1))


class ConvReg(nn.Module):
    def __init__(self, s, t, relu=True):
        super().__init__()
        (cs, hs), (ct, ht) = (s[0], s[1]), (t[0], t[1])
        if hs == 2 * ht:
            self.conv = nn.Conv2d(cs, ct, 3, stride=2, padding=1)
        elif 2 * hs == ht:
            self.conv = nn.ConvTranspose2d(cs, ct, 4, stride=2, padding=1)
        else:
            self.conv = nn.Conv2d(cs, ct, 1 + hs - ht)
        self.bn = nn.BatchNorm2d(ct)
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class Embed(nn.Module):
    def __init__(self, d_in, d_out, normalize):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.normalize = normalize

    def forward(self, x):
        x = self.linear(x.view(x.shape[0], -1))
        return x / x.pow(2).sum(1, keepdim=True).pow(0.5) if self.normalize else x


# ----------------------------------------------------------------------------- the methods


def fitnet(layer, s, t):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.regressor = ConvReg(s[layer], t[layer])

    return M, lambda m, fs, ft: F.mse_loss(m.regressor(fs[layer]), ft[layer])


def at_loss(fs, ft):
    return sum((attention(a) - attention(b)).pow(2).mean() for a, b in (pool_pair(x, y) for x, y in zip(fs[1:-1], ft[1:-1])))


def sp_loss(fs, ft):
    a, b = fs[-2], ft[-2]
    g_s = F.normalize(a.view(B, -1) @ a.view(B, -1).t())
    g_t = F.normalize(b.view(B, -1) @ b.view(B, -1).t())
    return ((g_t - g_s) ** 2).sum() / (B * B)


def cc(s, t):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_s = Embed(math.prod(s[-1]), 7, False)
            self.embed_t = Embed(math.prod(t[-1]), 7, False)

    def loss(m, fs, ft):
        d = (m.embed_s(fs[-1]) - m.embed_t(ft[-1])).abs()
        return (d[:-1] * d[1:]).sum(1).mean()

    return M, loss


class VidLayer(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.regressor = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 1, bias=False),
        )
        # Moved away from the start (log(e^(5 − 1e-5) − 1)) so that the variance matters.
        self.log_scale = nn.Parameter(torch.linspace(-1.0, 2.0, c_out))

    def forward(self, x, y):
        x, y = pool_pair(x, y)
        var = (torch.log(1.0 + torch.exp(self.log_scale)) + 1e-5).view(1, -1, 1, 1)
        return (0.5 * ((self.regressor(x) - y) ** 2 / var + torch.log(var))).mean()


def vid(s, t):
    pairs = list(zip(s[1:-1], t[1:-1]))

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.vid = nn.ModuleList([VidLayer(a[0], b[0]) for a, b in pairs])

    return M, lambda m, fs, ft: sum(l(a, b) for l, a, b in zip(m.vid, fs[1:-1], ft[1:-1]))


def rkd_loss(fs, ft, w_d=25.0, w_a=50.0):
    def pdist(e):
        sq = e.pow(2).sum(1)
        d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=1e-12).sqrt().clone()
        d[range(len(e)), range(len(e))] = 0
        return d / d[d > 0].mean()

    def angle(e):
        v = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
        return torch.bmm(v, v.transpose(1, 2)).view(-1)

    s, t = fs[-1].view(B, -1), ft[-1].view(B, -1)
    with torch.no_grad():
        d_t, a_t = pdist(t), angle(t)
    return w_d * F.smooth_l1_loss(pdist(s), d_t) + w_a * F.smooth_l1_loss(angle(s), a_t)


def pkt_loss(fs, ft, eps=1e-7):
    def prob(x):
        x = x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)
        x = torch.where(torch.isnan(x), torch.zeros_like(x), x)
        sim = (x @ x.t() + 1.0) / 2.0
        return sim / sim.sum(1, keepdim=True)

    p_s, p_t = prob(fs[-1].view(B, -1)), prob(ft[-1].view(B, -1))
    return (p_t * torch.log((p_t + eps) / (p_s + eps))).mean()


def ab(s, t, margin=1.0):
    pairs = list(zip(s[1:-1], t[1:-1]))
    same = [a[0] == b[0] and a[1] == b[1] for a, b in pairs]

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.connector = nn.ModuleDict(
                {str(i): ConvReg(a, b, relu=False) for i, ((a, b), eq) in enumerate(zip(pairs, same)) if not eq}
            )

    def loss(m, fs, ft):
        n = len(pairs)
        total = 0
        for i, (x, y) in enumerate(zip(fs[1:-1], ft[1:-1])):
            g = x if same[i] else m.connector[str(i)](x)
            l2 = ((g + margin) ** 2 * ((g > -margin) & (y <= 0)).to(DT) + (g - margin) ** 2 * ((g <= margin) & (y > 0)).to(DT)).abs().sum()
            total = total + 2.0 ** (i - n + 1) * l2 / B / 1000 * 3
        return total

    return M, loss


def conv3(a, b):
    return nn.Conv2d(a, b, 3, 1, 1)


class Paraphraser(nn.Module):
    def __init__(self, c):
        super().__init__()
        f = int(c * 0.5)
        lr = lambda: nn.LeakyReLU(0.1)  # noqa: E731
        self.encoder = nn.Sequential(conv3(c, c), nn.Sequential(), lr(), conv3(c, f), nn.Sequential(), lr(), conv3(f, f), nn.Sequential(), lr())
        t3 = lambda a, b: nn.ConvTranspose2d(a, b, 3, 1, 1)  # noqa: E731
        self.decoder = nn.Sequential(t3(f, f), nn.Sequential(), lr(), t3(f, c), nn.Sequential(), lr(), t3(c, c), nn.Sequential(), lr())


class Translator(nn.Module):
    def __init__(self, cs, ct):
        super().__init__()
        f = int(ct * 0.5)
        lr = lambda: nn.LeakyReLU(0.1)  # noqa: E731
        self.encoder = nn.Sequential(conv3(cs, cs), nn.BatchNorm2d(cs), lr(), conv3(cs, f), nn.BatchNorm2d(f), lr(), conv3(f, f), nn.BatchNorm2d(f), lr())


def ft(s, t):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.paraphraser = Paraphraser(t[-2][0])
            self.translator = Translator(s[-2][0], t[-2][0])

    def main(m, fs, ft_):
        with torch.no_grad():
            factor_t = m.paraphraser.encoder(ft_[-2])
        a, b = pool_pair(m.translator.encoder(fs[-2]), factor_t)
        return (attention(a) - attention(b)).abs().mean()

    def init(m, fs, ft_):
        rec = m.paraphraser.decoder(m.paraphraser.encoder(ft_[-2]))
        # The student takes no part; a zero term keeps the case's gradients defined.
        return F.mse_loss(rec, ft_[-2]) + 0 * fs[0].sum()

    return M, main, init


def fsp_loss(fs, ft):
    def matrices(g):
        out = []
        for bot, top in zip(g[:-1], g[1:]):
            bot, top = pool_pair(bot, top)
            prod = bot.unsqueeze(1).flatten(3) * top.unsqueeze(2).flatten(3)
            out.append(prod.mean(-1))
        return out

    return sum((a - b).pow(2).mean() for a, b in zip(matrices(fs[:-1]), matrices(ft[:-1])))


def nst_loss(fs, ft):
    def kernel(a, b):
        return (a.unsqueeze(1) * b.unsqueeze(2)).sum(-1).pow(2)

    total = 0
    for x, y in zip(fs[1:-1], ft[1:-1]):
        x, y = pool_pair(x, y)
        x = F.normalize(x.view(B, x.shape[1], -1), dim=2)
        y = F.normalize(y.view(B, y.shape[1], -1), dim=2)
        total = total + kernel(y, y).mean().detach() + kernel(x, x).mean() - 2 * kernel(x, y).mean()
    return total


# ----------------------------------------------------------------------------- CRD


def crd_cases(n=20, k=5, dim=8, t=0.07, mom=0.5):
    gen = torch.Generator().manual_seed(77)
    torch.manual_seed(7)
    embed_s, embed_t = Embed(12, dim, True).to(DT), Embed(13, dim, True).to(DT)
    stdv = 1.0 / math.sqrt(dim / 3)
    mem_s = (torch.rand(n, dim, generator=gen, dtype=DT) * 2 - 1) * stdv
    mem_t = (torch.rand(n, dim, generator=gen, dtype=DT) * 2 - 1) * stdv
    for name, mod in [("embed_s", embed_s), ("embed_t", embed_t)]:
        for key, v in mod.state_dict().items():
            OUT[f"crd.param.{name}.{key}"] = v.clone()
    OUT["crd.param.contrast.memory_v1"] = mem_s.clone()
    OUT["crd.param.contrast.memory_v2"] = mem_t.clone()
    OUT["crd.param.contrast.z"] = torch.tensor([-1.0, -1.0], dtype=DT)
    labels = torch.arange(n) % 4
    z = None

    def nce(x):
        m = x.size(1) - 1
        pn = 1 / float(n)
        pos = x.select(1, 0)
        d1 = torch.log(pos / (pos + m * pn + 1e-7))
        d0 = torch.log((m * pn) / (x.narrow(1, 1, m) + m * pn + 1e-7))
        return -(d1.sum(0) + d0.view(-1, 1).sum(0)) / x.shape[0]

    for step in range(2):
        idx = torch.randperm(n, generator=gen)[:B]
        sample = torch.empty(B, k + 1, dtype=torch.int64)
        for i, j in enumerate(idx):
            others = torch.nonzero(labels != labels[j]).view(-1)
            sample[i, 0] = j
            sample[i, 1:] = others[torch.randperm(len(others), generator=gen)[:k]]
        f_s = torch.randn(B, 12, generator=gen, dtype=DT).requires_grad_(True)
        f_t = torch.randn(B, 13, generator=gen, dtype=DT)
        v1, v2 = embed_s(f_s), embed_t(f_t)
        w1 = mem_s.index_select(0, sample.view(-1)).view(B, k + 1, dim)
        out_t = torch.exp(torch.bmm(w1, v2.view(B, dim, 1)) / t)
        w2 = mem_t.index_select(0, sample.view(-1)).view(B, k + 1, dim)
        out_s = torch.exp(torch.bmm(w2, v1.view(B, dim, 1)) / t)
        if z is None:
            z = (out_s.mean().item() * n, out_t.mean().item() * n)
        out_s, out_t = out_s / z[0], out_t / z[1]
        with torch.no_grad():
            for mem, v in [(mem_s, v1), (mem_t, v2)]:
                pos = mem.index_select(0, idx) * mom + v * (1 - mom)
                mem.index_copy_(0, idx, pos / pos.pow(2).sum(1, keepdim=True).pow(0.5))
        loss = (nce(out_s) + nce(out_t)).reshape(1)
        loss.backward()
        p = f"crd.step{step}"
        OUT[f"{p}.rows"] = idx
        OUT[f"{p}.sample"] = sample
        OUT[f"{p}.s"] = f_s.detach()
        OUT[f"{p}.t"] = f_t
        OUT[f"{p}.loss"] = loss.detach()
        OUT[f"{p}.grad"] = f_s.grad
        OUT[f"{p}.memory_v1"] = mem_s.clone()
        OUT[f"{p}.memory_v2"] = mem_t.clone()
        OUT[f"{p}.z"] = torch.tensor(z, dtype=DT)
        embed_s.zero_grad()
        embed_t.zero_grad()


def main():
    torch.set_num_threads(1)
    for name, layer, s, t in [
        ("fitnet_same", 2, [(4, 8, 8), (4, 8, 8), (5, 4, 4), (8, 2, 2), (8,)], [(4, 8, 8), (6, 8, 8), (7, 4, 4), (8, 2, 2), (8,)]),
        ("fitnet_down", 1, [(4, 8, 8), (4, 8, 8), (5, 4, 4), (8, 2, 2), (8,)], [(4, 8, 8), (6, 4, 4), (7, 4, 4), (8, 2, 2), (8,)]),
        ("fitnet_up", 2, [(4, 8, 8), (4, 8, 8), (5, 2, 2), (8, 2, 2), (8,)], [(4, 8, 8), (6, 8, 8), (7, 4, 4), (8, 2, 2), (8,)]),
        ("fitnet_kernel", 1, [(4, 8, 8), (4, 7, 7), (5, 4, 4), (8, 2, 2), (8,)], [(4, 8, 8), (6, 4, 4), (7, 4, 4), (8, 2, 2), (8,)]),
    ]:
        m, loss = fitnet(layer, s, t)
        record(name, s, t, loss, m, seed=layer)
    seeds = iter(range(10, 100))
    for tag, s, t in [("same", SAME_S, SAME_T), ("cross", CROSS_S, CROSS_T)]:
        record(f"at_{tag}", s, t, at_loss, seed=next(seeds))
        record(f"sp_{tag}", s, t, sp_loss, seed=next(seeds))
        record(f"rkd_{tag}", s, t, rkd_loss, seed=next(seeds))
        record(f"pkt_{tag}", s, t, pkt_loss, seed=next(seeds))
        record(f"nst_{tag}", s, t, nst_loss, seed=next(seeds))
        m, loss = cc(s, t)
        record(f"cc_{tag}", s, t, loss, m, seed=next(seeds))
        m, loss = vid(s, t)
        record(f"vid_{tag}", s, t, loss, m, seed=next(seeds))
        m, main_loss, init_loss = ft(s, t)
        record(f"ft_{tag}", s, t, main_loss, m, seed=next(seeds))
        record(f"ftinit_{tag}", s, t, init_loss, m, seed=next(seeds))
    # AB pairs every stage (equal stage counts); a mix of identity and regressed stages.
    ab_s = [(4, 8, 8), (4, 8, 8), (6, 4, 4), (8, 4, 4), (8,)]
    ab_t = [(4, 8, 8), (4, 8, 8), (7, 2, 2), (8, 8, 8), (8,)]
    m, loss = ab(ab_s, ab_t)
    record("ab", ab_s, ab_t, loss, m, seed=5)
    # FSP: the same channels at every level, different sides.
    fsp_s = [(3, 8, 8), (4, 8, 8), (5, 4, 4), (6, 2, 2), (6,)]
    fsp_t = [(3, 8, 8), (4, 4, 4), (5, 4, 4), (6, 4, 4), (6,)]
    record("fsp", fsp_s, fsp_t, fsp_loss, seed=6)
    crd_cases()
    make.write_npz(os.path.join(sys.argv[1], "distillers.npz"), OUT)


if __name__ == "__main__":
    main()
