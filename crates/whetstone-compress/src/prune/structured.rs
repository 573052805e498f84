//! Structured pruning: rank attention heads and feed-forward neurons, then remove them
//! physically, so the result is a smaller dense model with a real speed-up (Michel et al. 2019,
//! "Are Sixteen Heads Really Better than One?"; Voita et al. 2019).

use super::magnitude::Scope;
use super::mask::MaskSet;
use super::structure::{LayerUnits, Structured};
use crate::error::{check_sparsity, CompressError, Result};
use std::collections::HashMap;
use tch::{nn, Kind, Tensor};
use whetstone_data::Batch;
use whetstone_models::{LayerShape, TextClassifier, TransformerClassifier, TransformerClassifierConfig};

/// Importance of every head and neuron, per layer (higher = keep).
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// `heads[layer][head]`.
    pub heads: Vec<Vec<f64>>,
    /// `neurons[layer][neuron]`.
    pub neurons: Vec<Vec<f64>>,
}

fn lookup<'a>(named: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    named.get(name).ok_or_else(|| CompressError::Masks(format!("the model has no parameter `{name}`")))
}

fn to_map(named: &[(String, Tensor)]) -> HashMap<String, Tensor> {
    named.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
}

fn to_vec(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(&t.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?)?)
}

/// Magnitude importance: the L2 norm of each head's rows of the query, key and value weights and
/// columns of the output weight; of each neuron's row of the feed-forward input weight and column
/// of its output weight.
pub fn magnitude_importance(model: &dyn Structured, named: &[(String, Tensor)]) -> Result<Importance> {
    let named = to_map(named);
    let (mut heads, mut neurons) = (Vec::new(), Vec::new());
    tch::no_grad(|| -> Result<()> {
        for u in model.layer_units() {
            let d = u.head_dim as i64;
            let mut h = Tensor::f_zeros([u.heads as i64], (Kind::Double, tch::Device::Cpu))?;
            for name in &u.qkv {
                let w = lookup(&named, &format!("{name}.weight"))?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?;
                h = h.f_add(&w.f_square()?.f_reshape([u.heads as i64, d, -1])?.f_sum_dim_intlist([1, 2].as_slice(), false, Kind::Double)?)?;
            }
            let wo = lookup(&named, &format!("{}.weight", u.attention_out))?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?;
            h = h.f_add(&wo.f_square()?.f_reshape([-1, u.heads as i64, d])?.f_sum_dim_intlist([0, 2].as_slice(), false, Kind::Double)?)?;
            heads.push(to_vec(&h.f_sqrt()?)?);
            let wi = lookup(&named, &format!("{}.weight", u.ffn_in))?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?;
            let wf = lookup(&named, &format!("{}.weight", u.ffn_out))?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?;
            let n = wi.f_square()?.f_sum_dim_intlist(1, false, Kind::Double)?.f_add(&wf.f_square()?.f_sum_dim_intlist(0, false, Kind::Double)?)?;
            neurons.push(to_vec(&n.f_sqrt()?)?);
        }
        Ok(())
    })?;
    Ok(Importance { heads, neurons })
}

/// Taylor / gradient importance (Michel et al. 2019; Molchanov et al. 2017), accumulated over
/// batches. With a gate ξ on a head's output, ∂L/∂ξ at ξ = 1 equals Σ W_o[:, head] ⊙
/// ∂L/∂W_o[:, head] (the gate scales exactly those columns' contribution), so the importance
/// |∂L/∂ξ| comes from the parameter gradients alone; likewise Σᵢ W_out[i, j] ∂L/∂W_out[i, j]
/// for feed-forward neuron j. Call [`TaylorImportance::accumulate`] after each `backward`.
#[derive(Debug)]
pub struct TaylorImportance {
    units: Vec<LayerUnits>,
    weights: Vec<(Tensor, Tensor)>,
    heads: Vec<Tensor>,
    neurons: Vec<Tensor>,
    batches: usize,
}

