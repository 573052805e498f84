//! PCGrad, gradient surgery for multi-task learning (Yu et al. 2020, Algorithm 1).
//!
//! Each task's gradient of the shared parameters is taken separately. For each task `i`, in
//! turn, and for every other task `j` in a random order: when `g_i · g_j < 0` (the two
//! conflict), `g_i` loses its component along `g_j`, `g_i ← g_i − (g_i · g_j / ‖g_j‖²) g_j`.
//! The projected gradients are summed. The heads' gradients are left as they are (each head
//! belongs to one task).

use crate::error::Result;
use rand::seq::SliceRandom;
use rand::Rng;
use tch::{Kind, Tensor};

/// The sum of the projected gradients: `grads[i]` is task `i`'s flat gradient, `orders[i]` the
/// order in which task `i` is projected against the others (which must not contain `i`).
///
/// ```
/// use tch::Tensor;
/// use whetstone_train::multitask::pcgrad_project;
/// let g1 = Tensor::from_slice(&[1.0f64, 0.0]);
/// let g2 = Tensor::from_slice(&[-1.0f64, 1.0]);
/// // g1·g2 = -1 < 0: g1 → g1 + ½ g2 = (½, ½); g2 → g2 + g1 = (0, 1); the sum is (½, 3/2).
/// let g = pcgrad_project(&[g1, g2], &[vec![1], vec![0]])?;
/// assert_eq!(Vec::<f64>::try_from(&g)?, [0.5, 1.5]);
/// # Ok::<(), whetstone_train::TrainError>(())
/// ```
pub fn pcgrad_project(grads: &[Tensor], orders: &[Vec<usize>]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (i, g) in grads.iter().enumerate() {
        let mut gi = g.detach().copy();
        for &j in orders.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            let gj = &grads[j];
            let dot = gi.f_dot(gj)?.f_to_kind(Kind::Double)?.f_double_value(&[])?;
            if dot < 0.0 {
                let nn = gj.f_dot(gj)?.f_to_kind(Kind::Double)?.f_double_value(&[])?;
                if nn > 0.0 {
                    gi = gi.f_sub(&gj.f_mul_scalar(dot / nn)?)?;
                }
            }
        }
        total = Some(match total {
            None => gi,
            Some(t) => t.f_add(&gi)?,
        });
    }
    total.ok_or_else(|| crate::error::TrainError::Config("PCGrad needs at least one task gradient".into()))
}

/// For each of `n` tasks, the other tasks in a random order drawn from `rng`.
pub fn random_orders(n: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            others.shuffle(rng);
            others
        })
        .collect()
}

/// Per-step accumulators of each task's shared gradients.
#[derive(Debug, Default)]
pub(crate) struct PcGrad {
    /// `acc[task]`: one gradient per shared parameter (undefined until the task contributes).
    acc: Vec<Option<Vec<Tensor>>>,
}

impl PcGrad {
    pub(crate) fn reset(&mut self, tasks: usize) {
        self.acc = (0..tasks).map(|_| None).collect();
    }

    /// Move the gradients the last backward left on `shared` into `task`'s accumulator.
    pub(crate) fn take(&mut self, task: usize, shared: &[Tensor]) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            let grads: Vec<Tensor> = shared.iter().map(|p| {
                let g = p.grad();
                if g.defined() { Ok(g.detach().copy()) } else { Ok(p.f_zeros_like()?) }
            }).collect::<Result<_>>()?;
            for p in shared {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.f_zero_()?;
                }
            }
            match &mut self.acc[task] {
                Some(acc) => {
                    for (a, g) in acc.iter_mut().zip(&grads) {
                        let _ = a.f_add_(g)?;
                    }
                }
                slot @ None => *slot = Some(grads),
            }
            Ok(())
        })
    }

    /// Project the tasks' gradients and write their sum onto `shared`'s gradients.
    pub(crate) fn apply(&mut self, shared: &[Tensor], rng: &mut impl Rng) -> Result<()> {
        let present: Vec<Vec<Tensor>> = self.acc.iter_mut().filter_map(Option::take).collect();
        if present.is_empty() {
            return Ok(());
        }
        tch::no_grad(|| -> Result<()> {
            let flat: Vec<Tensor> = present
                .iter()
                .map(|gs| Ok(Tensor::f_cat(&gs.iter().map(|g| g.f_flatten(0, -1)).collect::<std::result::Result<Vec<_>, _>>()?, 0)?))
                .collect::<Result<_>>()?;
            let orders = random_orders(flat.len(), rng);
            let sum = pcgrad_project(&flat, &orders)?;
            let mut offset = 0i64;
            for p in shared {
                let n = p.numel() as i64;
                let piece = sum.f_narrow(0, offset, n)?.f_view_as(p)?;
                offset += n;
                // A parameter no task used has no gradient: it is left without one.
                let mut g = p.grad();
                if g.defined() {
                    g.f_copy_(&piece)?;
                }
            }
            Ok(())
        })
    }
}
