//! Masked-LM prediction replacement (the `torch` feature), the other half of TinyBERT's
//! augmentation (Jiao et al. 2020, Algorithm 1): a word that is one whole-word vocabulary entry
//! is masked, with probability `p`, and replaced by one of the `K` whole words the masked-LM
//! finds most likely in its place. The model is a whetstone-models Transformer encoder with its
//! [`MlmHead`], e.g. from a `whetstone pretrain` run ([`MlmReplace::from_pretrain_run`]).

use std::path::Path;
use std::sync::Mutex;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use whetstone_data::TextTokenizer;
use whetstone_models::{load_varstore, BertCheckpoint, MlmHead, TransformerEncoder};

use crate::augmenter::Augmenter;
use crate::eda::check_unit;
use crate::error::{AugmentError, Result};
use crate::words::{join_words, split_words};

/// The encoder, its head and the store that owns their variables.
struct MlmModel {
    _vs: VarStore,
    encoder: TransformerEncoder,
    head: MlmHead,
}

/// Replaces each whole-word vocabulary word, with probability `p`, by one of the masked-LM's
/// `k` most likely whole words at its place (never the word itself). Forward passes are
/// serialised (libtorch parallelises each one); one pass per sentence masks all chosen words,
/// each in its own row.
pub struct MlmReplace {
    model: Mutex<MlmModel>,
    tokenizer: TextTokenizer,
    mask_id: i64,
    whole: Vec<bool>,
    max_len: usize,
    p: f64,
    k: usize,
}

fn model_err(e: impl std::fmt::Display) -> AugmentError {
    AugmentError::InvalidArgument(format!("masked-LM: {e}"))
}

impl MlmReplace {
    /// Replacement with an encoder and head whose variables `vs` holds (on the CPU), with the
    /// `tokenizer` they were trained with (it must know `[MASK]`), probability `p` in [0, 1] and
    /// `k` ≥ 1 candidates.
    pub fn new(vs: VarStore, encoder: TransformerEncoder, head: MlmHead, tokenizer: TextTokenizer, p: f64, k: usize) -> Result<Self> {
        check_unit("p", p)?;
        if k == 0 {
            return Err(AugmentError::config("k", "must be at least 1"));
        }
        let mask_id = tokenizer.token_to_id("[MASK]").ok_or_else(|| AugmentError::InvalidArgument("the tokenizer has no [MASK] token".into()))?;
        let whole = (0..encoder.vocab_size()).map(|id| tokenizer.id_to_token(id).is_some_and(|t| t.chars().count() >= 2 && t.chars().all(char::is_alphabetic))).collect();
        let max_len = encoder.config().max_len;
        Ok(MlmReplace { model: Mutex::new(MlmModel { _vs: vs, encoder, head }), tokenizer, mask_id, whole, max_len, p, k })
    }

    /// The encoder and masked-LM head of a `whetstone pretrain` run: `encoder/config.json` for
    /// the shape, `tokenizer.json`, and `model.safetensors` for the weights (head included).
    pub fn from_pretrain_run(dir: &Path, p: f64, k: usize) -> Result<Self> {
        let config = BertCheckpoint::open(dir.join("encoder")).map_err(model_err)?.encoder_config().clone();
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let mut vs = VarStore::new(Device::Cpu);
        let encoder = TransformerEncoder::new(&vs.root(), tokenizer.vocab_size() as i64, &config).map_err(model_err)?;
        let head = MlmHead::new(&(vs.root() / "cls" / "predictions"), &encoder);
        load_varstore(&mut vs, &dir.join("model.safetensors")).map_err(model_err)?;
        Self::new(vs, encoder, head, tokenizer, p, k)
    }

    /// The vocabulary id of `word` if it is a whole-word entry (as written, else lower-cased).
    fn id_of(&self, word: &str) -> Option<i64> {
        let id = self.tokenizer.token_to_id(word).or_else(|| self.tokenizer.token_to_id(&word.to_lowercase()))?;
        self.whole.get(id as usize).copied().unwrap_or(false).then_some(id)
    }

