//! AutoAugment: the learned CIFAR10, IMAGENET and SVHN policies with torchvision 0.10's
//! magnitudes and draws (see the module docs of [`crate::autoaugment`]).

use super::{
    AutoAugmentError, AutoOp, Semantics, apply_op_with, check_image, linspace_f32, with_chain,
};
use crate::rng::Rng;
use crate::shape::ImageShape;
use crate::transform::Transform;
use serde::{Deserialize, Serialize};

/// One entry of a sub-policy: an op, the probability that it fires, and its magnitude bin
/// (`None` for ops without magnitude).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolicyOp {
    /// The operation.
    pub op: AutoOp,
    /// Probability that the op is applied.
    pub probability: f64,
    /// Index into the op's 10 magnitude bins ([`magnitude_v010`]).
    pub magnitude_bin: Option<u8>,
}

/// Two ops applied in order, each with its own probability.
pub type SubPolicy = [PolicyOp; 2];

/// The dataset a policy was learned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoAugmentPolicy {
    /// The ImageNet policy (the reference's choice for Tiny ImageNet and ImageNet).
    ImageNet,
    /// The CIFAR-10 policy (the reference's choice for CIFAR-100).
    Cifar10,
    /// The SVHN policy.
    Svhn,
}

impl AutoAugmentPolicy {
    /// The three policies.
    pub const ALL: [AutoAugmentPolicy; 3] = [
        AutoAugmentPolicy::Cifar10,
        AutoAugmentPolicy::ImageNet,
        AutoAugmentPolicy::Svhn,
    ];

    /// torchvision's name of the policy: `cifar10`, `imagenet` or `svhn`.
    pub const fn name(self) -> &'static str {
        match self {
            AutoAugmentPolicy::ImageNet => "imagenet",
            AutoAugmentPolicy::Cifar10 => "cifar10",
            AutoAugmentPolicy::Svhn => "svhn",
        }
    }

    /// The 25 sub-policies, in torchvision's order (the order `policy_id` indexes).
    pub fn sub_policies(self) -> &'static [SubPolicy; 25] {
        match self {
            AutoAugmentPolicy::ImageNet => &IMAGENET,
            AutoAugmentPolicy::Cifar10 => &CIFAR10,
            AutoAugmentPolicy::Svhn => &SVHN,
        }
    }
}

impl std::fmt::Display for AutoAugmentPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AutoAugmentPolicy {
    type Err = AutoAugmentError;

    /// Parses `cifar10`, `imagenet` or `svhn` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AutoAugmentPolicy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| AutoAugmentError::UnknownPolicy(s.to_string()))
    }
}

const fn e(op: AutoOp, probability: f64, bin: i8) -> PolicyOp {
    PolicyOp {
        op,
        probability,
        magnitude_bin: if bin < 0 { None } else { Some(bin as u8) },
    }
}

use AutoOp::{
    AutoContrast as AC, Brightness as Br, Color as Co, Contrast as Ct, Equalize as Eq,
    Invert as In, Posterize as Po, Rotate as Ro, Sharpness as Sh, ShearX as SX, ShearY as SY,
    Solarize as So, TranslateX as TX, TranslateY as TY,
};

/// No magnitude.
const N: i8 = -1;

static IMAGENET: [SubPolicy; 25] = [
    [e(Po, 0.4, 8), e(Ro, 0.6, 9)],
    [e(So, 0.6, 5), e(AC, 0.6, N)],
    [e(Eq, 0.8, N), e(Eq, 0.6, N)],
    [e(Po, 0.6, 7), e(Po, 0.6, 6)],
    [e(Eq, 0.4, N), e(So, 0.2, 4)],
    [e(Eq, 0.4, N), e(Ro, 0.8, 8)],
    [e(So, 0.6, 3), e(Eq, 0.6, N)],
    [e(Po, 0.8, 5), e(Eq, 1.0, N)],
    [e(Ro, 0.2, 3), e(So, 0.6, 8)],
    [e(Eq, 0.6, N), e(Po, 0.4, 6)],
    [e(Ro, 0.8, 8), e(Co, 0.4, 0)],
    [e(Ro, 0.4, 9), e(Eq, 0.6, N)],
    [e(Eq, 0.0, N), e(Eq, 0.8, N)],
    [e(In, 0.6, N), e(Eq, 1.0, N)],
    [e(Co, 0.6, 4), e(Ct, 1.0, 8)],
    [e(Ro, 0.8, 8), e(Co, 1.0, 2)],
    [e(Co, 0.8, 8), e(So, 0.8, 7)],
    [e(Sh, 0.4, 7), e(In, 0.6, N)],
    [e(SX, 0.6, 5), e(Eq, 1.0, N)],
    [e(Co, 0.4, 0), e(Eq, 0.6, N)],
    [e(Eq, 0.4, N), e(So, 0.2, 4)],
    [e(So, 0.6, 5), e(AC, 0.6, N)],
    [e(In, 0.6, N), e(Eq, 1.0, N)],
    [e(Co, 0.6, 4), e(Ct, 1.0, 8)],
    [e(Eq, 0.8, N), e(Eq, 0.6, N)],
];

