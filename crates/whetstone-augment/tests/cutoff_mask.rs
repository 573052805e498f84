//! Token and span cutoff remove the announced number of words; masking replaces words by the
//! configured token.

use whetstone_augment::{example_rng, split_words, Augmenter, RandomMask, SpanCutoff, TokenCutoff};

const TEXT: &str = "one two three four five six seven eight nine ten";

#[test]
fn cutoffs_remove_a_share_of_the_words_and_span_cutoff_a_contiguous_one() {
    let w = split_words(TEXT);
    for seed in 0..50 {
        let out = split_words(&TokenCutoff::new(0.3).unwrap().augment(TEXT, &mut example_rng(seed, 0, 0)).unwrap());
        assert_eq!(out.len(), 7);
        let mut it = w.iter();
        assert!(out.iter().all(|x| it.any(|y| y == x)), "order kept");
        let span = split_words(&SpanCutoff::new(0.3).unwrap().augment(TEXT, &mut example_rng(seed, 0, 0)).unwrap());
        assert_eq!(span.len(), 7);
        let start = w.iter().zip(&span).position(|(a, b)| a != b).unwrap_or(7);
        assert_eq!(&span[..start], &w[..start]);
        assert_eq!(&span[start..], &w[start + 3..], "one contiguous span of 3 removed");
    }
    // Never everything.
    assert_eq!(TokenCutoff::new(1.0).unwrap().augment("a b", &mut example_rng(0, 0, 0)).unwrap().split(' ').count(), 1);
    assert_eq!(SpanCutoff::new(0.5).unwrap().augment("alone", &mut example_rng(0, 0, 0)).unwrap(), "alone");
}

#[test]
fn masking_uses_the_configured_token_with_its_probability() {
    let mask = RandomMask::new(0.3, "[UNK]").unwrap();
    let mut masked = 0;
    for seed in 0..200 {
        let out = split_words(&mask.augment(TEXT, &mut example_rng(seed, 0, 0)).unwrap().replace("[UNK]", "UNKTOKEN"));
        assert_eq!(out.len(), 10);
        for (a, b) in split_words(TEXT).iter().zip(&out) {
            assert!(a == b || b == "UNKTOKEN");
            masked += usize::from(b == "UNKTOKEN");
        }
    }
    let rate = masked as f64 / 2000.0;
    assert!((0.26..0.34).contains(&rate), "{rate}");
    assert!(RandomMask::new(0.1, "two words").unwrap_err().to_string().starts_with("mask_token"));
}
