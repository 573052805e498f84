//! The closed forms behind [`super::Schedule`]: warmup and the decays, each a function of
//! `(t, T)`. They are written as PyTorch's `_get_closed_form_lr` and Hugging Face's lambdas
//! write them, operation for operation, so the parity tests can ask for 1e-12.

use std::f64::consts::PI;

/// Linear warmup over `w` steps from `start` to 1, then `then(t − w, T − w)`.
pub(super) fn warmup(t: u64, total: u64, w: u64, start: f64, then: impl Fn(u64, u64) -> f64) -> f64 {
    if t < w {
        let frac = t as f64 / w as f64;
        return if start == 0.0 { frac } else { start + (1.0 - start) * frac };
    }
    then(t - w, total.saturating_sub(w))
}

/// Fraction of the run done, in [0, 1] (`T = 0` counts as done).
fn progress(t: u64, total: u64) -> f64 {
    if total == 0 {
        1.0
    } else {
        t.min(total) as f64 / total as f64
    }
}

/// `LinearLR`: `a + (b − a)·min(t, T)/T`.
pub(super) fn linear(t: u64, total: u64, start: f64, end: f64) -> f64 {
    if start == 1.0 && end == 0.0 {
        // Hugging Face's form, (T − t)/T, exact at every step.
        return if total == 0 { 0.0 } else { (total - t.min(total)) as f64 / total as f64 };
    }
    start + (end - start) * progress(t, total)
}

/// `CosineAnnealingLR`'s closed form with `T_max = T`, held at `min` after `T`.
pub(super) fn cosine(t: u64, total: u64, min: f64) -> f64 {
    min + (1.0 - min) * (1.0 + (PI * progress(t, total)).cos()) / 2.0
}

/// Hugging Face's polynomial decay: `(1 − end)·(1 − t/T)^power + end`.
pub(super) fn polynomial(t: u64, total: u64, power: f64, end: f64) -> f64 {
    (1.0 - end) * (1.0 - progress(t, total)).powf(power) + end
}

/// fairseq's `inverse_sqrt` / Hugging Face's `get_inverse_sqrt_schedule`: `t/w` during the
/// warmup, then `1/√((t − w + τ)/τ)`, which is `√(w/t)` when `τ = w`.
pub(super) fn inverse_sqrt(t: u64, w: u64, timescale: Option<u64>) -> f64 {
    if t < w {
        return t as f64 / w as f64;
    }
    let tau = timescale.unwrap_or(if w == 0 { 10_000 } else { w }).max(1);
    1.0 / ((t - w + tau) as f64 / tau as f64).sqrt()
}