static CIFAR10: [SubPolicy; 25] = [
    [e(In, 0.1, N), e(Ct, 0.2, 6)],
    [e(Ro, 0.7, 2), e(TX, 0.3, 9)],
    [e(Sh, 0.8, 1), e(Sh, 0.9, 3)],
    [e(SY, 0.5, 8), e(TY, 0.7, 9)],
    [e(AC, 0.5, N), e(Eq, 0.9, N)],
    [e(SY, 0.2, 7), e(Po, 0.3, 7)],
    [e(Co, 0.4, 3), e(Br, 0.6, 7)],
    [e(Sh, 0.3, 9), e(Br, 0.7, 9)],
    [e(Eq, 0.6, N), e(Eq, 0.5, N)],
    [e(Ct, 0.6, 7), e(Sh, 0.6, 5)],
    [e(Co, 0.7, 7), e(TX, 0.5, 8)],
    [e(Eq, 0.3, N), e(AC, 0.4, N)],
    [e(TY, 0.4, 3), e(Sh, 0.2, 6)],
    [e(Br, 0.9, 6), e(Co, 0.2, 8)],
    [e(So, 0.5, 2), e(In, 0.0, N)],
    [e(Eq, 0.2, N), e(AC, 0.6, N)],
    [e(Eq, 0.2, N), e(Eq, 0.6, N)],
    [e(Co, 0.9, 9), e(Eq, 0.6, N)],
    [e(AC, 0.8, N), e(So, 0.2, 8)],
    [e(Br, 0.1, 3), e(Co, 0.7, 0)],
    [e(So, 0.4, 5), e(AC, 0.9, N)],
    [e(TY, 0.9, 9), e(TY, 0.7, 9)],
    [e(AC, 0.9, N), e(So, 0.8, 3)],
    [e(Eq, 0.8, N), e(In, 0.1, N)],
    [e(TY, 0.7, 9), e(AC, 0.9, N)],
];

static SVHN: [SubPolicy; 25] = [
    [e(SX, 0.9, 4), e(In, 0.2, N)],
    [e(SY, 0.9, 8), e(In, 0.7, N)],
    [e(Eq, 0.6, N), e(So, 0.6, 6)],
    [e(In, 0.9, N), e(Eq, 0.6, N)],
    [e(Eq, 0.6, N), e(Ro, 0.9, 3)],
    [e(SX, 0.9, 4), e(AC, 0.8, N)],
    [e(SY, 0.9, 8), e(In, 0.4, N)],
    [e(SY, 0.9, 5), e(So, 0.2, 6)],
    [e(In, 0.9, N), e(AC, 0.8, N)],
    [e(Eq, 0.6, N), e(Ro, 0.9, 3)],
    [e(SX, 0.9, 4), e(So, 0.3, 3)],
    [e(SY, 0.8, 8), e(In, 0.7, N)],
    [e(Eq, 0.9, N), e(TY, 0.6, 6)],
    [e(In, 0.9, N), e(Eq, 0.6, N)],
    [e(Ct, 0.3, 3), e(Ro, 0.8, 4)],
    [e(In, 0.8, N), e(TY, 0.0, 2)],
    [e(SY, 0.7, 6), e(So, 0.4, 8)],
    [e(In, 0.6, N), e(Ro, 0.8, 4)],
    [e(SY, 0.3, 7), e(TX, 0.9, 3)],
    [e(SX, 0.1, 6), e(In, 0.6, N)],
    [e(So, 0.7, 2), e(TY, 0.6, 7)],
    [e(SY, 0.8, 4), e(In, 0.8, N)],
    [e(SX, 0.7, 9), e(TY, 0.8, 3)],
    [e(SY, 0.8, 5), e(AC, 0.7, N)],
    [e(SX, 0.7, 2), e(In, 0.1, N)],
];

