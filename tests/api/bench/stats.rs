//! Order statistics the benchmarks report: medians of rounds and
//! percentiles of round trips. Shared by the bench binaries and the test
//! binary; not every benchmark uses every helper, hence the `dead_code`
//! allowance.
#![allow(dead_code)]

/// The middle sample (the upper one of an even count); panics on none.
pub fn median(v: Vec<f64>) -> f64 {
    percentile(v, 0.5)
}

/// The sample at fraction `p` (0.0-1.0) of the sorted samples, nearest
/// rank; panics on none.
pub fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    assert!(!v.is_empty(), "no samples");
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}
