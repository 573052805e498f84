//! Shared pieces of whetstone's benchmarks: the training workloads (taken from the shipped
//! recipes), synthetic tokenised data for the criterion micro-benches, and the parameter shapes of the
//! optimiser-step benchmarks ([`optim_shapes`]).

pub mod machine;
pub mod study;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{nn::VarStore, Device};
use whetstone_data::Encoded;
use whetstone_models::{ModelConfig, TextClassifier};
use whetstone_run::Recipe;

/// The shipped default recipe (TextCNN, batch 50).
pub const DEFAULT_RECIPE: &str = include_str!("../../crates/whetstone/recipes/default.toml");
/// The shipped small-Transformer recipe (2 × 128, batch 32).
pub const TRANSFORMER_RECIPE: &str = include_str!("../../crates/whetstone/recipes/rt-transformer.toml");

/// The shipped MiniLM-L6 fine-tuning recipe (`minilm-rt`: batch 32, AdamW 5e-5, clip 1).
pub const MINILM_RECIPE: &str = include_str!("../../crates/whetstone/recipes/minilm-rt.toml");

/// MiniLM-L6's architecture (all-MiniLM-L6-v2's `config.json`: BERT-style post-LN encoder,
/// 6 layers × 384, 12 heads, FFN 1536, 512 positions, 2 token types, dropout 0.1, GELU,
/// LayerNorm eps 1e-12) with mean pooling, randomly initialised: the `minilm` workload's
/// model, in place of the recipe's `pretrained = "minilm-l6"` (the same shapes and arithmetic,
/// without the download).
pub const MINILM_MODEL: &str = r#"
kind = "transformer"
layers = 6
hidden = 384
heads = 12
ffn = 1536
max_len = 512
type_vocab_size = 2
dropout = 0.1
attention_dropout = 0.1
pre_norm = false
layer_norm_eps = 1e-12
init_std = 0.02
pooling = "mean"
"#;
/// MiniLM-L6's vocabulary (its uncased WordPiece tokenizer).
pub const MINILM_VOCAB: usize = 30522;

/// Vocabulary size of the benchmark tokenizer (WordPiece, min frequency 2).
pub const VOCAB_SIZE: usize = 16000;
/// Tokens per example after truncation.
pub const MAX_LEN: usize = 64;

/// One benchmarked model shape with its recipe.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `textcnn`, `transformer` or `minilm`.
    pub name: &'static str,
    /// The parsed recipe (model, optimiser, schedule, train settings).
    pub recipe: Recipe,
    /// The model's vocabulary when the architecture fixes it (MiniLM: 30522); `None` means
    /// the vocabulary of the tokenizer the batches come from.
    pub vocab_size: Option<usize>,
}

impl Workload {
    /// The two small workloads (`textcnn`, `transformer`).
    pub fn all() -> Result<Vec<Workload>> {
        Ok(vec![Self::by_name("textcnn")?, Self::by_name("transformer")?])
    }

    /// `textcnn` (default recipe), `transformer` (rt-transformer recipe) or `minilm` (the
    /// minilm-rt recipe's optimiser, schedule and batch settings with [`MINILM_MODEL`], randomly
    /// initialised, over a [`MINILM_VOCAB`] vocabulary).
    pub fn by_name(name: &str) -> Result<Workload> {
        let (name, text) = match name {
            "textcnn" => ("textcnn", DEFAULT_RECIPE),
            "transformer" => ("transformer", TRANSFORMER_RECIPE),
            "minilm" => ("minilm", MINILM_RECIPE),
            other => anyhow::bail!("unknown workload `{other}` (known: textcnn, transformer, minilm)"),
        };
        let mut recipe: Recipe = toml::from_str(text).with_context(|| format!("parsing the {name} recipe"))?;
        let mut vocab_size = None;
        if name == "minilm" {
            recipe.model = toml::from_str(MINILM_MODEL).context("parsing the MiniLM-L6 architecture")?;
            vocab_size = Some(MINILM_VOCAB);
        }
        Ok(Workload { name, recipe, vocab_size })
    }

