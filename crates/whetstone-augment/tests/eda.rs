//! EDA's operations keep their contracts, α is validated, and augmentation is deterministic for
//! a seed whatever the number of threads.

mod fixture;

use std::sync::Arc;

use whetstone_augment::eda::ops;
use whetstone_augment::{augment_all, example_rng, split_words, AugmentSpec, Augmenter, Eda, EdaConfig, RandomDeletion, RandomSwap, StopWords, WordNet};

const TEXT: &str = "the film is a very funny story and the actor is good";

fn wordnet() -> (tempfile::TempDir, Arc<WordNet>) {
    let dir = tempfile::tempdir().unwrap();
    fixture::write_wordnet(dir.path());
    let wn = Arc::new(WordNet::load(dir.path()).unwrap());
    (dir, wn)
}

fn words(s: &str) -> Vec<String> {
    split_words(s)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Whether `small` is `big` with some tokens removed (order kept).
fn is_subsequence(small: &[String], big: &[String]) -> bool {
    let mut it = big.iter();
    small.iter().all(|w| it.any(|b| b == w))
}

#[test]
fn swap_keeps_the_multiset_of_words_and_deletion_only_removes() {
    let w = words(TEXT);
    let mut moved = 0;
    for seed in 0..200 {
        let mut rng = example_rng(seed, 0, 0);
        let swapped = ops::random_swap(&w, ops::changes(0.2, w.len()), &mut rng);
        assert_eq!(sorted(swapped.clone()), sorted(w.clone()));
        moved += usize::from(swapped != w);
        let kept = ops::random_deletion(&w, 0.3, &mut rng);
        assert!(!kept.is_empty() && kept.len() <= w.len() && is_subsequence(&kept, &w), "{kept:?}");
    }
    assert!(moved > 150, "a swap of two distinct positions almost always changes the order ({moved}/200)");
    // Deleting everything keeps one word.
    for seed in 0..20 {
        assert_eq!(ops::random_deletion(&w, 1.0, &mut example_rng(seed, 0, 0)).len(), 1);
    }
    assert_eq!(ops::changes(0.1, 5), 1, "n = max(1, floor(alpha * len))");
    assert_eq!(ops::changes(0.1, 25), 2);
}

#[test]
fn synonym_replacement_changes_only_non_stop_words_into_their_wordnet_synonyms() {
    let (_d, wn) = wordnet();
    let stop = StopWords::english();
    let w = words(TEXT);
    let mut changed = 0;
    for seed in 0..100 {
        let out = ops::synonym_replacement(&w, 2, &wn, &stop, &mut example_rng(seed, 0, 0));
        assert_eq!(out.len(), w.len());
        let mut replaced = std::collections::BTreeSet::new();
        for (a, b) in w.iter().zip(&out) {
            if a != b {
                assert!(!stop.contains(a), "stop word `{a}` replaced");
                assert!(wn.synonyms(a).contains(b), "`{b}` is not a synonym of `{a}`");
                replaced.insert(a.clone());
            }
        }
        // `very` has a synonym in the fixture but is a stop word; the rest: film, funny, story, actor, good.
        assert!((1..=2).contains(&replaced.len()), "{out:?}");
        changed += replaced.len();
    }
    assert!(changed > 150);
}

#[test]
fn insertion_adds_synonyms_of_words_in_the_sentence() {
    let (_d, wn) = wordnet();
    let stop = StopWords::english();
    let w = words(TEXT);
    for seed in 0..100 {
        let out = ops::random_insertion(&w, 2, &wn, &stop, &mut example_rng(seed, 0, 0));
        assert_eq!(out.len(), w.len() + 2);
        assert!(is_subsequence(&w, &out));
        let mut rest = out.clone();
        for x in &w {
            let i = rest.iter().position(|r| r == x).unwrap();
            rest.remove(i);
        }
        // Each insertion is a synonym of a non-stop word of the sentence as it then was:
        // an original word, or the word inserted before it.
        let synonym_of = |x: &String, y: &String| !stop.contains(x) && wn.synonyms(x).contains(y);
        for added in &rest {
            assert!(w.iter().chain(&rest).any(|x| synonym_of(x, added)), "inserted `{added}`");
        }
        assert!(rest.iter().any(|a| w.iter().any(|x| synonym_of(x, a))), "the first insertion comes from the original words");
    }
}

#[test]
fn augmentation_is_deterministic_for_a_seed_on_any_number_of_threads() {
    let (_d, wn) = wordnet();
    let eda = Eda::new(EdaConfig::default(), wn, StopWords::english()).unwrap();
    let texts: Vec<String> = (0..40).map(|i| format!("{TEXT} number {i}")).collect();
    let run = |threads: usize, seed: u64| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| augment_all(&texts, 4, seed, &eda).unwrap());
    let one = run(1, 7);
    assert_eq!(one, run(2, 7), "1 and 2 threads");
    assert_eq!(one, run(2, 7), "twice");
    assert_ne!(one, run(1, 8), "another seed");
    assert_eq!(one.len(), 160);
    assert!(one.iter().filter(|a| a.text != texts[a.source]).count() > 100, "most augmentations change the text");
    // One augmentation is a function of (seed, example, variant) alone.
    let mut rng = example_rng(7, 5, 2);
    assert_eq!(eda.augment(&texts[5], &mut rng).unwrap(), one[5 * 4 + 2].text);
}

