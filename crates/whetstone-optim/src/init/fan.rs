//! Fan-in, fan-out and the gains of `torch.nn.init`, which the Xavier and Kaiming schemes scale by.

use crate::error::{OptimError, Result};
use serde::{Deserialize, Serialize};

/// `torch.nn.init._calculate_fan_in_and_fan_out`: for a weight `[out, in, k…]` (Linear
/// `[out, in]`, Conv1d `[out, in, k]`), fan-in is `in × Πk` and fan-out is `out × Πk`.
/// An embedding `[vocab, dim]` thus has fan-in `dim`. Fewer than 2 dimensions is an error,
/// as in torch.
///
/// ```
/// use whetstone_optim::fan_in_fan_out;
/// assert_eq!(fan_in_fan_out(&[100, 300, 3])?, (900, 300));
/// assert!(fan_in_fan_out(&[100]).is_err());
/// # Ok::<(), whetstone_optim::OptimError>(())
/// ```
pub fn fan_in_fan_out(shape: &[i64]) -> Result<(i64, i64)> {
    if shape.len() < 2 {
        return Err(OptimError::Config(format!("init: fan in and fan out need a tensor of 2 or more dimensions, got shape {shape:?}")));
    }
    let receptive: i64 = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

/// Which fan Kaiming initialisation preserves the variance over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FanMode {
    /// The forward pass's activations (the default).
    #[default]
    FanIn,
    /// The backward pass's gradients.
    FanOut,
}

/// The non-linearity after the layer, for `torch.nn.init.calculate_gain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nonlinearity {
    /// Identity (also right for conv and sigmoid): gain 1.
    Linear,
    /// Gain 1.
    Sigmoid,
    /// Gain 5/3.
    Tanh,
    /// Gain √2 (the default).
    #[default]
    Relu,
    /// Gain √(2 / (1 + a²)) with `a` the negative slope.
    LeakyRelu,
    /// Gain 3/4.
    Selu,
}

impl Nonlinearity {
    /// `calculate_gain(self, negative_slope)`; the slope matters only for `leaky-relu`.
    ///
    /// ```
    /// use whetstone_optim::Nonlinearity;
    /// assert_eq!(Nonlinearity::Relu.gain(0.0), 2f64.sqrt());
    /// assert_eq!(Nonlinearity::LeakyRelu.gain(0.0), 2f64.sqrt());
    /// ```
    pub fn gain(self, negative_slope: f64) -> f64 {
        match self {
            Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => 2.0f64.sqrt(),
            Nonlinearity::LeakyRelu => (2.0 / (1.0 + negative_slope.powi(2))).sqrt(),
            Nonlinearity::Selu => 3.0 / 4.0,
        }
    }
}