/// Number of magnitude bins of torchvision 0.10's AutoAugment.
const V010_BINS: usize = 10;

/// torchvision 0.10's AutoAugment magnitude for `op` at `bin` (0..10), as the float32 value
/// its table holds, and whether the op is signed (gets a random sign). `None` for ops without
/// magnitude (AutoContrast, Equalize, Invert, Identity) and for `bin >= 10`.
///
/// Translate magnitudes are fractions of the image size (applied as `int(size · m)`), Posterize
/// magnitudes are bit counts, Solarize magnitudes thresholds from 256 down to 0.
pub fn magnitude_v010(op: AutoOp, bin: usize) -> Option<(f32, bool)> {
    if bin >= V010_BINS {
        return None;
    }
    let lin = |a: f64, b: f64| linspace_f32(a, b, V010_BINS, bin);
    Some(match op {
        AutoOp::ShearX | AutoOp::ShearY => (lin(0.0, 0.3), true),
        AutoOp::TranslateX | AutoOp::TranslateY => (lin(0.0, 150.0 / 331.0), true),
        AutoOp::Rotate => (lin(0.0, 30.0), true),
        AutoOp::Brightness | AutoOp::Color | AutoOp::Contrast | AutoOp::Sharpness => {
            (lin(0.0, 0.9), true)
        }
        AutoOp::Posterize => (
            [8.0, 8.0, 7.0, 7.0, 6.0, 6.0, 5.0, 5.0, 4.0, 4.0][bin],
            false,
        ),
        AutoOp::Solarize => (lin(256.0, 0.0), false),
        AutoOp::Identity | AutoOp::AutoContrast | AutoOp::Equalize | AutoOp::Invert => return None,
    })
}

/// The random decisions of one AutoAugment call, in the order torchvision 0.10's `get_params`
/// draws them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoAugmentDecision {
    /// The sub-policy, `torch.randint(25)`.
    pub policy_id: usize,
    /// One uniform [0, 1) draw per op, `torch.rand(2)`; op `i` fires when `probs[i] <=` its
    /// probability.
    pub probs: [f32; 2],
    /// One fair bit per op, `torch.randint(2, (2,))`; 0 negates a signed magnitude.
    pub signs: [u8; 2],
}

/// torchvision 0.10's `AutoAugment(policy, interpolation=NEAREST, fill)` on one uint8 image.
///
/// Every call draws the five numbers of [`AutoAugmentDecision`] whatever the image, so
/// clones of one [`Rng`] give every image of a batch the same sub-policy, firing decisions and
/// signs (the reference's per-batch application).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoAugment {
    policy: AutoAugmentPolicy,
    fill: u8,
}

impl AutoAugment {
    /// AutoAugment with `policy` and black fill, the reference's configuration.
    pub const fn new(policy: AutoAugmentPolicy) -> Self {
        AutoAugment { policy, fill: 0 }
    }

    /// The same with `fill` for the pixels geometric ops bring in (all channels).
    pub const fn with_fill(mut self, fill: u8) -> Self {
        self.fill = fill;
        self
    }

    /// The policy.
    pub const fn policy(&self) -> AutoAugmentPolicy {
        self.policy
    }

    /// The fill value.
    pub const fn fill(&self) -> u8 {
        self.fill
    }

    /// Draws one call's decisions: policy id, two probabilities, two signs, in this order.
    pub fn draw(&self, rng: &mut Rng) -> AutoAugmentDecision {
        let policy_id = rng.below(25) as usize;
        let probs = [rng.next_f32(), rng.next_f32()];
        let signs = [rng.below(2) as u8, rng.below(2) as u8];
        AutoAugmentDecision {
            policy_id,
            probs,
            signs,
        }
    }

