//! Dynamic masking for masked-LM pretraining: rates, replacement split, special tokens and
//! whole-word masking, on a real trained WordPiece vocabulary.

use tch::{Device, Kind, Tensor};
use whetstone_data::{Masker, MaskingConfig, TextTokenizer};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tokenizer() -> TextTokenizer {
    let words = ["unbelievable", "performance", "remarkably", "understated", "cinematography", "the", "a", "film", "is", "was", "and", "script", "dialogue", "actors", "delightful", "overwrought"];
    let texts: Vec<String> = (0..400).map(|i| (0..12).map(|j| words[(i * 7 + j * 3 + i / 5) % words.len()]).collect::<Vec<_>>().join(" ")).collect();
    // A small vocabulary, so that the long words are split into several ## pieces.
    TextTokenizer::train_wordpiece(&texts, 60, 2, true).unwrap()
}

/// Ids `[B, T]` of encoded sentences, padded, and their attention mask.
fn batch(tok: &TextTokenizer, n: usize) -> (Tensor, Tensor) {
    let texts: Vec<String> = (0..n).map(|i| format!("the unbelievable cinematography was {} and the dialogue remarkably understated", if i % 2 == 0 { "delightful" } else { "overwrought" })).collect();
    let texts: Vec<String> = texts.iter().enumerate().map(|(i, t)| t.split(' ').take(4 + i % 6).collect::<Vec<_>>().join(" ")).collect();
    let ids = tok.encode_batch(&texts, 64).unwrap();
    let t = ids.iter().map(Vec::len).max().unwrap();
    let pad = tok.pad_id();
    let flat: Vec<i64> = ids.iter().flat_map(|s| s.iter().copied().chain(std::iter::repeat_n(pad, t - s.len()))).collect();
    let input = Tensor::from_slice(&flat).view([n as i64, t as i64]);
    let mask = input.ne(pad).to_kind(Kind::Int64);
    (input, mask)
}

fn count(t: &Tensor) -> f64 {
    t.to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]) as f64
}

#[test]
fn rates_follow_bert_and_specials_and_padding_are_never_masked() {
    let _g = serial();
    let tok = tokenizer();
    let (ids, attn) = batch(&tok, 256);
    let masker = Masker::new(&tok, MaskingConfig::default(), Device::Cpu).unwrap();
    let mask_id = tok.token_to_id("[MASK]").unwrap();
    let specials: Vec<i64> = ["[PAD]", "[CLS]", "[SEP]"].iter().map(|t| tok.token_to_id(t).unwrap()).collect();
    let is_special = specials.iter().fold(ids.zeros_like().to_kind(Kind::Bool), |acc, &s| acc.logical_or(&ids.eq(s)));
    let candidates = is_special.logical_not();
    tch::manual_seed(3);
    let (mut n_masked, mut n_cand, mut n_mask_tok, mut n_kept, mut n_random) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for _ in 0..40 {
        let m = masker.mask(&ids, &attn);
        assert_eq!(count(&m.masked.logical_and(&is_special)), 0.0, "a special or padding token was masked");
        // Labels: the original id where masked, -100 elsewhere.
        assert!(m.labels.eq_tensor(&ids).eq_tensor(&m.masked).all().int64_value(&[]) == 1);
        assert_eq!(count(&m.labels.eq(-100).logical_and(&m.masked)), 0.0);
        // Unmasked positions keep their id.
        assert_eq!(count(&m.input_ids.ne_tensor(&ids).logical_and(&m.masked.logical_not())), 0.0);
        n_masked += count(&m.masked);
        n_cand += count(&candidates);
        n_mask_tok += count(&m.input_ids.eq(mask_id).logical_and(&m.masked));
        n_kept += count(&m.input_ids.eq_tensor(&ids).logical_and(&m.masked));
        n_random += count(&m.input_ids.ne_tensor(&ids).logical_and(&m.input_ids.ne(mask_id)).logical_and(&m.masked));
    }
    let rate = n_masked / n_cand;
    assert!((rate - 0.15).abs() < 0.01, "masked share {rate}");
    let (f_mask, f_random, f_kept) = (n_mask_tok / n_masked, n_random / n_masked, n_kept / n_masked);
    assert!((f_mask - 0.8).abs() < 0.02, "[MASK] share {f_mask}");
    // A random replacement equals the original 1/|vocab| of the time, which counts as kept.
    assert!((f_random - 0.1).abs() < 0.02, "random share {f_random}");
    assert!((f_kept - 0.1).abs() < 0.02, "kept share {f_kept}");
}

/// For each sequence, the masked flags of each word's pieces (`start`, `##…`).
fn words_partially_masked(tok: &TextTokenizer, ids: &Tensor, masked: &Tensor) -> usize {
    let (b, t) = (ids.size()[0], ids.size()[1]);
    let mut partial = 0;
    for i in 0..b {
        let mut word: Vec<bool> = Vec::new();
        let mut flush = |w: &mut Vec<bool>| {
            if w.len() > 1 && w.iter().any(|&x| x) && !w.iter().all(|&x| x) {
                partial += 1;
            }
            w.clear();
        };
        for j in 0..t {
            let id = ids.int64_value(&[i, j]);
            let piece = tok.id_to_token(id).unwrap();
            if !piece.starts_with("##") {
                flush(&mut word);
            }
            word.push(masked.int64_value(&[i, j]) != 0);
        }
        flush(&mut word);
    }
    partial
}

#[test]
fn whole_word_masking_masks_every_piece_of_a_word_together() {
    let _g = serial();
    let tok = tokenizer();
    let (ids, attn) = batch(&tok, 64);
    let pieces = (0..ids.size()[1]).filter(|&j| tok.id_to_token(ids.int64_value(&[0, j])).unwrap().starts_with("##")).count();
    assert!(pieces >= 3, "the test vocabulary must split words into pieces");
    tch::manual_seed(5);
    let whole = Masker::new(&tok, MaskingConfig { whole_word: true, mask_prob: 0.3, ..Default::default() }, Device::Cpu).unwrap();
    let token = Masker::new(&tok, MaskingConfig { whole_word: false, mask_prob: 0.3, ..Default::default() }, Device::Cpu).unwrap();
    let (mut partial_whole, mut partial_token) = (0, 0);
    for _ in 0..10 {
        partial_whole += words_partially_masked(&tok, &ids, &whole.mask(&ids, &attn).masked);
        partial_token += words_partially_masked(&tok, &ids, &token.mask(&ids, &attn).masked);
    }
    assert_eq!(partial_whole, 0, "whole-word masking split a word");
    assert!(partial_token > 0, "token-level masking should split some words (the check can fail)");
}

#[test]
fn a_short_batch_always_gets_one_mask_and_bad_settings_are_refused() {
    let _g = serial();
    let tok = tokenizer();
    let (ids, attn) = batch(&tok, 1);
    let masker = Masker::new(&tok, MaskingConfig { mask_prob: 1e-6, ..Default::default() }, Device::Cpu).unwrap();
    tch::manual_seed(1);
    for _ in 0..5 {
        assert_eq!(count(&masker.mask(&ids, &attn).masked), 1.0);
    }
    for (cfg, key) in [
        (MaskingConfig { mask_prob: 1.5, ..Default::default() }, "mask_prob"),
        (MaskingConfig { mask_prob: 0.0, ..Default::default() }, "mask_prob"),
        (MaskingConfig { mask_token_prob: 0.95, random_token_prob: 0.1, ..Default::default() }, "random_token_prob"),
    ] {
        let e = Masker::new(&tok, cfg, Device::Cpu).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}
