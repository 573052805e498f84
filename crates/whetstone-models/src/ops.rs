//! Fallible forms of `tch`'s layer `forward`s: the same libtorch calls, with errors (an id
//! out of range, a shape that does not fit) returned instead of raised as panics.

use crate::error::Result;
use tch::{nn, Tensor};

/// `x.apply(l)`: `tch`'s `Linear::forward` is `linear(ws, bs)`.
pub(crate) fn linear(x: &Tensor, l: &nn::Linear) -> Result<Tensor> {
    Ok(x.f_linear(&l.ws, l.bs.as_ref())?)
}

/// `x.apply(n)` for a LayerNorm built with `eps` (and cuDNN enabled, the default).
pub(crate) fn layer_norm(x: &Tensor, n: &nn::LayerNorm, eps: f64) -> Result<Tensor> {
    Ok(x.f_layer_norm(n.normalized_shape.as_slice(), n.ws.as_ref(), n.bs.as_ref(), eps, true)?)
}

/// `ids.apply(e)` for an embedding built with the default padding index, gradient scaling
/// and density (every embedding in this crate).
pub(crate) fn embedding(ids: &Tensor, e: &nn::Embedding) -> Result<Tensor> {
    Ok(Tensor::f_embedding(&e.ws, ids, -1, false, false)?)
}

/// `x.apply(c)` for a 1-D convolution built with the default stride, padding, dilation,
/// groups and padding mode (every convolution in this crate).
pub(crate) fn conv1d(x: &Tensor, c: &nn::Conv1D) -> Result<Tensor> {
    Ok(x.f_conv1d(&c.ws, c.bs.as_ref(), [1], [0], [1], 1)?)
}
