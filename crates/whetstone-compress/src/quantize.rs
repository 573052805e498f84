//! Dynamic int8 quantisation of Linear layers for CPU inference.
//!
//! tch 0.24 does not bind `fbgemm_linear_int8_weight_fp32_activation` /
//! `fbgemm_pack_quantized_matrix` (what `torch.quantization.quantize_dynamic` calls on x86), nor
//! the `quantized::linear_dynamic` op. It does bind `_int_mm` (int8 × int8 → int32 GEMM), which
//! gives the same scheme written out: weights quantised once per output channel (symmetric,
//! scale = max|w|/127), activations quantised per row at run time, an integer matrix product,
//! and a float rescale (Jacob et al. 2018; Zafrir et al. 2019, "Q8BERT").

use crate::error::{CompressError, Result};
use tch::{Kind, Tensor};
use whetstone_models::{ModelError, Pooling, TextClassifier, TransformerClassifier, TransformerEncoder};

/// A Linear layer with int8 weights: y = (q(x) · q(W)ᵀ) · s_x · s_w + b.
#[derive(Debug)]
pub struct QuantizedLinear {
    /// Int8 weight, transposed to `[in, out]` for `_int_mm`.
    weight_t: Tensor,
    /// Per-output-channel scales `[out]` (f32).
    scales: Tensor,
    bias: Option<Tensor>,
}

impl QuantizedLinear {
    /// Quantise `weight` `[out, in]` (and keep `bias` in f32).
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        tch::no_grad(|| {
            let w = weight.f_detach()?.f_to_kind(Kind::Float)?;
            let scales = w.f_abs()?.f_amax([1].as_slice(), true)?.f_clamp_min(1e-12)?.f_div_scalar(127.0)?;
            let q = w.f_div(&scales)?.f_round()?.f_clamp(-127, 127)?.f_to_kind(Kind::Int8)?;
            Ok(Self {
                weight_t: q.f_tr()?.f_contiguous()?,
                scales: scales.f_reshape([-1])?,
                bias: bias.map(|b| b.f_detach()?.f_to_kind(Kind::Float)).transpose()?,
            })
        })
    }

    /// Bytes held: int8 weights, f32 scales and bias.
    pub fn size_bytes(&self) -> usize {
        self.weight_t.numel() + 4 * (self.scales.numel() + self.bias.as_ref().map_or(0, |b| b.numel()))
    }

    /// The layer applied to `x` `[…, in]` (f32), activations quantised per row.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let k = *size.last().unwrap_or(&0);
        let x2 = x.f_reshape([-1, k])?.f_to_kind(Kind::Float)?;
        let sx = x2.f_abs()?.f_amax([1].as_slice(), true)?.f_clamp_min(1e-12)?.f_div_scalar(127.0)?;
        let xq = x2.f_div(&sx)?.f_round()?.f_clamp(-127, 127)?.f_to_kind(Kind::Int8)?;
        let acc = xq.f_internal_int_mm(&self.weight_t)?;
        let mut y = acc.f_to_kind(Kind::Float)?.f_mul(&sx)?.f_mul(&self.scales.f_unsqueeze(0)?)?;
        if let Some(b) = &self.bias {
            y = y.f_add(b)?;
        }
        let mut out_shape = size[..size.len() - 1].to_vec();
        out_shape.push(self.scales.size()[0]);
        Ok(y.f_reshape(out_shape.as_slice())?)
    }
}

#[derive(Debug)]
struct QuantizedLayer {
    qkv: [QuantizedLinear; 3],
    attention_out: QuantizedLinear,
    ffn_in: QuantizedLinear,
    ffn_out: QuantizedLinear,
    attention_norm: (Tensor, Tensor),
    output_norm: (Tensor, Tensor),
    heads: i64,
}

/// A [`TransformerClassifier`] for CPU inference whose encoder Linear layers run in int8
/// ([`QuantizedLinear`]); embeddings, LayerNorms and the head stay f32.
///
/// ```
/// use whetstone_compress::QuantizedClassifier;
/// use whetstone_models::{TextClassifier, TransformerClassifier, TransformerClassifierConfig, TransformerConfig};
/// use tch::{nn::VarStore, Device, Kind, Tensor};
/// let vs = VarStore::new(Device::Cpu);
/// let cfg = TransformerClassifierConfig { encoder: TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 8, ..Default::default() }, ..Default::default() };
/// let model = TransformerClassifier::new(&vs.root(), 50, 2, &cfg)?;
/// let int8 = QuantizedClassifier::new(&model)?;
/// let ids = Tensor::from_slice(&[2i64, 7, 9, 3]).view([1, 4]);
/// let logits = int8.try_forward(&ids, &ids.ones_like())?;
/// assert_eq!(logits.size(), vec![1, 2]);
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
#[derive(Debug)]
pub struct QuantizedClassifier {
    embeddings: [Tensor; 3],
    embedding_norm: (Tensor, Tensor),
    layers: Vec<QuantizedLayer>,
    final_norm: Option<(Tensor, Tensor)>,
    classifier: (Tensor, Tensor),
    head_dim: i64,
    eps: f64,
    pre_norm: bool,
    pooling: Pooling,
}

