//! One shared Transformer encoder with one head per task (multi-task learning, as in
//! MT-DNN, Liu et al. 2019): sequence heads pool the token states and classify them, token
//! heads classify every token state.
//!
//! Parameter names: the encoder's BERT names at the root (so a pretrained checkpoint loads
//! as for a single-task classifier), and each head under `heads.<task>.classifier.*`. The
//! first task is the main one: [`TextClassifier::forward_t`] is its head, so evaluation and
//! strategies written for single-task models work on it unchanged. Strategies that train
//! every head ask for the [`MultiHead`] capability ([`crate::require_multi_head`]).
//!
//! ```
//! use whetstone_models::{HeadKind, MultiHead, MultiTaskModel, Pooling, TaskHead, TextClassifier, TransformerConfig};
//! use tch::{nn::VarStore, Device, Kind, Tensor};
//! let vs = VarStore::new(Device::Cpu);
//! let tasks = [TaskHead::new("sentiment", HeadKind::Sequence, 2), TaskHead::new("ner", HeadKind::Token, 5)];
//! let enc = TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 16, ..Default::default() };
//! let model = MultiTaskModel::new(&vs.root(), 50, &enc, Pooling::Mean, &tasks)?;
//! let ids = Tensor::from_slice(&[2i64, 10, 11, 3]).view([1, 4]);
//! let mask = ids.ones_like();
//! assert_eq!(model.forward_t(&ids, &mask, false)?.size(), [1, 2]);
//! assert_eq!(model.forward_task(1, &ids, &mask, false)?.size(), [1, 4, 5]);
//! assert!(vs.variables().contains_key("heads.ner.classifier.weight"));
//! # Ok::<(), whetstone_models::ModelError>(())
//! ```

use crate::capability::EmbeddingInput;
use crate::classifier::TextClassifier;
use crate::error::{ModelError, Result};
use crate::head::{pool, ClassificationHead, Pooling};
use crate::pretrained::BertCheckpoint;
use crate::token_head::TokenHead;
use crate::transformer::{TransformerConfig, TransformerEncoder};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// What a task's head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// One class per sequence: pooling, then a linear classifier (`[B, C]`).
    Sequence,
    /// One class per token: a linear classifier on every token state (`[B, T, C]`).
    Token,
}

/// A task's head: its name (the parameter path `heads.<name>`), kind and number of classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHead {
    /// Task name: letters, digits, `-` and `_`.
    pub name: String,
    /// Sequence or token classification.
    pub kind: HeadKind,
    /// Number of classes (tags, for a token head).
    pub num_labels: usize,
}

impl TaskHead {
    /// A head description.
    pub fn new(name: impl Into<String>, kind: HeadKind, num_labels: usize) -> Self {
        Self { name: name.into(), kind, num_labels }
    }
}

/// A model with one shared encoder and one head per task.
pub trait MultiHead {
    /// The tasks, in head order (task 0 is the main task).
    fn tasks(&self) -> &[TaskHead];

    /// The logits of task `task`'s head: `[B, C]` for a sequence head, `[B, T, C]` for a
    /// token head. An index past the last task is an error.
    fn forward_task(&self, task: usize, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor>;

    /// The shared (encoder) parameters by name: what gradient surgery (PCGrad) projects.
    fn shared_parameters(&self) -> Vec<(String, Tensor)>;

    /// The last shared layer's parameters: the weights whose gradient norms GradNorm balances.
    fn last_shared_parameters(&self) -> Vec<(String, Tensor)>;
}

enum Head {
    Sequence(ClassificationHead),
    Token(TokenHead),
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Head::Sequence(h) => write!(f, "Sequence({} labels)", h.num_labels()),
            Head::Token(h) => write!(f, "Token({} labels)", h.num_labels()),
        }
    }
}

/// A Transformer encoder shared by several tasks' heads (see the module page).
#[derive(Debug)]
pub struct MultiTaskModel {
    encoder: TransformerEncoder,
    heads: Vec<Head>,
    tasks: Vec<TaskHead>,
    pooling: Pooling,
}

/// Check task names (non-empty, unique, usable in parameter paths) and class counts.
pub fn check_task_heads(tasks: &[TaskHead]) -> Result<()> {
    if tasks.is_empty() {
        return Err(ModelError::Config("a multi-task model needs at least one task".into()));
    }
    for (i, t) in tasks.iter().enumerate() {
        if t.name.is_empty() || !t.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ModelError::Config(format!("tasks[{i}].name `{}` must be non-empty letters, digits, `-` or `_`", t.name)));
        }
        if tasks[..i].iter().any(|u| u.name == t.name) {
            return Err(ModelError::Config(format!("tasks[{i}].name `{}` is used twice", t.name)));
        }
        if t.num_labels < 2 {
            return Err(ModelError::Config(format!("task `{}` has {} classes; a head needs at least 2", t.name, t.num_labels)));
        }
    }
    Ok(())
}

impl MultiTaskModel {
    /// A fresh encoder of shape `config` at the root of `p`, heads under `p / "heads"`.
    pub fn new(p: &nn::Path, vocab_size: i64, config: &TransformerConfig, pooling: Pooling, tasks: &[TaskHead]) -> Result<Self> {
        check_task_heads(tasks)?;
        let encoder = TransformerEncoder::new(p, vocab_size, config)?;
        Ok(Self::with_encoder(p, encoder, pooling, tasks))
    }

