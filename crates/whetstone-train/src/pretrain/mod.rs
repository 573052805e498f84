//! Self-supervised pretraining: a masked-language-model objective for the Transformer encoder
//! (dynamic 15 % masking, 80/10/10 replacement, optional whole-word masking, a decoder tied to
//! the word embeddings) and the run pipeline behind `whetstone pretrain`.
//!
//! The pipeline trains a WordPiece vocabulary on the corpus, cuts every document into windows
//! of `corpus.max_len` tokens, and trains with the one [`crate::Trainer`] (checkpoints, exact
//! resume, early stopping on validation loss). The finished run folder holds the best
//! encoder in Hugging Face layout under `encoder/` (`config.json`, `model.safetensors`,
//! `tokenizer.json`), which a fine-tuning recipe names with `[model] pretrained = "RUN"`.

mod objective;
mod pipeline;
mod recipe;

pub use objective::{MlmObjective, MlmScore};
pub use pipeline::{pretrain_recipe, PretrainResult, ENCODER_DIR, PRETRAIN_RECIPE_FILE};
pub use recipe::{CorpusRecipe, PretrainRecipe};
