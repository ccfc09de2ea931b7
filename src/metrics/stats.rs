//! Duration statistics (METRICS.md Conventions): percentiles are linearly interpolated, numpy's default
//! (polars `QuantileMethod::Linear`): for sorted values v[0..n], quantile q sits at position q·(n−1) and
//! is interpolated between its two neighbours. No values → no statistic (`None`), never 0.

use serde::Serialize;

/// Quantile `q` (0..=1) of already sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Sorts `values` in place and returns quantile `q`.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    quantile_sorted(values, q)
}

/// The linear median.
pub fn median(values: &mut [f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// What every duration statistic reports: p50, p90 and the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DurationStats {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub count: u64,
}

impl DurationStats {
    pub fn of(values: &mut [f64]) -> DurationStats {
        values.sort_by(f64::total_cmp);
        DurationStats {
            p50: quantile_sorted(values, 0.5),
            p90: quantile_sorted(values, 0.9),
            count: values.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{ChunkQuantile, Float64Chunked, NewChunkedArray, QuantileMethod};

    #[test]
    fn percentiles_are_linear_p50_of_1_2_3_4_is_2_5() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(super::median(&mut v), Some(2.5));
        let s = DurationStats::of(&mut v);
        assert_eq!(s.p50, Some(2.5));
        assert!((s.p90.unwrap() - 3.7).abs() < 1e-9, "{:?}", s.p90);
        assert_eq!(s.count, 4);
    }

    #[test]
    fn percentiles_match_polars_linear_quantiles() {
        let values = [7.0, 1.0, 30.0, 2.5, 11.0, 4.0, 100.0];
        let ca = Float64Chunked::from_slice("v".into(), &values);
        for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
            let polars = ca.quantile(q, QuantileMethod::Linear).unwrap();
            let ours = super::quantile(&mut values.to_vec(), q);
            assert_eq!(ours, polars, "q = {q}");
        }
    }

    #[test]
    fn no_values_is_no_statistic_not_zero() {
        let s = DurationStats::of(&mut []);
        assert_eq!((s.p50, s.p90, s.count), (None, None, 0));
        assert_eq!(quantile_sorted(&[5.0], 0.9), Some(5.0));
    }
}