    /// The model's vocabulary, given the tokenizer's (`tokenizer_vocab`, which must not exceed
    /// a fixed vocabulary: every id of the batches must have an embedding).
    pub fn vocab(&self, tokenizer_vocab: usize) -> Result<usize> {
        match self.vocab_size {
            None => Ok(tokenizer_vocab),
            Some(v) if v >= tokenizer_vocab => Ok(v),
            Some(v) => anyhow::bail!("{}: the tokenizer has {tokenizer_vocab} ids, more than the model's {v}", self.name),
        }
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

/// A synthetic tokenised split: `n` sequences whose lengths cycle through `[t/2, t]`, ids
/// uniform in `[5, vocab)`, labels alternating over `num_labels`. Deterministic for a given seed.
pub fn synthetic_split(n: usize, t: usize, vocab: i64, num_labels: i64, seed: u64) -> Encoded {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ids = (0..n).map(|i| (0..t / 2 + (i * 7) % (t - t / 2 + 1)).map(|_| rng.gen_range(5..vocab)).collect()).collect();
    let labels = (0..n as i64).map(|i| i % num_labels).collect();
    Encoded { ids, labels, pad_id: 0 }
}

/// Parameter sets of the optimiser-step benchmarks (`optim-speed` and the `optim_step`
/// criterion bench), as `(name, shape)` lists, and a float32 CPU `VarStore` holding them with
/// fixed random gradients.
pub mod optim_shapes {
    use tch::{nn::VarStore, Device, Kind, Tensor};

    /// A named parameter shape.
    pub type Shape = (String, Vec<i64>);

    /// MiniLM-L6 (BERT-style encoder, hidden 384, FFN 1536, 6 layers, vocabulary 30522, no
    /// pooler): 101 tensors, 22,565,376 parameters. Names follow Hugging Face's BERT, so the
    /// usual no-decay split (bias / LayerNorm) applies.
    pub fn minilm() -> Vec<Shape> {
        let h = 384;
        let f = 1536;
        let mut v: Vec<Shape> = vec![
            ("embeddings.word_embeddings.weight".into(), vec![30522, h]),
            ("embeddings.position_embeddings.weight".into(), vec![512, h]),
            ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
            ("embeddings.LayerNorm.weight".into(), vec![h]),
            ("embeddings.LayerNorm.bias".into(), vec![h]),
        ];
        for l in 0..6 {
            let p = format!("encoder.layer.{l}");
            for m in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                v.push((format!("{p}.{m}.weight"), vec![h, h]));
                v.push((format!("{p}.{m}.bias"), vec![h]));
            }
            v.push((format!("{p}.attention.output.LayerNorm.weight"), vec![h]));
            v.push((format!("{p}.attention.output.LayerNorm.bias"), vec![h]));
            v.push((format!("{p}.intermediate.dense.weight"), vec![f, h]));
            v.push((format!("{p}.intermediate.dense.bias"), vec![f]));
            v.push((format!("{p}.output.dense.weight"), vec![h, f]));
            v.push((format!("{p}.output.dense.bias"), vec![h]));
            v.push((format!("{p}.output.LayerNorm.weight"), vec![h]));
            v.push((format!("{p}.output.LayerNorm.bias"), vec![h]));
        }
        v
    }

    /// 200 small tensors of 5000 elements (1,000,000 parameters): 100 matrices 50×100
    /// (`tNNN.weight`) and 100 vectors of 5000 (`tNNN.bias`, so half of them get no weight decay).
    pub fn small() -> Vec<Shape> {
        (0..200).map(|i| if i % 2 == 0 { (format!("t{i:03}.weight"), vec![50, 100]) } else { (format!("t{i:03}.bias"), vec![5000]) }).collect()
    }

    /// `minilm` or `small`.
    pub fn by_name(name: &str) -> Option<Vec<Shape>> {
        match name {
            "minilm" => Some(minilm()),
            "small" => Some(small()),
            _ => None,
        }
    }

    /// Total number of elements.
    pub fn numel(shapes: &[Shape]) -> i64 {
        shapes.iter().map(|(_, s)| s.iter().product::<i64>()).sum()
    }

    /// A float32 CPU `VarStore` with these variables (N(0, 0.02²)) and fixed N(0, 1) gradients,
    /// seeded. The optimisers never write to the gradients, so every step sees the same values.
    pub fn store(shapes: &[Shape], seed: i64) -> VarStore {
        tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let vars: Vec<Tensor> = shapes
            .iter()
            .map(|(n, s)| {
                // VarStore names are dot-separated paths: walk down to the last component.
                let (dir, leaf) = n.rsplit_once('.').unwrap_or(("", n.as_str()));
                let path = dir.split('.').filter(|c| !c.is_empty()).fold(root.clone(), |p, c| p / c);
                path.randn(leaf, s, 0.0, 0.02)
            })
            .collect();
        // Define every `.grad` through one backward pass, then fill it with random values.
        let loss = vars.iter().map(|v| v.sum(Kind::Float)).fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
        loss.backward();
        tch::no_grad(|| {
            for v in &vars {
                let mut g = v.grad();
                g.copy_(&Tensor::randn_like(v));
            }
        });
        vs
    }
}
