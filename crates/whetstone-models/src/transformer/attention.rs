use super::TransformerConfig;
use tch::{nn, Tensor};

/// Multi-head self-attention with BERT's parameter names (`attention.self.{query,key,value}`,
/// `attention.output.dense`). Uses libtorch's fused `scaled_dot_product_attention`.
#[derive(Debug)]
pub struct SelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    output: nn::Linear,
    heads: i64,
    attention_dropout: f64,
}

impl SelfAttention {
    /// Parameters under `p` = `encoder.layer.N.attention`.
    pub fn new(p: &nn::Path, c: &TransformerConfig) -> Self {
        let h = c.hidden as i64;
        let lin = |q: nn::Path| nn::linear(q, h, h, super::linear_init(c));
        let s = p / "self";
        Self {
            query: lin(&s / "query"),
            key: lin(&s / "key"),
            value: lin(&s / "value"),
            output: lin(p / "output" / "dense"),
            heads: c.heads as i64,
            attention_dropout: c.attention_dropout,
        }
    }

    /// Parameters with BERT names relative to `encoder.layer.N.attention`.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = super::linear_parameters("self.query", &self.query);
        out.extend(super::linear_parameters("self.key", &self.key));
        out.extend(super::linear_parameters("self.value", &self.value));
        out.extend(super::linear_parameters("output.dense", &self.output));
        out
    }

    /// `x` `[B, T, H]`; `keep` `[B, 1, 1, T]` boolean, true where a key may be attended to.
    /// Returns the projected output (before dropout and residual).
    pub fn forward_t(&self, x: &Tensor, keep: &Tensor, train: bool) -> Tensor {
        let (b, t, h) = x.size3().expect("attention input must be [B, T, H]");
        let split = |y: Tensor| y.view([b, t, self.heads, h / self.heads]).transpose(1, 2);
        let q = split(x.apply(&self.query));
        let k = split(x.apply(&self.key));
        let v = split(x.apply(&self.value));
        let p = if train { self.attention_dropout } else { 0.0 };
        let ctx = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(keep), p, false, None, false);
        ctx.transpose(1, 2).contiguous().view([b, t, h]).apply(&self.output)
    }
}
