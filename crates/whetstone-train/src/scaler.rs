//! Dynamic loss scaling for fp16 training (the algorithm of `torch.amp.GradScaler`).
//!
//! fp16 has a narrow exponent range: small gradients underflow to zero. The loss is multiplied
//! by a large scale before backward, and the gradients divided by it before clipping and the
//! optimiser step. When a gradient overflows (inf/NaN), the step is skipped and the scale
//! shrinks; after `growth_interval` clean steps in a row it grows again. bf16 has float32's
//! exponent range and needs none of this.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The scaler's settings (torch's `GradScaler` defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossScaleConfig {
    /// The first scale (default 2¹⁶).
    pub init_scale: f64,
    /// Factor applied after `growth_interval` clean steps (default 2).
    pub growth_factor: f64,
    /// Factor applied on overflow (default 0.5).
    pub backoff_factor: f64,
    /// Clean steps before the scale grows (default 2000).
    pub growth_interval: u64,
}

impl Default for LossScaleConfig {
    fn default() -> Self {
        Self { init_scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000 }
    }
}

impl LossScaleConfig {
    /// Check the settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if !(self.init_scale.is_finite() && self.init_scale > 0.0) {
            return bad(format!("loss scaling: init_scale must be a positive number, got {}", self.init_scale));
        }
        if !(self.growth_factor.is_finite() && self.growth_factor > 1.0) {
            return bad(format!("loss scaling: growth_factor must be > 1, got {}", self.growth_factor));
        }
        if !(self.backoff_factor > 0.0 && self.backoff_factor < 1.0) {
            return bad(format!("loss scaling: backoff_factor must be in (0, 1), got {}", self.backoff_factor));
        }
        if self.growth_interval == 0 {
            return bad("loss scaling: growth_interval must be >= 1".into());
        }
        Ok(())
    }
}

/// What a checkpoint keeps of the scaler.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaleState {
    /// The current scale.
    pub scale: f64,
    /// Clean steps since the scale last changed.
    pub growth_tracker: u64,
    /// Steps skipped because of an overflow, over the whole run.
    pub skipped_steps: u64,
}

/// Below this the scale no longer helps: every step overflows whatever the scale.
const MIN_SCALE: f64 = 1.0 / (1u64 << 24) as f64;

/// Dynamic loss scaling: [`LossScaler::scale`] multiplies the loss, [`LossScaler::unscale`]
/// divides the gradients and reports an overflow, [`LossScaler::update`] moves the scale.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    config: LossScaleConfig,
    state: LossScaleState,
}

impl LossScaler {
    /// A scaler at `config.init_scale`.
    pub fn new(config: LossScaleConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config, state: LossScaleState { scale: config.init_scale, growth_tracker: 0, skipped_steps: 0 } })
    }

    /// The factor on the loss for this step.
    pub fn scale(&self) -> f64 {
        self.state.scale
    }

    /// The state to checkpoint.
    pub fn state(&self) -> LossScaleState {
        self.state
    }

    /// Restore a checkpointed state.
    pub fn load_state(&mut self, state: LossScaleState) -> Result<()> {
        if !(state.scale.is_finite() && state.scale > 0.0) {
            return Err(TrainError::State(format!("the checkpoint's loss scale {} is not a positive number", state.scale)));
        }
        self.state = state;
        Ok(())
    }

    /// Divide every defined gradient of `params` by the scale, in place; true when any of them
    /// holds an inf or NaN (the step must then be skipped).
    pub fn unscale(&self, params: &[&Tensor]) -> Result<bool> {
        let inv = 1.0 / self.state.scale;
        let mut found: Option<Tensor> = None;
        tch::no_grad(|| -> Result<()> {
            for p in params {
                let mut g = p.grad();
                if !g.defined() {
                    continue;
                }
                let bad = g.f_isfinite()?.f_logical_not()?.f_any()?;
                found = Some(match found.take() {
                    None => bad,
                    Some(f) => f.f_logical_or(&bad)?,
                });
                let _ = g.f_mul_scalar_(inv)?;
            }
            Ok(())
        })?;
        match found {
            None => Ok(false),
            Some(f) => Ok(f.f_to_kind(Kind::Int64)?.f_int64_value(&[])? != 0),
        }
    }

    /// Move the scale after a step: shrink on overflow, grow after `growth_interval` clean
    /// steps. An error once the scale falls below 2⁻²⁴: the gradients are non-finite at any
    /// scale, so the run cannot make progress.
    pub fn update(&mut self, overflow: bool) -> Result<()> {
        let s = &mut self.state;
        if overflow {
            s.scale *= self.config.backoff_factor;
            s.growth_tracker = 0;
            s.skipped_steps += 1;
            if s.scale < MIN_SCALE {
                return Err(TrainError::State(format!("loss scaling: the scale fell to {:e} after {} skipped steps; the gradients overflow at every scale", s.scale, s.skipped_steps)));
            }
        } else {
            s.growth_tracker += 1;
            if s.growth_tracker >= self.config.growth_interval {
                s.scale *= self.config.growth_factor;
                s.growth_tracker = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_on_overflow_grows_after_interval() {
        let mut s = LossScaler::new(LossScaleConfig { init_scale: 8.0, growth_interval: 2, ..Default::default() }).unwrap();
        s.update(true).unwrap();
        assert_eq!(s.scale(), 4.0);
        s.update(false).unwrap();
        assert_eq!(s.scale(), 4.0);
        s.update(false).unwrap();
        assert_eq!(s.scale(), 8.0);
        assert_eq!(s.state().skipped_steps, 1);
        let mut tiny = LossScaler::new(LossScaleConfig { init_scale: 1e-7, ..Default::default() }).unwrap();
        assert!(tiny.update(true).unwrap_err().to_string().contains("overflow at every scale"));
        assert!(LossScaler::new(LossScaleConfig { backoff_factor: 1.0, ..Default::default() }).is_err());
    }

    #[test]
    fn unscale_divides_and_detects() {
        let p = Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        (&p * Tensor::from_slice(&[4.0f32, 8.0, 16.0])).sum(Kind::Float).backward();
        let s = LossScaler::new(LossScaleConfig { init_scale: 4.0, ..Default::default() }).unwrap();
        assert!(!s.unscale(&[&p]).unwrap());
        assert_eq!(Vec::<f32>::try_from(p.grad()).unwrap(), vec![1.0, 2.0, 4.0]);
        let _ = p.grad().get(1).fill_(f64::INFINITY);
        assert!(s.unscale(&[&p]).unwrap());
    }
}