impl QuantizedClassifier {
    /// Quantise the encoder Linear layers of `model` (a copy; `model` is unchanged).
    pub fn new(model: &TransformerClassifier) -> Result<Self> {
        let named: std::collections::HashMap<String, Tensor> = model.named_parameters().into_iter().collect();
        let get = |n: &str| -> Result<Tensor> {
            named.get(n).map(|t| t.detach()).ok_or_else(|| CompressError::Config(format!("the model has no `{n}` to quantise")))
        };
        let lin = |p: &str| -> Result<QuantizedLinear> { QuantizedLinear::new(&get(&format!("{p}.weight"))?, named.get(&format!("{p}.bias"))) };
        let norm = |p: &str| -> Result<(Tensor, Tensor)> { Ok((get(&format!("{p}.weight"))?, get(&format!("{p}.bias"))?)) };
        let c = model.encoder().config();
        let mut layers = Vec::new();
        for (i, layer) in model.encoder().layers().iter().enumerate() {
            let p = format!("encoder.layer.{i}");
            layers.push(QuantizedLayer {
                qkv: [lin(&format!("{p}.attention.self.query"))?, lin(&format!("{p}.attention.self.key"))?, lin(&format!("{p}.attention.self.value"))?],
                attention_out: lin(&format!("{p}.attention.output.dense"))?,
                ffn_in: lin(&format!("{p}.intermediate.dense"))?,
                ffn_out: lin(&format!("{p}.output.dense"))?,
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                heads: layer.shape().heads as i64,
            });
        }
        Ok(Self {
            embeddings: [get("embeddings.word_embeddings.weight")?, get("embeddings.position_embeddings.weight")?, get("embeddings.token_type_embeddings.weight")?],
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            final_norm: if c.pre_norm { Some(norm("encoder.LayerNorm")?) } else { None },
            classifier: (get("classifier.weight")?, get("classifier.bias")?),
            head_dim: c.head_dim() as i64,
            eps: c.layer_norm_eps,
            pre_norm: c.pre_norm,
            pooling: model.pooling(),
        })
    }

    /// Bytes of the weights: int8 Linear layers plus the f32 rest.
    pub fn size_bytes(&self) -> usize {
        let f32s = |ts: &[&Tensor]| ts.iter().map(|t| 4 * t.numel()).sum::<usize>();
        let mut n = f32s(&[&self.embeddings[0], &self.embeddings[1], &self.embeddings[2], &self.embedding_norm.0, &self.embedding_norm.1, &self.classifier.0, &self.classifier.1]);
        for l in &self.layers {
            n += l.qkv.iter().chain([&l.attention_out, &l.ffn_in, &l.ffn_out]).map(QuantizedLinear::size_bytes).sum::<usize>();
            n += f32s(&[&l.attention_norm.0, &l.attention_norm.1, &l.output_norm.0, &l.output_norm.1]);
        }
        n + self.final_norm.as_ref().map_or(0, |(w, b)| f32s(&[w, b]))
    }

