//! Summaries of a sample: mean ± sample std (over seeds), fixed-bin histograms, and a Gaussian
//! kernel density estimate (for the TLD / entropy density plots of kd-codebases.md A.9).

use crate::error::{MetricsError, Result};
use crate::rows::reject_non_finite_f64;
use std::fmt;

/// The mean and the sample standard deviation of a set of runs (e.g. one metric over seeds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanStd {
    /// How many values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// The sample standard deviation `√(Σ(v − mean)²/(n − 1))` (`numpy.std(ddof=1)`,
    /// `torch.std`); `None` for a single value, where it is undefined.
    pub std: Option<f64>,
}

impl fmt::Display for MeanStd {
    /// `mean ± std` with the formatter's precision (e.g. `{:.2}` gives `75.61 ± 0.23`); a single
    /// value prints as its mean alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let precision = f.precision();
        let write = |f: &mut fmt::Formatter<'_>, v: f64| match precision {
            Some(p) => write!(f, "{v:.p$}"),
            None => write!(f, "{v}"),
        };
        write(f, self.mean)?;
        if let Some(std) = self.std {
            f.write_str(" ± ")?;
            write(f, std)?;
        }
        Ok(())
    }
}

/// The mean and sample standard deviation (`n − 1` in the denominator) of `values`, in two passes.
///
/// # Errors
/// No values, or a non-finite one.
pub fn mean_std(values: &[f64]) -> Result<MeanStd> {
    if values.is_empty() {
        return Err(MetricsError::TooFewSamples {
            what: "a mean",
            n: 0,
            min: 1,
        });
    }
    reject_non_finite_f64("values", values)?;
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = (n > 1).then(|| {
        let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
        (squares / (n - 1) as f64).sqrt()
    });
    Ok(MeanStd { n, mean, std })
}

/// A histogram with equal-width bins over `[lo, hi]`, binned as `numpy.histogram(values, bins,
/// range=(lo, hi))`: each bin is half-open `[e_i, e_{i+1})` except the last, which includes `hi`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The bin edges, `numpy.linspace(lo, hi, bins + 1)`.
    pub edges: Vec<f64>,
    /// How many values fell in each bin.
    pub counts: Vec<u64>,
    /// How many values fell outside `[lo, hi]`, NaN included.
    pub outside: u64,
}

impl Histogram {
    /// Bins `values` into `bins` equal-width bins over `[lo, hi]`. Values outside the range, and
    /// NaN, are counted in [`Histogram::outside`] rather than in a bin, as numpy leaves them out.
    ///
    /// # Errors
    /// Zero bins, a bound that is not finite, `lo >= hi`, or `hi − lo` overflowing.
    pub fn new(values: &[f64], bins: usize, lo: f64, hi: f64) -> Result<Self> {
        if bins == 0 {
            return Err(MetricsError::InvalidParameter {
                name: "bins",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        if !(lo < hi && (hi - lo).is_finite()) {
            return Err(MetricsError::InvalidParameter {
                name: "range",
                value: format!("({lo}, {hi})"),
                expected: "finite with lo < hi and a finite width",
            });
        }
        let step = (hi - lo) / bins as f64;
        let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step + lo).collect();
        edges[bins] = hi;
        let mut counts = vec![0u64; bins];
        let mut outside = 0;
        for &v in values {
            if v >= lo && v <= hi {
                counts[bin_index(v, lo, hi, &edges)] += 1;
            } else {
                outside += 1;
            }
        }
        Ok(Self {
            edges,
            counts,
            outside,
        })
    }

    /// `counts[i] / (width_i · Σ counts)`, `numpy.histogram(..., density=True)`: a piecewise
    /// constant density that integrates to 1 over `[lo, hi]`. All zeros when no value fell in
    /// range (numpy gives NaN).
    pub fn density(&self) -> Vec<f64> {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return vec![0.0; self.counts.len()];
        }
        self.counts
            .iter()
            .zip(self.edges.windows(2))
            .map(|(&c, e)| c as f64 / (e[1] - e[0]) / total as f64)
            .collect()
    }
}

/// numpy's bin of an in-range `v`: the scaled position, then a one-step correction against the
/// edges, since the scaling can be off by an ULP at an edge.
fn bin_index(v: f64, lo: f64, hi: f64, edges: &[f64]) -> usize {
    let bins = edges.len() - 1;
    let mut i = (((v - lo) / (hi - lo)) * bins as f64) as usize;
    if i >= bins {
        i = bins - 1;
    }
    if v < edges[i] {
        i -= 1;
    } else if v >= edges[i + 1] && i != bins - 1 {
        i += 1;
    }
    i
}

/// A one-dimensional Gaussian kernel density estimate with Scott's-rule bandwidth, as
/// `scipy.stats.gaussian_kde(data)`:
/// `f(x) = (1/n) Σ_i φ((x − x_i)/h) / h`, `h = n^(−1/5) · s`, with `s` the sample standard
/// deviation (`n − 1`) of the data and φ the standard normal density.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianKde {
    data: Vec<f64>,
    bandwidth: f64,
}

