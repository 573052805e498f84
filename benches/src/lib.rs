//! Shared pieces of whetstone's benchmarks: the two benchmark workloads (taken from the shipped
//! recipes), synthetic batches for the criterion micro-benches, and a prototype of a leaner
//! AdamW used to quantify optimisation suggestions (it is *not* the library's optimiser).

#![allow(unused_must_use)]

use anyhow::{Context, Result};
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_data::Batch;
use whetstone_models::{ModelConfig, TextClassifier};
use whetstone_optim::{named_params, AdamWConfig, OptimState, Optimizer, Param, NO_DECAY};
use whetstone_train::Recipe;

/// The shipped default recipe (TextCNN, batch 50).
pub const DEFAULT_RECIPE: &str = include_str!("../../crates/whetstone/recipes/default.toml");
/// The shipped small-Transformer recipe (2 × 128, batch 32).
pub const TRANSFORMER_RECIPE: &str = include_str!("../../crates/whetstone/recipes/rt-transformer.toml");

/// Vocabulary size of the benchmark tokenizer (WordPiece, min frequency 2).
pub const VOCAB_SIZE: usize = 16000;
/// Tokens per example after truncation.
pub const MAX_LEN: usize = 64;

/// One benchmarked model shape with its recipe.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `textcnn` or `transformer`.
    pub name: &'static str,
    /// The parsed recipe (model, optimiser, schedule, train settings).
    pub recipe: Recipe,
}

impl Workload {
    /// Both workloads.
    pub fn all() -> Result<Vec<Workload>> {
        Ok(vec![Self::by_name("textcnn")?, Self::by_name("transformer")?])
    }

    /// `textcnn` (default recipe) or `transformer` (rt-transformer recipe).
    pub fn by_name(name: &str) -> Result<Workload> {
        let (name, text) = match name {
            "textcnn" => ("textcnn", DEFAULT_RECIPE),
            "transformer" => ("transformer", TRANSFORMER_RECIPE),
            other => anyhow::bail!("unknown workload `{other}` (known: textcnn, transformer)"),
        };
        let recipe: Recipe = toml::from_str(text).with_context(|| format!("parsing the {name} recipe"))?;
        Ok(Workload { name, recipe })
    }

    /// Training batch size of the recipe.
    pub fn batch_size(&self) -> usize {
        self.recipe.train.batch_size
    }

    /// Gradient-clipping norm of the recipe (0 = off).
    pub fn clip_norm(&self) -> f64 {
        self.recipe.train.clip_norm
    }

    /// The model configuration (whetstone's own serde form, also handed to the Python peer).
    pub fn model_config(&self) -> &ModelConfig {
        &self.recipe.model
    }

    /// Build the model in a fresh CPU `VarStore`, seeded.
    pub fn build(&self, vocab_size: i64, num_labels: i64, seed: i64) -> Result<(VarStore, Box<dyn TextClassifier>)> {
        tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let model = self.recipe.model.build(&vs.root(), vocab_size, num_labels)?;
        Ok((vs, model))
    }
}

/// A synthetic padded batch: `b` sequences whose lengths cycle through `[t/2, t]`, ids uniform
/// in `[5, vocab)`, labels alternating over `num_labels`. Deterministic for a given seed.
pub fn synthetic_batch(b: i64, t: i64, vocab: i64, num_labels: i64, seed: i64) -> Batch {
    tch::manual_seed(seed);
    let ids = Tensor::randint_low(5, vocab, [b, t], (Kind::Int64, Device::Cpu));
    let lens: Vec<i64> = (0..b).map(|i| t / 2 + (i * 7) % (t - t / 2 + 1)).collect();
    let lens = Tensor::from_slice(&lens).unsqueeze(1);
    let pos = Tensor::arange(t, (Kind::Int64, Device::Cpu)).unsqueeze(0);
    let mask = pos.lt_tensor(&lens).to_kind(Kind::Int64);
    let input_ids = &ids * &mask;
    let labels = Tensor::arange(b, (Kind::Int64, Device::Cpu)).remainder(num_labels);
    Batch { input_ids, attention_mask: mask, labels }
}

/// A prototype AdamW with the same update as `whetstone_optim::AdamW` but without per-step
/// temporaries: one persistent scratch buffer per parameter, `lerp_`/`mul_out`/`sqrt_out`/
/// `addcdiv_` instead of allocating `g·(1−β₂)·g`, `√v`, `m·(−α)`. 8 memory passes per tensor
/// and no allocation, against ~12 passes and 4 tensor allocations. Rounding differs from
/// torch's in the last bit (the algebra is rearranged), so it only serves to measure.
#[derive(Debug)]
pub struct LeanAdamW {
    params: Vec<Param>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    scratch: Vec<Tensor>,
    config: AdamWConfig,
    step: u64,
}

impl LeanAdamW {
    /// Over the trainable variables of `vs`, with `weight_decay` except on biases / LayerNorm.
    pub fn new(vs: &VarStore, weight_decay: f64) -> Self {
        let params = named_params(vs, weight_decay, NO_DECAY);
        Self::from_params(params)
    }

    /// Over explicit parameters.
    pub fn from_params(params: Vec<Param>) -> Self {
        let z = |p: &Param| p.tensor.zeros_like();
        Self {
            exp_avg: params.iter().map(z).collect(),
            exp_avg_sq: params.iter().map(z).collect(),
            scratch: params.iter().map(z).collect(),
            params,
            config: AdamWConfig::default(),
            step: 0,
        }
    }
}

impl Optimizer for LeanAdamW {
    fn step(&mut self, lr: f64) -> whetstone_optim::Result<()> {
        self.step += 1;
        let (b1, b2) = self.config.betas;
        let t = self.step as i32;
        let step_size = lr / (1.0 - b1.powi(t));
        let bc2 = (1.0 - b2.powi(t)).sqrt();
        let eps = self.config.eps;
        tch::no_grad(|| {
            for (((p, m), v), s) in self.params.iter_mut().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq).zip(&mut self.scratch) {
                let g = p.tensor.grad();
                if !g.defined() {
                    continue;
                }
                if p.weight_decay != 0.0 {
                    p.tensor.f_mul_scalar_(1.0 - lr * p.weight_decay)?;
                }
                m.f_lerp_(&g, 1.0 - b1)?;
                g.f_mul_out(s, &g)?; // s = g²
                v.f_lerp_(&*s, 1.0 - b2)?; // v = β₂v + (1−β₂)g²
                v.f_sqrt_out(s)?; // s = √v
                // θ −= α·m / (√v/bc2 + ε)  ⇔  θ += m / ((√v + ε·bc2) · (−1/(α·bc2)))
                s.f_add_scalar_(eps * bc2)?;
                s.f_mul_scalar_(-1.0 / (step_size * bc2))?;
                p.tensor.f_addcdiv_(&*m, &*s)?;
            }
            Ok(())
        })
    }

    fn params(&self) -> Vec<&Tensor> {
        self.params.iter().map(|p| &p.tensor).collect()
    }

    fn state(&self) -> OptimState {
        OptimState { step: self.step, tensors: Vec::new() }
    }

    fn load_state(&mut self, _state: &OptimState) -> whetstone_optim::Result<()> {
        Ok(())
    }
}
