//! Length-bucketed batch planning and dynamic padding.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use whetstone_data::{make_batch, padding_fraction, BucketBatcher, Encoded};

/// 2,000 sequences with lengths spread over 3..=200.
fn encoded() -> Encoded {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut lens: Vec<usize> = (0..2000).map(|i| 3 + (i * 37) % 198).collect();
    lens.shuffle(&mut rng);
    Encoded {
        ids: lens
            .iter()
            .map(|&l| (0..l as i64).map(|t| t + 5).collect())
            .collect(),
        labels: (0..2000).map(|i| i % 2).collect(),
        pad_id: 0,
    }
}

fn assert_permutation(batches: &[Vec<usize>], n: usize) {
    let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..n).collect::<Vec<_>>());
}

#[test]
fn every_index_once_and_deterministic() {
    let enc = encoded();
    let lens = enc.lengths();
    let b = BucketBatcher::new(32, 10);
    let e0 = b.epoch_order(&lens, 1, 0);
    assert_permutation(&e0, lens.len());
    assert!(e0.iter().all(|x| x.len() <= 32));
    assert_eq!(e0, b.epoch_order(&lens, 1, 0));
    let e1 = b.epoch_order(&lens, 1, 1);
    assert_permutation(&e1, lens.len());
    assert_ne!(e0, e1);
    assert_ne!(e0, b.epoch_order(&lens, 2, 0));
    assert_permutation(&b.eval_order(&lens), lens.len());
}

#[test]
fn bucketing_cuts_padding() {
    let enc = encoded();
    let lens = enc.lengths();
    let bucketed = padding_fraction(&enc, &BucketBatcher::new(32, 10).epoch_order(&lens, 1, 0));
    // Bucket factor 1 = plain random batches.
    let random = padding_fraction(&enc, &BucketBatcher::new(32, 1).epoch_order(&lens, 1, 0));
    let eval = padding_fraction(&enc, &BucketBatcher::new(32, 1).eval_order(&lens));
    assert!(random > 0.3, "random {random}");
    assert!(
        bucketed < random / 4.0,
        "bucketed {bucketed} vs random {random}"
    );
    assert!(eval < 0.05, "eval {eval}");
}

#[test]
fn batch_is_padded_to_its_longest() {
    let enc = Encoded {
        ids: vec![vec![2, 7, 3], vec![2, 3], vec![2, 8, 9, 3]],
        labels: vec![1, 0, 1],
        pad_id: 0,
    };
    let batch = make_batch(&enc, &[1, 0], tch::Device::Cpu).unwrap();
    assert_eq!(batch.indices, [1, 0]);
    assert!(make_batch(&enc, &[0, 9], tch::Device::Cpu).is_err(), "an index past the split is an error, not a panic");
    assert_eq!(batch.input_ids.size(), [2, 3]);
    assert_eq!(batch.input_ids.kind(), tch::Kind::Int64);
    let ids: Vec<i64> = Vec::try_from(batch.input_ids.flatten(0, 1)).unwrap();
    let mask: Vec<i64> = Vec::try_from(batch.attention_mask.flatten(0, 1)).unwrap();
    let labels: Vec<i64> = Vec::try_from(&batch.labels).unwrap();
    assert_eq!(ids, [2, 3, 0, 2, 7, 3]);
    assert_eq!(mask, [1, 1, 0, 1, 1, 1]);
    assert_eq!(labels, [0, 1]);
    assert!((padding_fraction(&enc, &[vec![1, 0]]) - 1.0 / 6.0).abs() < 1e-12);
}

/// Token batches pad every row to the longest sentence: ids with the pad id, mask 1 on the real
/// tokens only, labels with IGNORE_INDEX; each row starts at its own offset.
#[test]
fn token_batches_pad_each_row_in_its_place() {
    use whetstone_data::conll::{make_token_batch, IGNORE_INDEX};
    use whetstone_data::TokenEncoded;
    let enc = TokenEncoded { ids: vec![vec![2, 5, 3], vec![2, 6, 7, 8, 3], vec![2, 3]], labels: vec![vec![-100, 1, -100], vec![-100, 0, 2, 1, -100], vec![-100, -100]], pad_id: 0 };
    let b = make_token_batch(&enc, &[0, 1, 2], tch::Device::Cpu).unwrap();
    assert_eq!(b.input_ids.size(), vec![3, 5]);
    let rows = |t: &tch::Tensor| Vec::<Vec<i64>>::try_from(t).unwrap();
    assert_eq!(rows(&b.input_ids), vec![vec![2, 5, 3, 0, 0], vec![2, 6, 7, 8, 3], vec![2, 3, 0, 0, 0]]);
    assert_eq!(rows(&b.attention_mask), vec![vec![1, 1, 1, 0, 0], vec![1, 1, 1, 1, 1], vec![1, 1, 0, 0, 0]]);
    let i = IGNORE_INDEX;
    assert_eq!(rows(&b.labels), vec![vec![i, 1, i, i, i], vec![i, 0, 2, 1, i], vec![i, i, i, i, i]]);
    assert_eq!(b.indices, vec![0, 1, 2]);
}
