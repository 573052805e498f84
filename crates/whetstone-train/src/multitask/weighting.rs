//! How the tasks' losses are combined: fixed weights, uncertainty weighting (Kendall et al.
//! 2018) and GradNorm (Chen et al. 2018). PCGrad, which combines gradients rather than
//! losses, is in `pcgrad.rs`.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// A recipe's `multitask.weighting`, with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Weighting {
    /// `L = Σ w_i L_i` with the tasks' fixed weights.
    Fixed,
    /// Kendall et al. (2018): `L = Σ exp(−s_i) L_i + s_i` with learned `s_i = log σ_i²`,
    /// trained by SGD at `lr` after each optimiser step (see [`Uncertainty`]).
    Uncertainty {
        /// Learning rate of the `s_i` (plain SGD).
        lr: f64,
    },
    /// Chen et al. (2018): weights `w_i(t)` balancing the tasks' gradient norms on the last
    /// shared layer (see [`gradnorm_update`]).
    GradNorm {
        /// The asymmetry α: how strongly tasks that train slower are pushed (paper: 0.5–3).
        alpha: f64,
        /// Learning rate of the weights.
        lr: f64,
    },
    /// Yu et al. (2020): conflicting task gradients projected onto each other's normal plane.
    PcGrad,
}

impl Weighting {
    /// The weighting called `name` (`fixed`, `uncertainty`, `gradnorm`, `pcgrad`).
    pub fn parse(name: &str, alpha: f64, lr: f64) -> Result<Self> {
        let w = match name {
            "fixed" => Weighting::Fixed,
            "uncertainty" => Weighting::Uncertainty { lr },
            "gradnorm" => Weighting::GradNorm { alpha, lr },
            "pcgrad" => Weighting::PcGrad,
            other => return Err(TrainError::Config(format!("multitask.weighting must be fixed, uncertainty, gradnorm or pcgrad, got `{other}`"))),
        };
        if !(lr > 0.0 && lr.is_finite()) && matches!(w, Weighting::Uncertainty { .. } | Weighting::GradNorm { .. }) {
            return Err(TrainError::Config(format!("multitask.weight_lr must be > 0, got {lr}")));
        }
        if !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(TrainError::Config(format!("multitask.alpha must be >= 0, got {alpha}")));
        }
        Ok(w)
    }

    /// The name a recipe uses.
    pub fn name(&self) -> &'static str {
        match self {
            Weighting::Fixed => "fixed",
            Weighting::Uncertainty { .. } => "uncertainty",
            Weighting::GradNorm { .. } => "gradnorm",
            Weighting::PcGrad => "pcgrad",
        }
    }
}

/// Uncertainty weighting's learned log-variances `s` (`[K]`, float64, starting at 0).
///
/// The loss of a micro-batch of task `i` is `exp(−s_i) L_i + s_i`; its backward leaves
/// `∂/∂s_i = weight · (1 − exp(−s_i) L_i)` on `s`, accumulated over the step's micro-batches.
/// After the optimiser step, `s ← s − lr · ∂/∂s` (plain SGD, its own learning rate, so the
/// model's optimiser, weight decay and schedule leave `s` alone), and the gradient is cleared.
/// `s` is part of the strategy state and comes back on resume.
#[derive(Debug)]
pub struct Uncertainty {
    /// The log-variances (a leaf that records gradients).
    pub log_var: Tensor,
    lr: f64,
}

impl Uncertainty {
    /// `tasks` log-variances at 0 (every task weighted 1), trained at `lr`.
    pub fn new(tasks: usize, lr: f64) -> Result<Self> {
        let log_var = Tensor::f_zeros([tasks as i64], (Kind::Double, tch::Device::Cpu))?.set_requires_grad(true);
        Ok(Self { log_var, lr })
    }

    /// `exp(−s_i) · loss + s_i`, with a graph to `s`.
    pub fn weigh(&self, task: usize, loss: &Tensor) -> Result<Tensor> {
        let s = self.log_var.f_select(0, task as i64)?.f_to_device(loss.device())?;
        let w = s.f_neg()?.f_exp()?;
        Ok(loss.f_to_kind(Kind::Double)?.f_mul(&w)?.f_add(&s)?.f_to_kind(Kind::Float)?)
    }

