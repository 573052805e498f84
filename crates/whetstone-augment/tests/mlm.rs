//! Masked-LM replacement (the `torch` feature) on a tiny random encoder: replacements are the
//! head's top-k whole words (k = 1 is the argmax, computed here by hand), never the word itself;
//! other words stay; a `whetstone pretrain`-style run folder loads to the same augmenter.
#![cfg(feature = "torch")]

use tch::nn::VarStore;
use tch::{Device, Tensor};
use whetstone_augment::{example_rng, split_words, Augmenter, MlmReplace};
use whetstone_data::TextTokenizer;
use whetstone_models::{save_varstore, MlmHead, TransformerConfig, TransformerEncoder};

fn corpus() -> Vec<String> {
    ["the film was funny and warm", "a dull story with a weak actor", "the actor made the film", "funny story and warm film", "weak and dull film"].iter().map(|s| s.to_string()).collect()
}

fn parts() -> (VarStore, TransformerEncoder, MlmHead, TextTokenizer) {
    tch::manual_seed(3);
    let tok = TextTokenizer::train_wordpiece(&corpus(), 100, 1, true).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let config = TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 32, ..TransformerConfig::default() };
    let enc = TransformerEncoder::new(&vs.root(), tok.vocab_size() as i64, &config).unwrap();
    let head = MlmHead::new(&(vs.root() / "cls" / "predictions"), &enc);
    (vs, enc, head, tok)
}

fn is_whole_word(tok: &TextTokenizer, w: &str) -> bool {
    tok.token_to_id(w).is_some() && w.chars().count() >= 2 && w.chars().all(char::is_alphabetic)
}

#[test]
fn k1_replacement_is_the_heads_argmax_among_whole_words_other_than_the_word() {
    let (vs, enc, head, tok) = parts();
    // The oracle: the head's logits at the mask of "[MASK]" (the one word "film" masked).
    let ids = tok.encode_batch(&["[MASK]".to_string()], 32).unwrap().remove(0);
    let at = ids.iter().position(|&i| Some(i) == tok.token_to_id("[MASK]")).unwrap();
    let n = ids.len() as i64;
    let states = enc.forward_t(&Tensor::from_slice(&ids).view([1, n]), &Tensor::ones([1, n], (tch::Kind::Int64, Device::Cpu)), false).unwrap();
    let logits: Vec<f32> = Vec::try_from(head.forward(&states.select(1, at as i64), &enc).unwrap().flatten(0, -1)).unwrap();
    let film = tok.token_to_id("film").unwrap();
    let best = (0..logits.len() as i64)
        .filter(|&id| id != film && is_whole_word(&tok, &tok.id_to_token(id).unwrap()))
        .max_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]).then(b.cmp(&a)))
        .unwrap();
    let mlm = MlmReplace::new(vs, enc, head, tok.clone(), 1.0, 1).unwrap();
    for seed in 0..3 {
        assert_eq!(mlm.augment("film", &mut example_rng(seed, 0, 0)).unwrap(), tok.id_to_token(best).unwrap());
    }
}

#[test]
fn replacements_are_whole_vocabulary_words_and_the_rest_is_kept() {
    let (vs, enc, head, tok) = parts();
    let mlm = MlmReplace::new(vs, enc, head, tok.clone(), 1.0, 5).unwrap();
    let text = "The film was zxqv funny!";
    for seed in 0..10 {
        let out = mlm.augment(text, &mut example_rng(seed, 0, 0)).unwrap();
        let (a, b) = (split_words(text), split_words(&out));
        assert_eq!(a.len(), b.len(), "{out}");
        for (x, y) in a.iter().zip(&b) {
            if is_whole_word(&tok, &x.to_lowercase()) {
                assert_ne!(x.to_lowercase(), y.to_lowercase(), "{out}");
                assert!(is_whole_word(&tok, &y.to_lowercase()), "`{y}` is not a whole vocabulary word");
            } else {
                assert_eq!(x, y, "`{x}` is not in the vocabulary and stays");
            }
        }
        assert!(b[0].starts_with(char::is_uppercase), "capitalisation kept: {out}");
        assert_eq!(out, mlm.augment(text, &mut example_rng(seed, 0, 0)).unwrap(), "deterministic");
    }
    let never = { let (vs, enc, head, tok) = parts(); MlmReplace::new(vs, enc, head, tok, 0.0, 5).unwrap() };
    assert_eq!(never.augment(text, &mut example_rng(0, 0, 0)).unwrap(), "The film was zxqv funny!");
}

#[test]
fn a_pretrain_run_folder_loads_to_the_same_augmenter() {
    let (vs, enc, head, tok) = parts();
    let dir = tempfile::tempdir().unwrap();
    tok.save(&dir.path().join("tokenizer.json")).unwrap();
    enc.save_pretrained(&dir.path().join("encoder"), &dir.path().join("tokenizer.json")).unwrap();
    save_varstore(&vs, &dir.path().join("model.safetensors")).unwrap();
    let here = MlmReplace::new(vs, enc, head, tok, 0.5, 3).unwrap();
    let loaded = MlmReplace::from_pretrain_run(dir.path(), 0.5, 3).unwrap();
    for seed in 0..5 {
        let text = "the actor made a weak and dull film";
        assert_eq!(here.augment(text, &mut example_rng(seed, 1, 0)).unwrap(), loaded.augment(text, &mut example_rng(seed, 1, 0)).unwrap());
    }
    assert!(MlmReplace::from_pretrain_run(&dir.path().join("missing"), 0.5, 3).is_err());
}
