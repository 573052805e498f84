//! The strategy API: what the training loop minimises, and how.
//!
//! An [`Objective`] is asked for the loss of a batch, and it may take over any part of the
//! step around that loss: the backward pass of each micro-batch (several forward/backward
//! passes for adversarial training or R-Drop), the moment between the last backward and the
//! optimiser step ([`Objective::before_update`], where FGM restores the embeddings), and the
//! moment after it ([`Objective::after_update`], where pruning re-applies its masks). It owns
//! its validation (classification by default, perplexity for masked-LM pretraining) and its
//! state, which goes into every checkpoint and comes back bit-identical on resume.
//!
//! Decorators wrap another objective and forward every method they do not change, so a
//! regulariser around masked-LM keeps masked-LM's validation.

use crate::context::{EvalContext, StepContext};
use crate::error::Result;
use crate::evaluate::classify;
use crate::state::StrategyState;
use tch::{Kind, Tensor};
use whetstone_data::{Batch, Encoded};

/// The loss of one micro-batch, as the loop logs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepLoss {
    /// The (unweighted) mean loss of the micro-batch; NaN or infinite stops the run.
    pub value: f64,
    /// Named parts of the loss, for the metrics log (e.g. `("adversarial", 0.41)`).
    pub terms: Vec<(String, f64)>,
}

impl StepLoss {
    /// A loss without parts.
    pub fn new(value: f64) -> Self {
        Self { value, terms: Vec::new() }
    }

    /// Add a named part.
    pub fn with_term(mut self, name: impl Into<String>, value: f64) -> Self {
        self.terms.push((name.into(), value));
        self
    }
}

/// Backward of `weight × loss` (a scalar): the default [`Objective::backward`]. A non-finite
/// loss is returned without a backward pass, and the loop then stops the run.
pub fn backward_weighted(loss: &Tensor, weight: f64) -> Result<StepLoss> {
    let value = loss.f_detach()?.f_to_kind(Kind::Double)?.f_double_value(&[])?;
    if value.is_finite() {
        loss.f_mul_scalar(weight)?.f_backward()?;
    }
    Ok(StepLoss::new(value))
}

/// A training strategy: the loss of a batch, and optionally every step-level hook around it.
///
/// Only [`Objective::loss`] is required. The loop calls, for each optimiser step:
///
/// 1. [`Objective::backward`] once per micro-batch (default: `loss · weight`, then backward);
/// 2. [`Objective::before_update`], after the last backward and before clipping and the step;
/// 3. the optimiser step, then [`Objective::after_update`].
///
/// The random stream is reseeded from `(seed, step)` before step 1, and [`StepContext::rng`]
/// gives a Rust-side stream fixed by the same pair, so a strategy's randomness is resumable.
///
/// # Example: a strategy outside the loop (gradient noise, Neelakantan et al. 2015)
///
/// ```
/// use tch::Tensor;
/// use whetstone_data::Batch;
/// use whetstone_train::{CrossEntropy, Objective, Result, StepContext, StrategyState};
///
/// /// Cross-entropy, plus Gaussian noise of variance η/(1+t)^0.55 on every gradient.
/// struct GradientNoise { inner: CrossEntropy, eta: f64, noisy_steps: u64 }
///
/// impl Objective for GradientNoise {
///     fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> Result<Tensor> {
///         self.inner.loss(cx, batch)
///     }
///     fn before_update(&mut self, cx: &mut StepContext) -> Result<()> {
///         let std = (self.eta / (1.0 + cx.step as f64).powf(0.55)).sqrt();
///         tch::no_grad(|| -> Result<()> {
///             for p in cx.vs.trainable_variables() {
///                 let mut g = p.grad();
///                 if g.defined() {
///                     let _ = g.f_add_(&g.f_randn_like()?.f_mul_scalar(std)?)?;
///                 }
///             }
///             Ok(())
///         })?;
///         self.noisy_steps += 1;
///         Ok(())
///     }
///     // The counter is part of every checkpoint and comes back on resume.
///     fn state(&self) -> Result<StrategyState> {
///         Ok(StrategyState::default().with_value("noisy_steps", self.noisy_steps))
///     }
///     fn load_state(&mut self, state: &StrategyState) -> Result<()> {
///         self.noisy_steps = state.value("noisy_steps")?;
///         Ok(())
///     }
/// }
/// let _boxed: Box<dyn Objective> = Box::new(GradientNoise { inner: CrossEntropy::default(), eta: 0.01, noisy_steps: 0 });
/// ```
pub trait Objective: Send {
    /// Mean loss over `batch`: a scalar with a graph back to the trained parameters.
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor>;

