//! Text encoders and classifiers for whetstone, over libtorch (tch).
//!
//! * [`TransformerEncoder`]: BERT-compatible parameter names, pre- or post-LayerNorm, padding mask.
//! * [`TextCnn`] (Kim 2014) and [`BiLstm`].
//! * [`ClassificationHead`] with CLS, mean or max pooling.
//! * Safetensors checkpoint I/O that lists every mismatching tensor.
//! * [`pretrained`]: Hugging Face BERT checkpoints (`config.json`, `model.safetensors`,
//!   `tokenizer.json`) loaded into the encoder or a classifier ([`BertCheckpoint`]), and
//!   written back with `save_pretrained`.
//!
//! Every model implements [`TextClassifier`] and is device-agnostic: build it in a
//! [`tch::nn::VarStore`] on any device ([`parse_device`] reads `cpu|cuda|cuda:N|auto`).
//! Forward passes return [`Result`]: a libtorch error (an id outside the vocabulary, a
//! shape that does not fit) is a [`ModelError::Torch`], not a panic.
//!
//! What a strategy needs beyond the logits is a [`capability`]: input embeddings
//! ([`EmbeddingInput`], all three models), per-layer outputs ([`LayerOutputs`]) and
//! prunable structure ([`Structured`], both the Transformer's). [`require_embedding_input`]
//! and its siblings turn a missing one into a [`ModelError::Capability`] when the strategy
//! is built.
//!
//! ```
//! use whetstone_models::{ModelConfig, TextClassifier, TransformerClassifierConfig, TransformerConfig};
//! use tch::{nn::VarStore, Device, Kind, Tensor};
//!
//! let vs = VarStore::new(Device::Cpu);
//! let cfg = ModelConfig::Transformer(TransformerClassifierConfig {
//!     encoder: TransformerConfig { layers: 1, hidden: 32, heads: 2, ffn: 64, max_len: 16, ..Default::default() },
//!     ..Default::default()
//! });
//! let model = cfg.build(&vs.root(), 100, 2)?;
//! let ids = Tensor::from_slice(&[2i64, 10, 11, 3, 2, 12, 3, 0]).view([2, 4]);
//! let mask = ids.ne(0).to_kind(Kind::Int64);
//! let logits = model.forward_t(&ids, &mask, false)?;
//! assert_eq!(logits.size(), vec![2, 2]);
//! assert!(vs.variables().contains_key("encoder.layer.0.attention.self.query.weight"));
//! # Ok::<(), whetstone_models::ModelError>(())
//! ```

mod bilstm;
pub mod capability;
mod checkpoint;
mod classifier;
mod config;
mod device;
mod error;
mod head;
pub mod multitask;
mod ops;
pub mod pretrained;
mod textcnn;
mod token_head;
pub mod transformer;

pub use bilstm::{BiLstm, BiLstmConfig};
pub use capability::{EmbeddingInput, LayerOutputs, LayerUnits, Structured};
pub use checkpoint::{count_parameters, first_non_finite, load_varstore, non_finite_error, read_safetensors_bytes, read_safetensors_file, safetensors_bytes, save_varstore, write_safetensors_atomic};
pub use classifier::{require_embedding_input, require_layer_outputs, require_multi_head, require_structured, require_transformer_encoder, TextClassifier, TransformerClassifier, TransformerClassifierConfig};
pub use config::{transformer_encoder_parameters, ModelConfig, MAX_DIM};
pub use device::{device_name, parse_device};
pub use error::{ModelError, Result};
pub use head::{pool, ClassificationHead, Pooling};
pub use multitask::{check_task_heads, HeadKind, MultiHead, MultiTaskModel, TaskHead};
pub use token_head::TokenHead;
pub use pretrained::BertCheckpoint;
pub use textcnn::{TextCnn, TextCnnConfig};
pub use transformer::{EncoderOutput, LayerShape, MlmHead, TransformerConfig, TransformerEncoder};