    /// The ops a decision applies, in order, with their signed magnitudes as 0.10's
    /// `_apply_op` receives them (`0.0` for ops without magnitude); `None` for an op that does
    /// not fire.
    ///
    /// # Panics
    /// If `decision.policy_id >= 25`.
    pub fn ops(&self, decision: &AutoAugmentDecision) -> [Option<(AutoOp, f64)>; 2] {
        let sub = &self.policy.sub_policies()[decision.policy_id];
        std::array::from_fn(|i| {
            let entry = sub[i];
            // torch compares the float32 draw with the Python float after casting it to f32.
            if decision.probs[i] > entry.probability as f32 {
                return None;
            }
            let magnitude = match entry
                .magnitude_bin
                .and_then(|b| magnitude_v010(entry.op, b as usize))
            {
                None => 0.0,
                Some((m, signed)) => {
                    let m = m as f64;
                    if signed && decision.signs[i] == 0 {
                        -m
                    } else {
                        m
                    }
                }
            };
            Some((entry.op, magnitude))
        })
    }

    /// Applies the ops of `decision` to `input`, writing `out`.
    ///
    /// # Panics
    /// If the image has neither 1 nor 3 channels or the buffers do not match `shape`.
    pub fn apply_decision(
        &self,
        decision: &AutoAugmentDecision,
        input: &[u8],
        shape: ImageShape,
        out: &mut [u8],
    ) {
        check_image(input, shape, out);
        let ops = self.ops(decision);
        let fill = self.fill;
        with_chain(input, out, |chain| {
            for (op, m) in ops.into_iter().flatten() {
                chain.push(|src, dst| apply_op_with(Semantics::V010, op, m, fill, src, shape, dst));
            }
        });
    }
}

impl Transform for AutoAugment {
    fn output_shape(&self, input: ImageShape) -> ImageShape {
        input
    }

    fn apply(&self, input: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        let decision = self.draw(rng);
        self.apply_decision(&decision, input, shape, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_parse_and_reject() {
        for p in AutoAugmentPolicy::ALL {
            assert_eq!(p.name().parse::<AutoAugmentPolicy>().unwrap(), p);
            assert_eq!(
                p.name()
                    .to_uppercase()
                    .parse::<AutoAugmentPolicy>()
                    .unwrap(),
                p
            );
        }
        let err = "cifar100".parse::<AutoAugmentPolicy>().unwrap_err();
        assert_eq!(err, AutoAugmentError::UnknownPolicy("cifar100".into()));
        assert!(err.to_string().contains("\"cifar100\""));
    }

    #[test]
    fn policy_serde_names_are_torchvisions() {
        for p in AutoAugmentPolicy::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
    }

    #[test]
    fn ops_without_magnitude_have_no_bin_and_the_others_do() {
        for p in AutoAugmentPolicy::ALL {
            for sub in p.sub_policies() {
                for entry in sub {
                    let has = magnitude_v010(entry.op, 0).is_some();
                    assert_eq!(entry.magnitude_bin.is_some(), has, "{p} {entry:?}");
                    assert!((0.0..=1.0).contains(&entry.probability));
                }
            }
        }
    }

    #[test]
    fn an_op_fires_iff_its_draw_is_at_most_its_probability() {
        let aa = AutoAugment::new(AutoAugmentPolicy::Cifar10);
        // Sub-policy 0: Invert p 0.1, Contrast p 0.2 bin 6.
        let d = |p0: f32, p1: f32| AutoAugmentDecision {
            policy_id: 0,
            probs: [p0, p1],
            signs: [1, 0],
        };
        assert_eq!(
            aa.ops(&d(0.1, 0.9)).map(|o| o.map(|(op, _)| op)),
            [Some(AutoOp::Invert), None]
        );
        let ops = aa.ops(&d(0.5, 0.2));
        assert_eq!(ops[0], None);
        let (op, m) = ops[1].unwrap();
        assert_eq!(op, AutoOp::Contrast);
        // Bin 6 of linspace(0, 0.9, 10) is 0.6; sign 0 negates.
        assert!((m + 0.6).abs() < 1e-6, "{m}");
    }
}