    /// Accumulate the gradients of one micro-batch, scaled by `weight` (its share of the
    /// step's examples), and report its loss. Strategies that need several passes per batch
    /// (FGM, PGD, FreeLB, R-Drop) override this.
    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        let loss = self.loss(cx, batch)?;
        backward_weighted(&loss, weight)
    }

    /// After the step's last backward, before gradient clipping and the optimiser step.
    fn before_update(&mut self, _cx: &mut StepContext<'_>) -> Result<()> {
        Ok(())
    }

    /// After the optimiser step.
    fn after_update(&mut self, _cx: &mut StepContext<'_>) -> Result<()> {
        Ok(())
    }

    /// Score `valid` to select the best checkpoint (higher is better). The default
    /// classifies it and scores the predictions with the run's metric.
    fn validate(&mut self, cx: &EvalContext<'_>, valid: &Encoded) -> Result<Validation> {
        classify(cx, valid)
    }

    /// Everything the strategy needs to continue exactly: its own parameters (projections,
    /// extra heads), counters and buffers. Saved in every checkpoint.
    fn state(&self) -> Result<StrategyState> {
        Ok(StrategyState::default())
    }

    /// Restore what [`Objective::state`] saved. The default accepts only an empty state.
    fn load_state(&mut self, state: &StrategyState) -> Result<()> {
        state.expect_empty("this objective")
    }
}

impl<O: Objective + ?Sized> Objective for Box<O> {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor> {
        (**self).loss(cx, batch)
    }
    fn backward(&mut self, cx: &mut StepContext<'_>, batch: &Batch, weight: f64) -> Result<StepLoss> {
        (**self).backward(cx, batch, weight)
    }
    fn before_update(&mut self, cx: &mut StepContext<'_>) -> Result<()> {
        (**self).before_update(cx)
    }
    fn after_update(&mut self, cx: &mut StepContext<'_>) -> Result<()> {
        (**self).after_update(cx)
    }
    fn validate(&mut self, cx: &EvalContext<'_>, valid: &Encoded) -> Result<Validation> {
        (**self).validate(cx, valid)
    }
    fn state(&self) -> Result<StrategyState> {
        (**self).state()
    }
    fn load_state(&mut self, state: &StrategyState) -> Result<()> {
        (**self).load_state(state)
    }
}

/// Forward the listed [`Objective`] methods to a field, for decorators:
/// `forward_objective!(inner; loss, backward, before_update, after_update, validate, state, load_state);`
#[macro_export]
macro_rules! forward_objective {
    ($field:ident; $($method:ident),* $(,)?) => {
        $( $crate::forward_objective!(@one $field $method); )*
    };
    (@one $f:ident loss) => {
        fn loss(&mut self, cx: &mut $crate::StepContext<'_>, batch: &whetstone_data::Batch) -> $crate::Result<tch::Tensor> { self.$f.loss(cx, batch) }
    };
    (@one $f:ident backward) => {
        fn backward(&mut self, cx: &mut $crate::StepContext<'_>, batch: &whetstone_data::Batch, weight: f64) -> $crate::Result<$crate::StepLoss> { self.$f.backward(cx, batch, weight) }
    };
    (@one $f:ident before_update) => {
        fn before_update(&mut self, cx: &mut $crate::StepContext<'_>) -> $crate::Result<()> { self.$f.before_update(cx) }
    };
    (@one $f:ident after_update) => {
        fn after_update(&mut self, cx: &mut $crate::StepContext<'_>) -> $crate::Result<()> { self.$f.after_update(cx) }
    };
    (@one $f:ident validate) => {
        fn validate(&mut self, cx: &$crate::EvalContext<'_>, valid: &whetstone_data::Encoded) -> $crate::Result<$crate::Validation> { self.$f.validate(cx, valid) }
    };
    (@one $f:ident state) => {
        fn state(&self) -> $crate::Result<$crate::StrategyState> { self.$f.state() }
    };
    (@one $f:ident load_state) => {
        fn load_state(&mut self, state: &$crate::StrategyState) -> $crate::Result<()> { self.$f.load_state(state) }
    };
}

/// What [`Objective::validate`] measured.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The number that selects the best checkpoint; higher is better (e.g. minus the loss).
    pub metric: f64,
    /// How to print it, e.g. `perplexity 41.2`.
    pub summary: String,
    /// Fields for the metrics log's `valid` record (the trainer adds `split`, `step`, `epoch`).
    pub record: serde_json::Map<String, serde_json::Value>,
}

/// Cross-entropy of the model's logits against the gold labels, with optional label smoothing.
#[derive(Debug, Clone, Default)]
pub struct CrossEntropy {
    /// Label smoothing ε (Szegedy et al. 2016); 0 disables.
    pub label_smoothing: f64,
}

impl CrossEntropy {
    /// The loss of `logits` `[B, C]` against `labels` `[B]`.
    pub fn of_logits(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        Ok(logits.f_to_kind(Kind::Float)?.f_cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, self.label_smoothing)?)
    }
}

impl Objective for CrossEntropy {
    fn loss(&mut self, cx: &mut StepContext<'_>, batch: &Batch) -> Result<Tensor> {
        let logits = cx.model.forward_t(&batch.input_ids, &batch.attention_mask, true)?;
        self.of_logits(&logits, &batch.labels)
    }
}
