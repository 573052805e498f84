//! Sparsity-inducing penalties added to any objective: L1 on weights (Tibshirani 1996) and the
//! group lasso over heads and neurons (Yuan & Lin 2006; Wen et al. 2016), which drives whole
//! groups to zero and so feeds structured pruning.

use crate::error::{CompressError, Result};
use crate::prune::{LayerUnits, Structured};
use std::collections::HashMap;
use tch::{Kind, Tensor};
use whetstone_data::Batch;
use whetstone_train::{backward_weighted, forward_objective, Objective, StepContext, StepLoss};

/// A penalty on some parameters (shallow handles; flat-buffer rebinding keeps them valid).
#[derive(Debug)]
pub enum Regularizer {
    /// Σ |w| over the tensors.
    L1(Vec<Tensor>),
    /// Σ over heads and neurons of the L2 norm of each unit's weights.
    GroupLasso(Vec<(LayerUnits, HashMap<String, Tensor>)>),
}

impl Regularizer {
    /// L1 over `params` (e.g. from [`crate::ParamSelector::select_vs`]).
    pub fn l1(params: &[(String, Tensor)]) -> Self {
        Regularizer::L1(params.iter().map(|(_, t)| t.shallow_clone()).collect())
    }

    /// Group lasso over the heads (rows of W_q, W_k, W_v and columns of W_o per head) and the
    /// feed-forward neurons (a row of W_in and a column of W_out each) of `model`.
    pub fn group_lasso(model: &dyn Structured, named: &[(String, Tensor)]) -> Result<Self> {
        let map: HashMap<&str, &Tensor> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut layers = Vec::new();
        for u in model.layer_units() {
            let mut ts = HashMap::new();
            for p in u.qkv.iter().chain([&u.attention_out, &u.ffn_in, &u.ffn_out]) {
                let n = format!("{p}.weight");
                let t = map.get(n.as_str()).ok_or_else(|| CompressError::Config(format!("group lasso: the model has no `{n}`")))?;
                ts.insert(n, t.shallow_clone());
            }
            layers.push((u, ts));
        }
        Ok(Regularizer::GroupLasso(layers))
    }

    /// The penalty, a scalar with a graph to the parameters.
    pub fn penalty(&self) -> Result<Tensor> {
        let mut total = Tensor::f_zeros([], (Kind::Float, tch::Device::Cpu))?;
        match self {
            Regularizer::L1(ts) => {
                for t in ts {
                    total = total.f_to_device(t.device())?.f_add(&t.f_abs()?.f_sum(Kind::Float)?)?;
                }
            }
            Regularizer::GroupLasso(layers) => {
                for (u, ts) in layers {
                    let (h, d) = (u.heads as i64, u.head_dim as i64);
                    let w = |p: &str| -> Result<&Tensor> {
                        let n = format!("{p}.weight");
                        ts.get(&n).ok_or_else(|| CompressError::Config(format!("group lasso: no `{n}` among the regularised tensors")))
                    };
                    let mut heads = w(&u.attention_out)?.f_square()?.f_reshape([-1, h, d])?.f_sum_dim_intlist([0, 2].as_slice(), false, Kind::Float)?;
                    for q in &u.qkv {
                        heads = heads.f_add(&w(q)?.f_square()?.f_reshape([h, -1])?.f_sum_dim_intlist(1, false, Kind::Float)?)?;
                    }
                    let neurons = w(&u.ffn_in)?.f_square()?.f_sum_dim_intlist(1, false, Kind::Float)?.f_add(&w(&u.ffn_out)?.f_square()?.f_sum_dim_intlist(0, false, Kind::Float)?)?;
                    let groups = heads.f_add_scalar(1e-12)?.f_sqrt()?.f_sum(Kind::Float)?.f_add(&neurons.f_add_scalar(1e-12)?.f_sqrt()?.f_sum(Kind::Float)?)?;
                    total = total.f_to_device(groups.device())?.f_add(&groups)?;
                }
            }
        }
        Ok(total)
    }
}

/// `inner`'s loss plus `weight` × a [`Regularizer`]'s penalty: a decorator that changes only
/// the loss and forwards every other part of the strategy to `inner` (its validation, its
/// state, its update hooks), so a regulariser around masked-LM keeps masked-LM's validation.
///
/// When `inner` takes over the backward pass ([`Objective::backward`], e.g. adversarial
/// training), its passes run as it defines them and the penalty's gradient is added once per
/// micro-batch, with the micro-batch's weight; the penalty is logged as the term `penalty`
/// (already multiplied by `weight`).
///
/// ```
/// use whetstone_compress::{ParamSelector, Regularizer, RegularizedObjective};
/// use whetstone_train::CrossEntropy;
/// # let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// # let _l = tch::nn::linear(vs.root() / "dense", 4, 4, Default::default());
/// let reg = Regularizer::l1(&ParamSelector::default().select_vs(&vs)?);
/// let _objective = RegularizedObjective::new(CrossEntropy::default(), reg, 1e-5);
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
#[derive(Debug)]
pub struct RegularizedObjective<O: Objective> {
    inner: O,
    regularizer: Regularizer,
    weight: f64,
}

impl<O: Objective> RegularizedObjective<O> {
    /// Wrap `inner`.
    pub fn new(inner: O, regularizer: Regularizer, weight: f64) -> Self {
        Self { inner, regularizer, weight }
    }

    /// The wrapped objective.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// `weight × penalty` on `device`.
    fn weighted_penalty(&self, device: tch::Device) -> Result<Tensor> {
        Ok(self.regularizer.penalty()?.f_to_device(device)?.f_mul_scalar(self.weight)?)
    }
}

impl<O: Objective> Objective for RegularizedObjective<O> {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> whetstone_train::Result<Tensor> {
        let loss = self.inner.loss(cx, batch)?;
        let penalty = self.weighted_penalty(loss.device())?;
        Ok(loss.f_add(&penalty)?)
    }

    /// `inner`'s backward pass, then the penalty's, both scaled by `weight`.
    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> whetstone_train::Result<StepLoss> {
        let inner = self.inner.backward(cx, batch, weight)?;
        if !inner.value.is_finite() {
            return Ok(inner);
        }
        let penalty = backward_weighted(&self.weighted_penalty(batch.input_ids.device())?, weight)?;
        Ok(StepLoss { value: inner.value + penalty.value, terms: inner.terms }.with_term("penalty", penalty.value))
    }

    forward_objective!(inner; before_update, after_update, validate, state, load_state);
}