    /// The current weights `exp(−s_i)`.
    pub fn weights(&self) -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(&self.log_var.f_detach()?.f_neg()?.f_exp()?)?)
    }

    /// One SGD step on `s`, then clear its gradient.
    pub fn step(&mut self) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            let mut g = self.log_var.grad();
            if g.defined() {
                let _ = self.log_var.f_sub_(&g.f_mul_scalar(self.lr)?)?;
                let _ = g.f_zero_()?;
            }
            Ok(())
        })
    }

    /// Clear the gradient (at the start of a step whose predecessor skipped its update).
    pub fn zero_grad(&mut self) -> Result<()> {
        let mut g = self.log_var.grad();
        if g.defined() {
            let _ = g.f_zero_()?;
        }
        Ok(())
    }
}

/// One GradNorm update of the task weights (Chen et al. 2018, §3.2 and Algorithm 1).
///
/// For the tasks that took part in the step (`present`): `norms[i]` is `G_i = ‖∇_W w_i L_i‖`
/// on the last shared layer `W`, `losses[i]` the task's loss `L_i(t)` and `initial[i]` its
/// first loss `L_i(0)`. With `Ḡ` the mean of the `G_i`, `r_i = L̃_i / mean(L̃)` the relative
/// inverse training rate (`L̃_i = L_i(t) / L_i(0)`) and the target `Ḡ · r_i^α` held constant,
/// `L_grad = Σ |G_i − Ḡ r_i^α|` has gradient `sign(G_i − Ḡ r_i^α) · G_i / w_i` in `w_i`. Each
/// weight takes a gradient step of size `lr`, stays at least 1e-4, and the weights are
/// renormalised to sum to the number of tasks.
///
/// ```
/// use whetstone_train::multitask::gradnorm_update;
/// // Two tasks at weight 1: task 0 has the larger gradient norm and trains faster.
/// let w = gradnorm_update(&[1.0, 1.0], &[true, true], &[2.0, 1.0], &[0.5, 1.0], &[1.0, 1.0], 1.0, 0.1);
/// // Ḡ = 1.5; L̃ = (0.5, 1), r = (2/3, 4/3); targets 1.0 and 2.0. Task 0: G > target, so
/// // w_0 = 1 − 0.1·2 = 0.8; task 1: G < target, w_1 = 1 + 0.1·1 = 1.1; sum 1.9 → ×2/1.9.
/// assert!((w[0] - 0.8 * 2.0 / 1.9).abs() < 1e-12 && (w[1] - 1.1 * 2.0 / 1.9).abs() < 1e-12);
/// ```
pub fn gradnorm_update(weights: &[f64], present: &[bool], norms: &[f64], losses: &[f64], initial: &[f64], alpha: f64, lr: f64) -> Vec<f64> {
    let idx: Vec<usize> = (0..weights.len()).filter(|&i| present[i]).collect();
    let mut w = weights.to_vec();
    if idx.is_empty() {
        return w;
    }
    let g_bar = idx.iter().map(|&i| norms[i]).sum::<f64>() / idx.len() as f64;
    let rate: Vec<f64> = idx.iter().map(|&i| losses[i] / initial[i]).collect();
    let mean_rate = rate.iter().sum::<f64>() / rate.len() as f64;
    for (k, &i) in idx.iter().enumerate() {
        let target = g_bar * (rate[k] / mean_rate).powf(alpha);
        // The sign of G_i − target (0 on equality: `f64::signum(0.0)` is 1).
        let diff = norms[i] - target;
        let sign = if diff > 0.0 { 1.0 } else if diff < 0.0 { -1.0 } else { 0.0 };
        let grad = sign * norms[i] / weights[i];
        w[i] = (weights[i] - lr * grad).max(1e-4);
    }
    let total: f64 = w.iter().sum();
    let n = w.len() as f64;
    w.iter().map(|x| x * n / total).collect()
}

