//! Self-supervised pretraining runs: the pipeline behind `whetstone pretrain`.
//!
//! The pipeline trains a WordPiece vocabulary on the corpus, cuts every document into windows
//! of `corpus.max_len` tokens, and trains with the one [`whetstone_train::Trainer`] and its
//! masked-LM strategy [`whetstone_train::MlmObjective`] (dynamic 15 % masking, 80/10/10
//! replacement, optional whole-word masking, a decoder tied to the word embeddings), with
//! checkpoints, exact resume and early stopping on validation loss. The finished run folder
//! holds the best encoder in Hugging Face layout under `encoder/` (`config.json`,
//! `model.safetensors`, `tokenizer.json`), which a fine-tuning recipe names with
//! `[model] pretrained = "RUN"`.

mod pipeline;
mod recipe;

pub use pipeline::{pretrain_recipe, PretrainResult, PRETRAIN_RECIPE_FILE};
pub use recipe::{CorpusRecipe, GeneralRecipe, PretrainRecipe};
