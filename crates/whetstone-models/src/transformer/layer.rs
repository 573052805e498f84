use super::{attention::SelfAttention, LayerShape, TransformerConfig};
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

    fn ffn(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.intermediate).gelu("none").apply(&self.output).dropout(self.dropout, train)
    }

    /// `x` `[B, T, H]` through the block; `keep` as in [`SelfAttention::forward_t`].
    pub fn forward_t(&self, x: &Tensor, keep: &Tensor, train: bool) -> Tensor {
        self.forward_inner(x, keep, train, false).0
    }

    /// As [`Self::forward_t`], also returning the attention probabilities `[B, heads, T, T]`.
    pub fn forward_with_probs(&self, x: &Tensor, keep: &Tensor, train: bool) -> (Tensor, Tensor) {
        let (y, probs) = self.forward_inner(x, keep, train, true);
        (y, probs.expect("probabilities were requested"))
    }

    fn forward_inner(&self, x: &Tensor, keep: &Tensor, train: bool, probs: bool) -> (Tensor, Option<Tensor>) {
        let attend = |y: &Tensor| {
            if probs {
                let (o, p) = self.attention.forward_with_probs(y, keep, train);
                (o, Some(p))
            } else {
                (self.attention.forward_t(y, keep, train), None)
            }
        };
        if self.pre_norm {
            let (a, p) = attend(&x.apply(&self.attention_norm));
            let x = x + a.dropout(self.dropout, train);
            (&x + self.ffn(&x.apply(&self.output_norm), train), p)
        } else {
            let (a, p) = attend(x);
            let x = (x + a.dropout(self.dropout, train)).apply(&self.attention_norm);
            ((&x + self.ffn(&x, train)).apply(&self.output_norm), p)
        }
    }
}