impl TaylorImportance {
    /// Track the heads and neurons of `model`, whose parameters are `named`.
    pub fn new(model: &dyn Structured, named: &[(String, Tensor)]) -> Result<Self> {
        let map = to_map(named);
        let units = model.layer_units();
        let mut weights = Vec::new();
        for u in &units {
            weights.push((lookup(&map, &format!("{}.weight", u.attention_out))?.shallow_clone(), lookup(&map, &format!("{}.weight", u.ffn_out))?.shallow_clone()));
        }
        let heads = units.iter().map(|u| Tensor::zeros([u.heads as i64], (Kind::Double, tch::Device::Cpu))).collect();
        let neurons = units.iter().map(|u| Tensor::zeros([u.ffn as i64], (Kind::Double, tch::Device::Cpu))).collect();
        Ok(Self { units, weights, heads, neurons, batches: 0 })
    }

    /// Add |∂L/∂ξ| of every head and neuron from the current gradients.
    pub fn accumulate(&mut self) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for (i, u) in self.units.iter().enumerate() {
                let (wo, wf) = &self.weights[i];
                let (go, gf) = (wo.grad(), wf.grad());
                if !go.defined() || !gf.defined() {
                    return Err(CompressError::Config(format!("layer {i} has no gradient: run backward before accumulate")));
                }
                let ho = wo.f_mul(&go)?.f_to_kind(Kind::Double)?.f_reshape([-1, u.heads as i64, u.head_dim as i64])?;
                let h = ho.f_sum_dim_intlist([0, 2].as_slice(), false, Kind::Double)?.f_abs()?.f_to_device(tch::Device::Cpu)?;
                let _ = self.heads[i].f_add_(&h)?;
                let n = wf.f_mul(&gf)?.f_to_kind(Kind::Double)?.f_sum_dim_intlist(0, false, Kind::Double)?.f_abs()?.f_to_device(tch::Device::Cpu)?;
                let _ = self.neurons[i].f_add_(&n)?;
            }
            Ok(())
        })?;
        self.batches += 1;
        Ok(())
    }

    /// The mean importance over the accumulated batches.
    pub fn finish(&self) -> Result<Importance> {
        let k = self.batches.max(1) as f64;
        let scale = |v: &[Tensor]| v.iter().map(|t| Ok(to_vec(t)?.into_iter().map(|x| x / k).collect())).collect::<Result<Vec<Vec<f64>>>>();
        Ok(Importance { heads: scale(&self.heads)?, neurons: scale(&self.neurons)? })
    }
}

/// Taylor importance of `model` over `batches` under cross-entropy (dropout off). Gradients of
/// the model's parameters are zeroed before each batch and after the last.
pub fn taylor_importance(model: &TransformerClassifier, batches: &[Batch]) -> Result<Importance> {
    let named = model.named_parameters();
    let mut acc = TaylorImportance::new(model, &named)?;
    let zero = || -> Result<()> {
        for (_, p) in &named {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.f_zero_()?;
            }
        }
        Ok(())
    };
    for b in batches {
        zero()?;
        let logits = model.forward_t(&b.input_ids, &b.attention_mask, false)?;
        logits.f_cross_entropy_loss::<Tensor>(&b.labels, None, tch::Reduction::Mean, -100, 0.0)?.f_backward()?;
        acc.accumulate()?;
    }
    zero()?;
    acc.finish()
}

/// Which heads and neurons each layer keeps (sorted indices).
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredPlan {
    /// Kept heads per layer.
    pub heads: Vec<Vec<usize>>,
    /// Kept feed-forward neurons per layer.
    pub neurons: Vec<Vec<usize>>,
}

