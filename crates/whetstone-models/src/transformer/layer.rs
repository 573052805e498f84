use super::{attention::SelfAttention, LayerShape, TransformerConfig};
use crate::error::Result;
use crate::ops::{layer_norm, linear};
use tch::{nn, Tensor};

/// One encoder block: self-attention and a GELU feed-forward block, each with a residual
/// connection and LayerNorm, either after the residual (BERT) or before the sub-layer (pre-LN).
#[derive(Debug)]
pub struct EncoderLayer {
    attention: SelfAttention,
    attention_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_norm: nn::LayerNorm,
    eps: f64,
    dropout: f64,
    pre_norm: bool,
}

impl EncoderLayer {
    /// Parameters under `p` = `encoder.layer.N`, with the heads and feed-forward width of `shape`.
    pub fn new(p: &nn::Path, c: &TransformerConfig, shape: LayerShape) -> Self {
        let (h, f) = (c.hidden as i64, shape.ffn as i64);
        let a = p / "attention";
        Self {
            attention: SelfAttention::new(&a, c, shape.heads),
            attention_norm: super::layer_norm(&(&a / "output" / "LayerNorm"), h, c.layer_norm_eps),
            intermediate: nn::linear(p / "intermediate" / "dense", h, f, super::linear_init(c)),
            output: nn::linear(p / "output" / "dense", f, h, super::linear_init(c)),
            output_norm: super::layer_norm(&(p / "output" / "LayerNorm"), h, c.layer_norm_eps),
            eps: c.layer_norm_eps,
            dropout: c.dropout,
            pre_norm: c.pre_norm,
        }
    }

    /// Heads and feed-forward width of this layer.
    pub fn shape(&self) -> LayerShape {
        LayerShape { heads: self.attention.heads() as usize, ffn: self.intermediate.ws.size()[0] as usize }
    }

    /// Parameters with BERT names relative to `encoder.layer.N`.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> =
            self.attention.named_parameters().into_iter().map(|(n, t)| (format!("attention.{n}"), t)).collect();
        out.extend(super::layer_norm_parameters("attention.output.LayerNorm", &self.attention_norm));
        out.extend(super::linear_parameters("intermediate.dense", &self.intermediate));
        out.extend(super::linear_parameters("output.dense", &self.output));
        out.extend(super::layer_norm_parameters("output.LayerNorm", &self.output_norm));
        out
    }

    fn ffn(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = linear(x, &self.intermediate)?.f_gelu("none")?;
        Ok(linear(&y, &self.output)?.f_dropout(self.dropout, train)?)
    }

    /// `x` `[B, T, H]` through the block; `keep` `[B, 1, 1, T]` is true where a key may be
    /// attended to ([`super::TransformerEncoder::attention_keep`]).
    pub fn forward_t(&self, x: &Tensor, keep: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_inner(x, keep, train, false)?.0)
    }

    /// As [`Self::forward_t`], also returning the attention probabilities `[B, heads, T, T]`.
    pub fn forward_with_probs(&self, x: &Tensor, keep: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (y, probs) = self.forward_inner(x, keep, train, true)?;
        Ok((y, probs.expect("probabilities were requested")))
    }

    fn forward_inner(&self, x: &Tensor, keep: &Tensor, train: bool, probs: bool) -> Result<(Tensor, Option<Tensor>)> {
        let attend = |y: &Tensor| -> Result<(Tensor, Option<Tensor>)> {
            if probs {
                let (o, p) = self.attention.forward_with_probs(y, keep, train)?;
                Ok((o, Some(p)))
            } else {
                Ok((self.attention.forward_t(y, keep, train)?, None))
            }
        };
        let norm = |y: &Tensor, n: &nn::LayerNorm| layer_norm(y, n, self.eps);
        if self.pre_norm {
            let (a, p) = attend(&norm(x, &self.attention_norm)?)?;
            let x = x.f_add(&a.f_dropout(self.dropout, train)?)?;
            let y = x.f_add(&self.ffn(&norm(&x, &self.output_norm)?, train)?)?;
            Ok((y, p))
        } else {
            let (a, p) = attend(x)?;
            let x = norm(&x.f_add(&a.f_dropout(self.dropout, train)?)?, &self.attention_norm)?;
            let y = norm(&x.f_add(&self.ffn(&x, train)?)?, &self.output_norm)?;
            Ok((y, p))
        }
    }
}
