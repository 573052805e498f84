//! Text augmentation for whetstone, on plain strings: no tokenizer, no model and no libtorch
//! unless you ask for one.
//!
//! * [EDA](eda) (Wei & Zou 2019): synonym replacement and random insertion from [`WordNet`]
//!   (stop words left alone), random swap, random deletion.
//! * [Embedding-neighbour replacement](neighbours) (TinyBERT): words replaced by their nearest
//!   neighbours in a pretrained model's input embeddings, read from `model.safetensors`.
//! * [Token and span cutoff](cutoff) and [random masking](mask) with `[MASK]`/`[UNK]`.
//! * A [greedy synonym-substitution attack](attack) for measuring robustness.
//!
//! Every augmenter implements [`Augmenter`] and draws its randomness from a seeded ChaCha8
//! generator; [`augment_all`] runs one over many texts in parallel with rayon, deriving each
//! example's generator from `(seed, example, variant)`, so results are the same for a seed on
//! any number of threads. Words are split and joined by [`split_words`] and [`join_words`].
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use whetstone_augment::{augment_all, Augmenter, Eda, EdaConfig, StopWords, WordNet};
//!
//! # fn main() -> whetstone_augment::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("whetstone-augment-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # for pos in ["noun", "verb", "adj", "adv"] {
//! #     std::fs::write(dir.join(format!("data.{pos}")), "").unwrap();
//! #     std::fs::write(dir.join(format!("index.{pos}")), "").unwrap();
//! # }
//! # std::fs::write(dir.join("data.noun"), "00000001 05 n 03 film 0 movie 0 picture 0 000 | a story told in moving images\n").unwrap();
//! # std::fs::write(dir.join("index.noun"), "film n 1 0 1 0 00000001\nmovie n 1 0 1 0 00000001\npicture n 1 0 1 0 00000001\n").unwrap();
//! // WordNet as fetched by `whetstone data wordnet` (a tiny one here).
//! let wordnet = Arc::new(WordNet::load(&dir)?);
//! assert_eq!(wordnet.synonyms("film"), ["movie", "picture"]);
//!
//! let eda = Eda::new(EdaConfig::default(), wordnet, StopWords::english())?;
//! let text = "a gripping film with a funny script";
//! let mut rng = whetstone_augment::example_rng(42, 0, 0);
//! let augmented = eda.augment(text, &mut rng)?;
//! println!("{augmented}");
//!
//! // Four augmentations of each text, in parallel and reproducible.
//! let out = augment_all(&[text], 4, 42, &eda)?;
//! assert_eq!(out.len(), 4);
//! assert_eq!(out, augment_all(&[text], 4, 42, &eda)?);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! * `torch` (off by default): `AugmentedSource`, a whetstone-data batch source that
//!   augments raw text on the fly for training (fresh each epoch, reproducible, resumable).
//!   It also adds `MlmReplace`, masked-LM prediction replacement with a whetstone-models
//!   encoder and MLM head (e.g. from a `whetstone pretrain` run). It pulls in libtorch;
//!   nothing else in the crate does.

#![warn(missing_docs)]

pub mod attack;
mod augmenter;
pub mod cutoff;
mod dataset;
pub mod eda;
mod error;
pub mod mask;
mod method;
#[cfg(feature = "torch")]
pub mod mlm;
pub mod neighbours;
#[cfg(feature = "torch")]
pub mod source;
mod stopwords;
pub mod wordnet;
mod words;

pub use attack::{synonym_attack, AttackOutcome, Scorer, Substitution, Verdict};
pub use augmenter::{augment_all, example_rng, Augmented, Augmenter};
pub use cutoff::{SpanCutoff, TokenCutoff};
pub use dataset::{augment_dataset, to_jsonl, AugmentedRow};
pub use eda::{Eda, EdaConfig, RandomDeletion, RandomInsertion, RandomSwap, SynonymReplacement};
pub use error::{AugmentError, Result};
pub use mask::{RandomMask, DEFAULT_MASK_TOKEN};
pub use method::{AugmentSpec, METHODS};
pub use neighbours::{NeighbourReplace, Neighbours, DEFAULT_EMBEDDING_TENSOR};
#[cfg(feature = "torch")]
pub use mlm::MlmReplace;
#[cfg(feature = "torch")]
pub use source::AugmentedSource;
pub use stopwords::StopWords;
pub use wordnet::{Pos, WordNet};
pub use words::{is_alphabetic_word, join_words, split_words};