/// Indices of the units to keep after removing `fraction` of them by lowest score; each group
/// keeps at least one. Global ranking first L2-normalises each layer's scores (Michel et al.).
fn keep_units(scores: &[Vec<f64>], fraction: f64, scope: Scope) -> Vec<Vec<usize>> {
    let mut keep: Vec<Vec<bool>> = scores.iter().map(|s| vec![true; s.len()]).collect();
    match scope {
        Scope::PerLayer => {
            for (l, s) in scores.iter().enumerate() {
                let k = ((fraction * s.len() as f64).round() as usize).min(s.len().saturating_sub(1));
                let mut order: Vec<usize> = (0..s.len()).collect();
                order.sort_by(|&a, &b| s[a].total_cmp(&s[b]).then(a.cmp(&b)));
                for &j in order.iter().take(k) {
                    keep[l][j] = false;
                }
            }
        }
        Scope::Global => {
            let mut all: Vec<(f64, usize, usize)> = Vec::new();
            for (l, s) in scores.iter().enumerate() {
                let norm = s.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
                all.extend(s.iter().enumerate().map(|(j, x)| (x / norm, l, j)));
            }
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
            let mut k = (fraction * all.len() as f64).round() as usize;
            let mut left: Vec<usize> = scores.iter().map(|s| s.len()).collect();
            for &(_, l, j) in &all {
                if k == 0 {
                    break;
                }
                if left[l] > 1 {
                    keep[l][j] = false;
                    left[l] -= 1;
                    k -= 1;
                }
            }
        }
    }
    keep.into_iter().map(|k| k.iter().enumerate().filter(|(_, &b)| b).map(|(j, _)| j).collect()).collect()
}

impl StructuredPlan {
    /// Remove `head_fraction` of the heads and `ffn_fraction` of the neurons with the lowest
    /// importance (each in `[0, 1)`; every layer keeps at least one of each).
    ///
    /// ```
    /// use whetstone_compress::{Importance, Scope, StructuredPlan};
    /// let imp = Importance { heads: vec![vec![0.1, 0.9], vec![0.5, 0.4]], neurons: vec![vec![3.0, 1.0, 2.0, 0.0]; 2] };
    /// let plan = StructuredPlan::from_importance(&imp, 0.5, 0.5, Scope::PerLayer)?;
    /// assert_eq!(plan.heads, vec![vec![1], vec![0]]);
    /// assert_eq!(plan.neurons[0], vec![0, 2]);
    /// # Ok::<(), whetstone_compress::CompressError>(())
    /// ```
    pub fn from_importance(importance: &Importance, head_fraction: f64, ffn_fraction: f64, scope: Scope) -> Result<Self> {
        check_sparsity(head_fraction)?;
        check_sparsity(ffn_fraction)?;
        Ok(Self { heads: keep_units(&importance.heads, head_fraction, scope), neurons: keep_units(&importance.neurons, ffn_fraction, scope) })
    }

    /// The layer shapes after pruning.
    pub fn layer_shapes(&self) -> Vec<LayerShape> {
        self.heads.iter().zip(&self.neurons).map(|(h, n)| LayerShape { heads: h.len(), ffn: n.len() }).collect()
    }

    fn check(&self, units: &[LayerUnits]) -> Result<()> {
        if units.len() != self.heads.len() || units.len() != self.neurons.len() {
            return Err(CompressError::Config(format!("the plan covers {} layers, the model has {}", self.heads.len(), units.len())));
        }
        for (l, u) in units.iter().enumerate() {
            let ok = |v: &[usize], n: usize| !v.is_empty() && v.windows(2).all(|w| w[0] < w[1]) && v.iter().all(|&j| j < n);
            if !ok(&self.heads[l], u.heads) || !ok(&self.neurons[l], u.ffn) {
                return Err(CompressError::Config(format!("layer {l}: kept heads/neurons must be non-empty, increasing and below {}/{}", u.heads, u.ffn)));
            }
        }
        Ok(())
    }

    /// Rows of a head-grouped projection that the plan keeps in layer `l`.
    fn head_rows(&self, l: usize, head_dim: usize) -> Tensor {
        let rows: Vec<i64> = self.heads[l].iter().flat_map(|&h| (h * head_dim..(h + 1) * head_dim).map(|r| r as i64)).collect();
        Tensor::from_slice(&rows)
    }