/// GradNorm's weights and the per-step measurements they are updated from.
#[derive(Debug)]
pub(crate) struct GradNorm {
    pub(crate) alpha: f64,
    pub(crate) lr: f64,
    pub(crate) weights: Vec<f64>,
    pub(crate) initial: Vec<Option<f64>>,
    /// This step: per task, the accumulated change of the last shared layer's gradients.
    delta: Vec<Option<Vec<Tensor>>>,
    /// This step: per task, Σ weight · L and Σ weight over its micro-batches.
    loss_sum: Vec<f64>,
    weight_sum: Vec<f64>,
}

impl GradNorm {
    pub(crate) fn new(tasks: usize, alpha: f64, lr: f64) -> Self {
        Self { alpha, lr, weights: vec![1.0; tasks], initial: vec![None; tasks], delta: Vec::new(), loss_sum: Vec::new(), weight_sum: Vec::new() }
    }

    pub(crate) fn reset(&mut self) {
        let k = self.weights.len();
        self.delta = (0..k).map(|_| None).collect();
        self.loss_sum = vec![0.0; k];
        self.weight_sum = vec![0.0; k];
    }

    /// The gradients of `last` before a backward (zeros where there are none yet).
    pub(crate) fn snapshot(last: &[Tensor]) -> Result<Vec<Tensor>> {
        tch::no_grad(|| last.iter().map(|p| {
            let g = p.grad();
            Ok(if g.defined() { g.detach().copy() } else { p.f_zeros_like()? })
        }).collect())
    }

    /// Record one micro-batch of `task`: its loss, its backward weight, and what its backward
    /// added to the last shared layer's gradients (`after − before`).
    pub(crate) fn record(&mut self, task: usize, loss: f64, weight: f64, before: &[Tensor], last: &[Tensor]) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            let now = Self::snapshot(last)?;
            let d: Vec<Tensor> = now.iter().zip(before).map(|(a, b)| a.f_sub(b)).collect::<std::result::Result<_, _>>()?;
            match &mut self.delta[task] {
                Some(acc) => {
                    for (a, x) in acc.iter_mut().zip(&d) {
                        let _ = a.f_add_(x)?;
                    }
                }
                slot @ None => *slot = Some(d),
            }
            Ok(())
        })?;
        self.loss_sum[task] += weight * loss;
        self.weight_sum[task] += weight;
        Ok(())
    }

    /// The step's `G_i` (norm of `w_i ∇_W L_i`, normalised by the task's share of the step)
    /// and `L_i`, for the tasks that took part.
    pub(crate) fn measurements(&self) -> Result<(Vec<bool>, Vec<f64>, Vec<f64>)> {
        let k = self.weights.len();
        let (mut present, mut norms, mut losses) = (vec![false; k], vec![0.0; k], vec![0.0; k]);
        for i in 0..k {
            if let (Some(d), true) = (&self.delta[i], self.weight_sum[i] > 0.0) {
                let sq: f64 = d.iter().map(|t| t.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])).sum::<std::result::Result<f64, _>>()?;
                present[i] = true;
                norms[i] = sq.sqrt() / self.weight_sum[i];
                losses[i] = self.loss_sum[i] / self.weight_sum[i];
            }
        }
        Ok((present, norms, losses))
    }

    /// Update the weights from this step's measurements (first losses are recorded as `L_i(0)`).
    pub(crate) fn update(&mut self) -> Result<()> {
        let (present, norms, losses) = self.measurements()?;
        for i in 0..present.len() {
            if present[i] && self.initial[i].is_none() && losses[i] > 0.0 {
                self.initial[i] = Some(losses[i]);
            }
        }
        let present: Vec<bool> = present.iter().enumerate().map(|(i, &p)| p && self.initial[i].is_some() && norms[i] > 0.0).collect();
        let initial: Vec<f64> = self.initial.iter().map(|x| x.unwrap_or(1.0)).collect();
        self.weights = gradnorm_update(&self.weights, &present, &norms, &losses, &initial, self.alpha, self.lr);
        Ok(())
    }
}
