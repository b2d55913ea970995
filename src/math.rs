//! Small numeric functions more than one layer needs (the synthetic writer's strokes, the DET plot's
//! axes, the benchmarks' latency figures), kept once here. A leaf: it imports nothing of the crate.

/// The error function (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7), fast enough to call
/// for every stroke of a synthetic writer at every sample.
#[inline]
pub fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-(x * x)).exp();
    if x < 0.0 { -y } else { y }
}

/// The standard normal distribution function, through [`erf`] (error below 1.5e-7).
#[inline]
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// The `p`-quantile (0..=1) of already sorted values, by the nearest rank; NaN for no values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        assert!(erf(0.0).abs() < 1e-7);
        assert!((erf(1.0) - 0.842_700_79).abs() < 2e-7);
        assert!((erf(-2.0) + 0.995_322_27).abs() < 2e-7);
    }

    #[test]
    fn normal_cdf_inverts_the_scoring_probit() {
        for p in [0.001, 0.01, 0.1, 0.5, 0.9, 0.99] {
            let x = crate::scoring::inverse_normal_cdf(p);
            assert!((normal_cdf(x) - p).abs() < 1e-6, "p {p}");
        }
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.99), 5.0);
        assert_eq!(percentile(&v, 1.0), 5.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
