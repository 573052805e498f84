//! WordPiece training, encoding and persistence.

use whetstone_data::TextTokenizer;

fn corpus() -> Vec<String> {
    let base = [
        "The movie was surprisingly good, with a gripping plot.",
        "A dull, lifeless film; the actors seemed bored.",
        "Free entry! Text WIN to 87121 to claim your prize now.",
        "I'll call you later, the meeting ran long.",
        "Unbelievably well-acted and beautifully shot.",
        "Café crème at the théâtre was très bien.",
    ];
    (0..40)
        .map(|i| {
            format!(
                "{} {}",
                base[i % base.len()],
                base[(i * 7 + 3) % base.len()]
            )
        })
        .collect()
}

#[test]
fn training_is_deterministic_and_pad_is_zero() {
    let texts = corpus();
    let a = TextTokenizer::train_wordpiece(&texts, 300, 2, true).unwrap();
    let b = TextTokenizer::train_wordpiece(&texts, 300, 2, true).unwrap();
    let va = serde_json::to_string(a.inner()).unwrap();
    let vb = serde_json::to_string(b.inner()).unwrap();
    assert_eq!(va, vb);
    assert_eq!(a.pad_id(), 0);
    assert_eq!(a.token_to_id("[UNK]"), Some(1));
    assert_eq!(a.token_to_id("[CLS]"), Some(2));
    assert_eq!(a.token_to_id("[SEP]"), Some(3));
    assert_eq!(a.token_to_id("[MASK]"), Some(4));
    assert!(
        a.vocab_size() <= 300 && a.vocab_size() > 50,
        "{}",
        a.vocab_size()
    );
    // Lowercasing strips accents too.
    assert!(a.token_to_id("é").is_none());
    let cased = TextTokenizer::train_wordpiece(&texts, 300, 2, false).unwrap();
    assert!(cased.token_to_id("é").is_some());
    assert!(cased.token_to_id("T").is_some());
}

#[test]
fn encode_adds_specials_and_respects_max_len() {
    let texts = corpus();
    let tok = TextTokenizer::train_wordpiece(&texts, 300, 2, true).unwrap();
    let ids = tok.encode_batch(&texts, 8).unwrap();
    assert_eq!(ids.len(), texts.len());
    for seq in &ids {
        assert_eq!(seq.len(), 8);
        assert_eq!(seq[0], 2);
        assert_eq!(*seq.last().unwrap(), 3);
    }
    let short = tok.encode_batch(&["good plot".to_string()], 64).unwrap();
    assert_eq!(short[0].first(), Some(&2));
    assert_eq!(short[0].last(), Some(&3));
    assert!(short[0].len() < 8);
    assert_eq!(tok.decode(&short[0]).unwrap(), "good plot");
    // Truncation on a copy: the tokenizer itself keeps no truncation.
    assert!(tok.inner().get_truncation().is_none());
    assert!(tok.encode_batch(&texts, 2).is_err());
}

#[test]
fn save_and_load_round_trip() {
    let texts = corpus();
    let tok = TextTokenizer::train_wordpiece(&texts, 200, 1, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    tok.save(&path).unwrap();
    let loaded = TextTokenizer::from_file(&path).unwrap();
    assert_eq!(loaded.vocab_size(), tok.vocab_size());
    assert_eq!(
        loaded.encode_batch(&texts, 32).unwrap(),
        tok.encode_batch(&texts, 32).unwrap()
    );
    assert!(TextTokenizer::from_file(&dir.path().join("missing.json")).is_err());
}
