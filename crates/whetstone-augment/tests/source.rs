//! AugmentedSource (the `torch` feature): reproducible for a seed, fresh every epoch, and a
//! batch depends only on its plan entry (so a resumed run sees the same batches).
#![cfg(feature = "torch")]

use whetstone_augment::{AugmentSpec, AugmentedSource};
use whetstone_data::{BatchSource, Split, TextTokenizer};

fn split() -> Split {
    let texts: Vec<String> = (0..24).map(|i| format!("film number {i} was a very long and rather funny story about actors")).collect();
    let labels = (0..24).map(|i| i % 2).collect();
    Split { texts, labels }
}

fn source(p: f64) -> AugmentedSource {
    let s = split();
    let tok = TextTokenizer::train_wordpiece(&s.texts, 200, 1, true).unwrap();
    let aug = AugmentSpec::new("swap").with_alpha(0.3).build(None, None).unwrap();
    AugmentedSource::new(&s, tok, 32, aug, p, 4, 2).unwrap()
}

fn ids(src: &AugmentedSource, seed: u64, epoch: u64) -> Vec<Vec<i64>> {
    src.epoch_plan(seed, epoch).unwrap().iter().map(|e| Vec::<i64>::try_from(src.batch(e, tch::Device::Cpu).unwrap().input_ids.flatten(0, -1)).unwrap()).collect()
}

#[test]
fn augmentation_is_reproducible_fresh_each_epoch_and_a_function_of_the_plan_entry() {
    let src = source(1.0);
    let plan = src.epoch_plan(5, 0).unwrap();
    assert_eq!(plan.iter().map(|e| e.indices.len()).sum::<usize>(), 24);
    assert_eq!(ids(&src, 5, 0), ids(&source(1.0), 5, 0), "same seed, same batches");
    assert_ne!(ids(&src, 5, 0), ids(&src, 5, 1), "another epoch, other augmentations");
    // Epoch 1's augmented texts differ from epoch 0's for the same example.
    let texts_of = |epoch: u64| {
        let mut all: Vec<(usize, String)> = src.epoch_plan(5, epoch).unwrap().iter().flat_map(|e| e.indices.iter().copied().zip(src.texts(e).unwrap())).collect();
        all.sort();
        all
    };
    let (e0, e1) = (texts_of(0), texts_of(1));
    assert!(e0.iter().zip(&e1).filter(|(a, b)| a.1 != b.1).count() > 12, "fresh augmentations each epoch");
    // A batch is a function of its entry alone: building batch 3 first (as a resumed run
    // does) gives the same ids as after batches 0-2.
    let again = src.batch(&plan[3], tch::Device::Cpu).unwrap();
    assert_eq!(Vec::<i64>::try_from(again.input_ids.flatten(0, -1)).unwrap(), ids(&src, 5, 0)[3]);
    assert_eq!(again.indices, plan[3].indices);
    let labels: Vec<i64> = Vec::try_from(again.labels).unwrap();
    assert_eq!(labels, plan[3].indices.iter().map(|&i| (i % 2) as i64).collect::<Vec<_>>());
}

#[test]
fn probability_zero_keeps_the_originals_and_the_fingerprint_covers_the_augmenter() {
    let src = source(0.0);
    for e in src.epoch_plan(1, 0).unwrap() {
        assert_eq!(src.texts(&e).unwrap(), e.indices.iter().map(|&i| split().texts[i].clone()).collect::<Vec<_>>());
    }
    assert_ne!(src.fingerprint(), source(1.0).fingerprint());
    assert_eq!(source(1.0).fingerprint(), source(1.0).fingerprint());
    assert_ne!(source(1.0).fingerprint(), source(1.0).seed_offset(1).fingerprint());
    let s = split();
    let tok = TextTokenizer::train_wordpiece(&s.texts, 200, 1, true).unwrap();
    let err = AugmentedSource::new(&s, tok, 32, AugmentSpec::new("swap").build(None, None).unwrap(), 1.5, 4, 2).err().unwrap();
    assert!(err.to_string().starts_with("probability"), "{err}");
}