    /// For each sentence of `texts` (each with one `[MASK]`), the `k` most likely whole-word
    /// ids at the mask other than `exclude`; empty where truncation lost the mask.
    fn predict(&self, texts: &[String], exclude: &[i64]) -> Result<Vec<Vec<i64>>> {
        let ids = self.tokenizer.encode_batch(texts, self.max_len)?;
        let t = ids.iter().map(Vec::len).max().unwrap_or(0);
        let pad = self.tokenizer.pad_id();
        let (mut flat, mut mask, mut at) = (Vec::new(), Vec::new(), Vec::new());
        for seq in &ids {
            at.push(seq.iter().position(|&i| i == self.mask_id));
            flat.extend(seq.iter().copied().chain(std::iter::repeat_n(pad, t - seq.len())));
            mask.extend(std::iter::repeat_n(1i64, seq.len()).chain(std::iter::repeat_n(0, t - seq.len())));
        }
        let shape = [ids.len() as i64, t as i64];
        let model = self.model.lock().map_err(|_| model_err("the model lock is poisoned"))?;
        let logits = tch::no_grad(|| -> Result<Tensor> {
            let input = Tensor::from_slice(&flat).f_view(shape).map_err(model_err)?;
            let attention = Tensor::from_slice(&mask).f_view(shape).map_err(model_err)?;
            let states = model.encoder.forward_t(&input, &attention, false).map_err(model_err)?;
            let rows: Vec<i64> = at.iter().enumerate().map(|(b, p)| b as i64 * t as i64 + p.unwrap_or(0) as i64).collect();
            let picked = states.f_reshape([-1, states.size()[2]]).map_err(model_err)?.f_index_select(0, &Tensor::from_slice(&rows)).map_err(model_err)?;
            model.head.forward(&picked, &model.encoder).map_err(model_err)?.f_to_kind(Kind::Float).map_err(model_err)
        })?;
        let v = logits.size()[1] as usize;
        let values: Vec<f32> = Vec::try_from(logits.flatten(0, -1)).map_err(model_err)?;
        Ok(at
            .iter()
            .enumerate()
            .map(|(b, pos)| {
                if pos.is_none() {
                    return Vec::new();
                }
                let row = &values[b * v..(b + 1) * v];
                let mut best: Vec<i64> = (0..v as i64).filter(|&id| self.whole[id as usize] && id != exclude[b]).collect();
                best.sort_by(|&a, &c| row[c as usize].total_cmp(&row[a as usize]).then(a.cmp(&c)));
                best.truncate(self.k);
                best
            })
            .collect())
    }
}

impl Augmenter for MlmReplace {
    fn augment(&self, text: &str, rng: &mut ChaCha8Rng) -> Result<String> {
        let mut words = split_words(text);
        let chosen: Vec<(usize, i64)> = words.iter().enumerate().filter_map(|(i, w)| self.id_of(w).map(|id| (i, id))).filter(|_| rng.gen_bool(self.p)).collect();
        if chosen.is_empty() {
            return Ok(join_words(&words));
        }
        let masked: Vec<String> = chosen
            .iter()
            .map(|&(i, _)| {
                let mut w = words.clone();
                w[i] = "[MASK]".to_string();
                join_words(&w)
            })
            .collect();
        let exclude: Vec<i64> = chosen.iter().map(|&(_, id)| id).collect();
        let predictions = self.predict(&masked, &exclude)?;
        for (&(i, _), cands) in chosen.iter().zip(&predictions) {
            if cands.is_empty() {
                continue;
            }
            let pick = self.tokenizer.id_to_token(cands[rng.gen_range(0..cands.len())]).unwrap_or_default();
            words[i] = if words[i].chars().next().is_some_and(char::is_uppercase) {
                let mut c = pick.chars();
                c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
            } else {
                pick
            };
        }
        Ok(join_words(&words))
    }

    fn name(&self) -> &str {
        "mlm"
    }

    fn config(&self) -> String {
        json!({"method": "mlm", "p": self.p, "k": self.k, "vocab": self.whole.len(), "max_len": self.max_len}).to_string()
    }
}
