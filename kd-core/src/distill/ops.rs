//! Tensor operations the distillers share, each as PyTorch computes it (values and gradients).

use tch::Tensor;

/// PyTorch's `F.normalize(x, p=2, dim=dim)`: `x / max(‖x‖₂, 1e-12)` along `dim`.
pub fn l2_normalize(x: &Tensor, dim: i64) -> Tensor {
    x / x.norm_scalaropt_dim(2, [dim], true).clamp_min(1e-12)
}

/// The square maps `a` and `b` (`[B, C, H, H]`) at the same side: the larger one
/// adaptive-average-pooled down to the smaller one's side, as the reference's AT, NST, VID, FT
/// and FSP do before comparing maps of different resolutions.
pub fn match_sides(a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    let (ha, hb) = (a.size()[2], b.size()[2]);
    if ha > hb {
        (a.adaptive_avg_pool2d([hb, hb]), b.shallow_clone())
    } else if ha < hb {
        (a.shallow_clone(), b.adaptive_avg_pool2d([ha, ha]))
    } else {
        (a.shallow_clone(), b.shallow_clone())
    }
}

/// The spatial attention map of AT and FT: the channel mean of `f²`, flattened to `[B, H·W]`
/// and L2-normalised per sample (`F.normalize(f.pow(2).mean(1).view(B, -1))`).
pub fn attention_map(f: &Tensor) -> Tensor {
    let b = f.size()[0];
    l2_normalize(&f.square().mean_dim(1, false, None).reshape([b, -1]), 1)
}

/// `[B, C, H, W]` → `[B, C, H·W]`.
pub fn flatten_spatial(f: &Tensor) -> Tensor {
    let s = f.size();
    f.reshape([s[0], s[1], -1])
}

/// LeakyReLU with slope 0.1 (FT's paraphraser and translator): `x` where `x > 0`, else `0.1·x`,
/// with PyTorch's gradient (0.1 at 0).
pub fn leaky_relu_01(x: &Tensor) -> Tensor {
    x.where_self(&x.gt(0.0), &(x * 0.1))
}