    /// Every tensor of the int8 model by name (int8 weights as `….weight_int8` `[in, out]` with
    /// their `….scale`; the f32 rest under the model's names), for writing a checkpoint whose
    /// size is the int8 model's.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![
            ("embeddings.word_embeddings.weight".to_string(), self.embeddings[0].shallow_clone()),
            ("embeddings.position_embeddings.weight".into(), self.embeddings[1].shallow_clone()),
            ("embeddings.token_type_embeddings.weight".into(), self.embeddings[2].shallow_clone()),
            ("embeddings.LayerNorm.weight".into(), self.embedding_norm.0.shallow_clone()),
            ("embeddings.LayerNorm.bias".into(), self.embedding_norm.1.shallow_clone()),
            ("classifier.weight".into(), self.classifier.0.shallow_clone()),
            ("classifier.bias".into(), self.classifier.1.shallow_clone()),
        ];
        let lin = |out: &mut Vec<(String, Tensor)>, p: String, l: &QuantizedLinear| {
            out.push((format!("{p}.weight_int8"), l.weight_t.shallow_clone()));
            out.push((format!("{p}.scale"), l.scales.shallow_clone()));
            if let Some(b) = &l.bias {
                out.push((format!("{p}.bias"), b.shallow_clone()));
            }
        };
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("encoder.layer.{i}");
            for (n, q) in ["query", "key", "value"].iter().zip(&l.qkv) {
                lin(&mut out, format!("{p}.attention.self.{n}"), q);
            }
            lin(&mut out, format!("{p}.attention.output.dense"), &l.attention_out);
            lin(&mut out, format!("{p}.intermediate.dense"), &l.ffn_in);
            lin(&mut out, format!("{p}.output.dense"), &l.ffn_out);
            for (n, (w, b)) in [("attention.output.LayerNorm", &l.attention_norm), ("output.LayerNorm", &l.output_norm)] {
                out.push((format!("{p}.{n}.weight"), w.shallow_clone()));
                out.push((format!("{p}.{n}.bias"), b.shallow_clone()));
            }
        }
        if let Some((w, b)) = &self.final_norm {
            out.push(("encoder.LayerNorm.weight".into(), w.shallow_clone()));
            out.push(("encoder.LayerNorm.bias".into(), b.shallow_clone()));
        }
        out
    }

    fn norm(&self, x: &Tensor, (w, b): &(Tensor, Tensor)) -> Result<Tensor> {
        Ok(x.f_layer_norm([w.size()[0]].as_slice(), Some(w), Some(b), self.eps, false)?)
    }

    fn attention(&self, l: &QuantizedLayer, x: &Tensor, keep: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.size3()?;
        let split = |y: Tensor| y.f_view([b, t, l.heads, self.head_dim]).and_then(|y| y.f_transpose(1, 2));
        let q = split(l.qkv[0].forward(x)?)?;
        let k = split(l.qkv[1].forward(x)?)?;
        let v = split(l.qkv[2].forward(x)?)?;
        let ctx = Tensor::f_scaled_dot_product_attention(&q, &k, &v, Some(keep), 0.0, false, None, false)?;
        l.attention_out.forward(&ctx.f_transpose(1, 2)?.f_contiguous()?.f_view([b, t, l.heads * self.head_dim])?)
    }

    fn ffn(&self, l: &QuantizedLayer, x: &Tensor) -> Result<Tensor> {
        l.ffn_out.forward(&l.ffn_in.forward(x)?.f_gelu("none")?)
    }

    /// Logits `[B, labels]` (f32), with errors.
    pub fn try_forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| {
            let t = input_ids.size()[1];
            let pos = Tensor::f_arange(t, (Kind::Int64, input_ids.device()))?.f_unsqueeze(0)?;
            let e = Tensor::f_embedding(&self.embeddings[0], input_ids, -1, false, false)?
                .f_add(&Tensor::f_embedding(&self.embeddings[1], &pos, -1, false, false)?)?
                .f_add(&Tensor::f_embedding(&self.embeddings[2], &input_ids.f_zeros_like()?, -1, false, false)?)?;
            let mut x = self.norm(&e, &self.embedding_norm)?;
            let keep = TransformerEncoder::attention_keep(attention_mask)?;
            for l in &self.layers {
                x = if self.pre_norm {
                    let x = x.f_add(&self.attention(l, &self.norm(&x, &l.attention_norm)?, &keep)?)?;
                    x.f_add(&self.ffn(l, &self.norm(&x, &l.output_norm)?)?)?
                } else {
                    let x = self.norm(&x.f_add(&self.attention(l, &x, &keep)?)?, &l.attention_norm)?;
                    self.norm(&x.f_add(&self.ffn(l, &x)?)?, &l.output_norm)?
                };
            }
            if let Some(n) = &self.final_norm {
                x = self.norm(&x, n)?;
            }
            let pooled = whetstone_models::pool(&x, attention_mask, self.pooling)?;
            Ok(pooled.f_linear(&self.classifier.0, Some(&self.classifier.1))?)
        })
    }
}

impl TextClassifier for QuantizedClassifier {
    /// Inference only: `train` is ignored (no dropout, no gradients).
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, _train: bool) -> whetstone_models::Result<Tensor> {
        // try_forward fails only in libtorch (directly or through the models crate).
        self.try_forward(input_ids, attention_mask).map_err(|e| match e {
            CompressError::Torch(e) => ModelError::Torch(e),
            CompressError::Model(e) => e,
            other => ModelError::Torch(tch::TchError::Torch(format!("int8 forward: {other}"))),
        })
    }
}