    /// The pretrained encoder of `ckpt` (its `classifier.*`, if any, is not used) with fresh heads.
    pub fn from_pretrained(p: &nn::Path, ckpt: &BertCheckpoint, pooling: Pooling, tasks: &[TaskHead]) -> Result<Self> {
        check_task_heads(tasks)?;
        let ckpt = ckpt.clone().ignoring(["classifier."]);
        let encoder = ckpt.load_encoder(p)?;
        Ok(Self::with_encoder(p, encoder, pooling, tasks))
    }

    fn with_encoder(p: &nn::Path, encoder: TransformerEncoder, pooling: Pooling, tasks: &[TaskHead]) -> Self {
        let c = encoder.config().clone();
        let hidden = c.hidden as i64;
        let heads = tasks
            .iter()
            .map(|t| {
                let hp = p / "heads" / t.name.as_str();
                match t.kind {
                    HeadKind::Sequence => Head::Sequence(ClassificationHead::new(&hp, hidden, t.num_labels as i64, c.dropout, Some(c.init_std))),
                    HeadKind::Token => Head::Token(TokenHead::new(&hp, hidden, t.num_labels as i64, c.dropout, c.init_std)),
                }
            })
            .collect();
        Self { encoder, heads, tasks: tasks.to_vec(), pooling }
    }

    /// The shared encoder.
    pub fn encoder(&self) -> &TransformerEncoder {
        &self.encoder
    }

    /// The pooling of the sequence heads.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The index of the task called `name`, or an error listing the tasks.
    pub fn task_index(&self, name: &str) -> Result<usize> {
        self.tasks.iter().position(|t| t.name == name).ok_or_else(|| {
            ModelError::Config(format!("no task `{name}` (tasks: {})", self.tasks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")))
        })
    }

    /// Task `task`'s head parameters with their single-task names (`classifier.weight`,
    /// `classifier.bias`): with [`TransformerEncoder::named_parameters`], the tensors of an
    /// ordinary [`crate::TransformerClassifier`] for a sequence task.
    pub fn head_parameters(&self, task: usize) -> Result<Vec<(String, Tensor)>> {
        match self.heads.get(task) {
            Some(Head::Sequence(h)) => Ok(h.named_parameters()),
            Some(Head::Token(h)) => Ok(h.named_parameters()),
            None => Err(self.no_task(task)),
        }
    }

    fn no_task(&self, task: usize) -> ModelError {
        ModelError::Config(format!("task index {task} is out of range for {} tasks", self.tasks.len()))
    }

    /// Task `task`'s logits from token states `[B, T, H]`.
    fn head_logits(&self, task: usize, states: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        match self.heads.get(task) {
            Some(Head::Sequence(h)) => h.forward_t(&pool(states, attention_mask, self.pooling)?, train),
            Some(Head::Token(h)) => h.forward_t(states, train),
            None => Err(self.no_task(task)),
        }
    }
}

impl MultiHead for MultiTaskModel {
    fn tasks(&self) -> &[TaskHead] {
        &self.tasks
    }

    fn forward_task(&self, task: usize, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        if task >= self.heads.len() {
            return Err(self.no_task(task));
        }
        let states = self.encoder.forward_t(input_ids, attention_mask, train)?;
        self.head_logits(task, &states, attention_mask, train)
    }

    fn shared_parameters(&self) -> Vec<(String, Tensor)> {
        self.encoder.named_parameters()
    }

    /// The last block's output sub-layer (`encoder.layer.{L-1}.output.*`: the feed-forward
    /// output projection and, post-LN, its LayerNorm).
    fn last_shared_parameters(&self) -> Vec<(String, Tensor)> {
        let prefix = format!("encoder.layer.{}.output.", self.encoder.layers().len().saturating_sub(1));
        self.encoder.named_parameters().into_iter().filter(|(n, _)| n.starts_with(&prefix)).collect()
    }
}

impl TextClassifier for MultiTaskModel {
    /// The main (first) task's logits.
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_task(0, input_ids, attention_mask, train)
    }

    fn kind(&self) -> &'static str {
        "multi-task transformer"
    }

    fn embedding_input(&self) -> Option<&dyn EmbeddingInput> {
        Some(self)
    }

    fn transformer_encoder(&self) -> Option<&TransformerEncoder> {
        Some(&self.encoder)
    }

    fn multi_head(&self) -> Option<&dyn MultiHead> {
        Some(self)
    }
}

/// The main task's head on (perturbable) word embeddings, as for the single-task Transformer.
impl EmbeddingInput for MultiTaskModel {
    fn word_embeddings(&self) -> &Tensor {
        self.encoder.embeddings().word_weight()
    }

    fn embed(&self, input_ids: &Tensor, _train: bool) -> Result<Tensor> {
        self.encoder.embeddings().words(input_ids)
    }

    fn forward_embedded(&self, embeddings: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let states = self.encoder.forward_words(embeddings, attention_mask, train)?;
        self.head_logits(0, &states, attention_mask, train)
    }
}