#[test]
fn alpha_outside_the_unit_interval_is_an_error_naming_the_field() {
    let (_d, wn) = wordnet();
    for (config, field) in [
        (EdaConfig { alpha_sr: 1.5, ..EdaConfig::default() }, "alpha_sr"),
        (EdaConfig { alpha_ri: -0.1, ..EdaConfig::default() }, "alpha_ri"),
        (EdaConfig { alpha_rs: f64::NAN, ..EdaConfig::default() }, "alpha_rs"),
        (EdaConfig { p_rd: 2.0, ..EdaConfig::default() }, "p_rd"),
        (EdaConfig { n_aug: 0, ..EdaConfig::default() }, "n_aug"),
    ] {
        let msg = Eda::new(config, wn.clone(), StopWords::english()).unwrap_err().to_string();
        assert!(msg.starts_with(field), "{msg}");
    }
    assert!(RandomSwap::new(1.01).unwrap_err().to_string().contains("alpha_rs: must be in [0, 1], got 1.01"));
    assert!(RandomDeletion::new(-1.0).unwrap_err().to_string().contains("p_rd"));
    let msg = AugmentSpec::new("eda").with_alpha(3.0).build(Some(wn.clone()), None).err().unwrap().to_string();
    assert!(msg.contains("alpha: must be in [0, 1], got 3"), "{msg}");
    let msg = AugmentSpec::new("backtranslate").validate().unwrap_err().to_string();
    assert!(msg.contains("unknown augmentation method `backtranslate`") && msg.contains("eda, synonym, insert, swap, delete, cutoff, span-cutoff, mask, neighbour, mlm"), "{msg}");
    assert!(AugmentSpec::new("eda").build(None, None).err().unwrap().to_string().contains("needs WordNet"));
    let c: Result<EdaConfig, _> = serde_json::from_str(r#"{"alpha_xx": 0.1}"#);
    assert!(c.unwrap_err().to_string().contains("alpha_xx"));
}

#[test]
fn every_method_by_name_runs_and_the_paper_table_gives_n_aug() {
    let (_d, wn) = wordnet();
    for method in whetstone_augment::METHODS.iter().filter(|m| !["neighbour", "mlm"].contains(*m)) {
        let aug = AugmentSpec::new(*method).with_alpha(0.5).build(Some(wn.clone()), None).unwrap();
        assert_eq!(aug.name(), *method);
        let out = augment_all(&[TEXT], 8, 3, aug.as_ref()).unwrap();
        assert!(out.iter().any(|a| a.text != TEXT), "{method} never changes the text");
    }
    assert_eq!(EdaConfig::for_train_size(500).n_aug, 16);
    assert_eq!(EdaConfig::for_train_size(2000).n_aug, 8);
    assert_eq!(EdaConfig::for_train_size(8530), EdaConfig::default());
}