    /// Masks that zero the removed heads and neurons in the unpruned model: their rows of the
    /// query/key/value and feed-forward input projections (weights and biases) and their columns
    /// of the output projections. The masked model computes exactly what the physically pruned
    /// one does.
    pub fn masks(&self, model: &dyn Structured, named: &[(String, Tensor)]) -> Result<MaskSet> {
        let units = model.layer_units();
        self.check(&units)?;
        let map = to_map(named);
        let mut set = MaskSet::default();
        let keep_vec = |n: usize, idx: &Tensor| -> Result<Tensor> { Ok(Tensor::f_zeros([n as i64], (Kind::Float, tch::Device::Cpu))?.f_index_fill(0, idx, 1.0)?) };
        for (l, u) in units.iter().enumerate() {
            let rows = keep_vec(u.heads * u.head_dim, &self.head_rows(l, u.head_dim))?;
            let neurons = keep_vec(u.ffn, &Tensor::from_slice(&self.neurons[l].iter().map(|&j| j as i64).collect::<Vec<_>>()))?;
            let mut add = |prefix: &str, v: &Tensor, as_rows: bool| -> Result<()> {
                let w = lookup(&map, &format!("{prefix}.weight"))?;
                let (o, i) = w.size2()?;
                let m = if as_rows { v.f_unsqueeze(1)?.f_expand([o, i], false)? } else { v.f_unsqueeze(0)?.f_expand([o, i], false)? };
                set.insert(format!("{prefix}.weight"), m.f_to_device(w.device())?)?;
                if as_rows && map.contains_key(&format!("{prefix}.bias")) {
                    set.insert(format!("{prefix}.bias"), v.f_to_device(w.device())?)?;
                }
                Ok(())
            };
            for q in &u.qkv {
                add(q, &rows, true)?;
            }
            add(&u.attention_out, &rows, false)?;
            add(&u.ffn_in, &neurons, true)?;
            add(&u.ffn_out, &neurons, false)?;
        }
        Ok(set)
    }
}

/// Build, under `p`, a smaller [`TransformerClassifier`] holding only the heads and neurons
/// `plan` keeps: each dense tensor is a slice of the original, so the result is an ordinary
/// model (its config carries per-layer [`LayerShape`]s) that saves with
/// [`whetstone_models::save_varstore`] and loads without masks. Returns its config too.
pub fn prune_structured(model: &TransformerClassifier, plan: &StructuredPlan, p: &nn::Path) -> Result<(TransformerClassifierConfig, TransformerClassifier)> {
    let units = model.layer_units();
    plan.check(&units)?;
    let mut encoder = model.encoder().config().clone();
    encoder.layer_shapes = plan.layer_shapes();
    let config = TransformerClassifierConfig { encoder, pooling: model.pooling(), pretrained: None };
    let pruned = TransformerClassifier::new(p, model.encoder().vocab_size(), model.head().num_labels(), &config)?;
    // How each pruned tensor is sliced from its original: (dimension, kept indices).
    let mut slices: HashMap<String, (i64, Tensor)> = HashMap::new();
    for (l, u) in units.iter().enumerate() {
        let rows = plan.head_rows(l, u.head_dim);
        let neurons = Tensor::from_slice(&plan.neurons[l].iter().map(|&j| j as i64).collect::<Vec<_>>());
        for q in &u.qkv {
            slices.insert(format!("{q}.weight"), (0, rows.shallow_clone()));
            slices.insert(format!("{q}.bias"), (0, rows.shallow_clone()));
        }
        slices.insert(format!("{}.weight", u.attention_out), (1, rows.shallow_clone()));
        slices.insert(format!("{}.weight", u.ffn_in), (0, neurons.shallow_clone()));
        slices.insert(format!("{}.bias", u.ffn_in), (0, neurons.shallow_clone()));
        slices.insert(format!("{}.weight", u.ffn_out), (1, neurons));
    }
    let original = to_map(&model.named_parameters());
    tch::no_grad(|| -> Result<()> {
        for (name, mut target) in pruned.named_parameters() {
            let src = lookup(&original, &name)?;
            let value = match slices.get(&name) {
                Some((dim, idx)) => src.f_index_select(*dim, &idx.f_to_device(src.device())?)?,
                None => src.shallow_clone(),
            };
            if value.size() != target.size() {
                return Err(CompressError::Masks(format!("`{name}`: sliced shape {:?} does not fit the pruned model's {:?}", value.size(), target.size())));
            }
            target.f_copy_(&value)?;
        }
        Ok(())
    })?;
    Ok((config, pruned))
}
