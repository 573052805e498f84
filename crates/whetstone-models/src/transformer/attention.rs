use super::TransformerConfig;
use crate::error::Result;
use crate::ops::linear;
use tch::{nn, Kind, Tensor};

/// Multi-head self-attention with BERT's parameter names (`attention.self.{query,key,value}`,
/// `attention.output.dense`). Uses libtorch's fused `scaled_dot_product_attention`; the
/// probabilities are only materialised on request ([`SelfAttention::forward_with_probs`]).
#[derive(Debug)]
pub struct SelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    output: nn::Linear,
    heads: i64,
    head_dim: i64,
    attention_dropout: f64,
}

impl SelfAttention {
    /// Parameters under `p` = `encoder.layer.N.attention`, with `heads` heads of width
    /// `c.head_dim()` (fewer than `c.heads` after structured pruning).
    pub fn new(p: &nn::Path, c: &TransformerConfig, heads: usize) -> Self {
        let h = c.hidden as i64;
        let inner = (heads * c.head_dim()) as i64;
        let lin = |q: nn::Path| nn::linear(q, h, inner, super::linear_init(c));
        let s = p / "self";
        Self {
            query: lin(&s / "query"),
            key: lin(&s / "key"),
            value: lin(&s / "value"),
            output: nn::linear(p / "output" / "dense", inner, h, super::linear_init(c)),
            heads: heads as i64,
            head_dim: c.head_dim() as i64,
            attention_dropout: c.attention_dropout,
        }
    }

    /// Number of heads.
    pub fn heads(&self) -> i64 {
        self.heads
    }

    /// Parameters with BERT names relative to `encoder.layer.N.attention`.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = super::linear_parameters("self.query", &self.query);
        out.extend(super::linear_parameters("self.key", &self.key));
        out.extend(super::linear_parameters("self.value", &self.value));
        out.extend(super::linear_parameters("output.dense", &self.output));
        out
    }

    /// Queries, keys and values `[B, heads, T, head_dim]` of `x` `[B, T, H]`.
    fn qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.size3()?;
        let split = |l: &nn::Linear| -> Result<Tensor> { Ok(linear(x, l)?.f_view([b, t, self.heads, self.head_dim])?.f_transpose(1, 2)?) };
        Ok((split(&self.query)?, split(&self.key)?, split(&self.value)?))
    }

    /// Heads `[B, heads, T, head_dim]` back to `[B, T, heads·head_dim]`, then the output projection.
    fn merge(&self, ctx: Tensor) -> Result<Tensor> {
        let (b, _, t, _) = ctx.size4()?;
        linear(&ctx.f_transpose(1, 2)?.f_contiguous()?.f_view([b, t, self.heads * self.head_dim])?, &self.output)
    }

    /// `x` `[B, T, H]`; `keep` `[B, 1, 1, T]` boolean, true where a key may be attended to.
    /// Returns the projected output (before dropout and residual).
    pub fn forward_t(&self, x: &Tensor, keep: &Tensor, train: bool) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x)?;
        let p = if train { self.attention_dropout } else { 0.0 };
        let ctx = Tensor::f_scaled_dot_product_attention(&q, &k, &v, Some(keep), p, false, None, false)?;
        self.merge(ctx)
    }

    /// As [`Self::forward_t`], computing the attention explicitly, and also returning the
    /// probabilities `[B, heads, T, T]` (before dropout), e.g. for attention-map distillation
    /// (TinyBERT, Jiao et al. 2020). Slower than the fused kernel; same output up to rounding.
    pub fn forward_with_probs(&self, x: &Tensor, keep: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (q, k, v) = self.qkv(x)?;
        let scores = q.f_matmul(&k.f_transpose(-2, -1)?)?.f_div_scalar((self.head_dim as f64).sqrt())?;
        let probs = scores.f_masked_fill(&keep.f_logical_not()?, f64::NEG_INFINITY)?.f_softmax(-1, Kind::Float)?.f_to_kind(x.kind())?;
        let p = if train { self.attention_dropout } else { 0.0 };
        let ctx = probs.f_dropout(p, train)?.f_matmul(&v)?;
        Ok((self.merge(ctx)?, probs))
    }
}