impl GaussianKde {
    /// The estimate of `data`.
    ///
    /// # Errors
    /// Fewer than two values, a non-finite one, or constant data (a zero bandwidth; scipy raises
    /// a singular-matrix error).
    pub fn new(data: &[f64]) -> Result<Self> {
        if data.len() < 2 {
            return Err(MetricsError::TooFewSamples {
                what: "a kernel density estimate",
                n: data.len(),
                min: 2,
            });
        }
        let stats = mean_std(data)?;
        let std = stats.std.unwrap_or(0.0);
        if std == 0.0 {
            return Err(MetricsError::ConstantInput {
                what: "data",
                statistic: "a kernel density bandwidth",
            });
        }
        Ok(Self {
            data: data.to_vec(),
            bandwidth: Self::scott_factor(data.len()) * std,
        })
    }

    /// Scott's factor `n^(−1/5)`, the ratio of the bandwidth to the data's standard deviation.
    pub fn scott_factor(n: usize) -> f64 {
        (n as f64).powf(-0.2)
    }

    /// The kernel's standard deviation `h`.
    pub fn bandwidth(&self) -> f64 {
        self.bandwidth
    }

    /// The estimated density at `x`.
    pub fn density(&self, x: f64) -> f64 {
        let h = self.bandwidth;
        let norm = 1.0 / (h * (2.0 * std::f64::consts::PI).sqrt() * self.data.len() as f64);
        norm * self
            .data
            .iter()
            .map(|&d| (-0.5 * ((x - d) / h).powi(2)).exp())
            .sum::<f64>()
    }

    /// The estimated density at each of `xs`.
    pub fn densities(&self, xs: &[f64]) -> Vec<f64> {
        xs.iter().map(|&x| self.density(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let s = mean_std(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.mean, 2.5);
        assert!((s.std.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(format!("{s:.2}"), "2.50 ± 1.29");
        let one = mean_std(&[7.0]).unwrap();
        assert_eq!(one.std, None);
        assert_eq!(format!("{one:.1}"), "7.0");
        assert!(mean_std(&[]).is_err());
        assert!(mean_std(&[1.0, f64::NAN]).is_err());
    }

    #[test]
    fn histogram_edges_and_outside() {
        let h =
            Histogram::new(&[0.0, 0.5, 1.0, 1.5, 2.0, -0.1, 2.1, f64::NAN], 4, 0.0, 2.0).unwrap();
        assert_eq!(h.edges, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(h.counts, vec![1, 1, 1, 2]);
        assert_eq!(h.outside, 3);
        let d = h.density();
        let integral: f64 = d.iter().map(|v| v * 0.5).sum();
        assert!((integral - 1.0).abs() < 1e-15);
        assert!(Histogram::new(&[], 0, 0.0, 1.0).is_err());
        assert!(Histogram::new(&[], 3, 1.0, 1.0).is_err());
        assert!(Histogram::new(&[], 3, -1e308, 1e308).is_err());
        assert!(Histogram::new(&[], 3, f64::NAN, 1.0).is_err());
        assert_eq!(
            Histogram::new(&[5.0], 2, 0.0, 1.0).unwrap().density(),
            vec![0.0; 2]
        );
    }

    #[test]
    fn kde_of_two_points() {
        let kde = GaussianKde::new(&[-1.0, 1.0]).unwrap();
        let h = 2f64.powf(-0.2) * 2f64.sqrt();
        assert!((kde.bandwidth() - h).abs() < 1e-15);
        let phi = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let want = (phi(1.0 / h) + phi(1.0 / h)) / (2.0 * h);
        assert!((kde.density(0.0) - want).abs() < 1e-15);
        assert!(GaussianKde::new(&[3.0, 3.0]).is_err());
        assert!(GaussianKde::new(&[3.0]).is_err());
    }
}
