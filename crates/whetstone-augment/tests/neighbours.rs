//! Embedding-neighbour replacement on a tiny safetensors checkpoint written by the test, whose
//! nearest neighbours are known by construction.

use std::path::Path;
use std::sync::Arc;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use whetstone_augment::{example_rng, Augmenter, NeighbourReplace, Neighbours};

const VOCAB: [&str; 11] = ["[PAD]", "[UNK]", "[CLS]", "the", "cat", "dog", "kitten", "car", "truck", "##s", "42"];
const EMB: [[f32; 3]; 11] = [
    [0.0, 0.0, 0.0],
    [1.0, 1.0, 1.0],
    [1.0, 0.0, 1.0],
    [0.0, 0.0, 1.0],
    [1.0, 0.1, 0.0],  // cat
    [0.9, 0.2, 0.0],  // dog: cos(cat, dog) = 0.9930
    [1.0, 0.05, 0.0], // kitten: cos(cat, kitten) = 0.9988
    [0.0, 1.0, 0.1],  // car
    [0.1, 1.0, 0.2],  // truck
    [1.0, 0.08, 0.0], // ##s: closer to cat than anything, but a word piece
    [1.0, 0.11, 0.0], // 42: not alphabetic
];

fn write(dir: &Path, name: &str, dtype: Dtype) -> (std::path::PathBuf, std::path::PathBuf) {
    let floats: Vec<f32> = EMB.iter().flatten().copied().collect();
    let bytes: Vec<u8> = match dtype {
        Dtype::F32 => floats.iter().flat_map(|f| f.to_le_bytes()).collect(),
        _ => floats.iter().flat_map(|_| [0u8, 0u8]).collect(),
    };
    let view = TensorView::new(dtype, vec![VOCAB.len(), 3], &bytes).unwrap();
    let model = dir.join("model.safetensors");
    std::fs::write(&model, safetensors::tensor::serialize([(name, view)], &None).unwrap()).unwrap();
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, VOCAB.join("\n") + "\n").unwrap();
    (model, vocab)
}

#[test]
fn nearest_neighbours_are_whole_words_by_cosine_similarity() {
    let dir = tempfile::tempdir().unwrap();
    let (model, vocab) = write(dir.path(), "embeddings.word_embeddings.weight", Dtype::F32);
    let n = Neighbours::from_safetensors(&model, &vocab, None, 2).unwrap();
    assert_eq!(n.len(), 6, "the, cat, dog, kitten, car, truck");
    assert_eq!(n.nearest("cat").unwrap(), ["kitten", "dog"]);
    assert_eq!(n.nearest("Cat").unwrap(), ["kitten", "dog"], "an uncased vocabulary");
    assert_eq!(n.nearest("car").unwrap()[0], "truck");
    assert!(n.nearest("##s").is_none() && n.nearest("42").is_none() && n.nearest("zebra").is_none());
}

#[test]
fn replacement_swaps_vocabulary_words_for_neighbours_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (model, vocab) = write(dir.path(), "bert.embeddings.word_embeddings.weight", Dtype::F32);
    let n = Arc::new(Neighbours::from_safetensors(&model, &vocab, None, 1).unwrap());
    let always = NeighbourReplace::new(n.clone(), 1.0).unwrap();
    assert_eq!(always.augment("The cat drove a car!", &mut example_rng(0, 0, 0)).unwrap(), "Truck kitten drove a truck!");
    let never = NeighbourReplace::new(n.clone(), 0.0).unwrap();
    assert_eq!(never.augment("The cat drove a car!", &mut example_rng(0, 0, 0)).unwrap(), "The cat drove a car!");
    let some = NeighbourReplace::new(n, 0.4).unwrap();
    let changed: usize = (0..200).map(|s| usize::from(some.augment("cat", &mut example_rng(s, 0, 0)).unwrap() == "kitten")).sum();
    assert!((60..100).contains(&changed), "p = 0.4 of 200: {changed}");
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (model, vocab) = write(dir.path(), "embeddings.word_embeddings.weight", Dtype::F16);
    let msg = Neighbours::from_safetensors(&model, &vocab, None, 2).unwrap_err().to_string();
    assert!(msg.contains("F16") && msg.contains("only F32"), "{msg}");
    let (model, vocab) = write(dir.path(), "encoder.weight", Dtype::F32);
    let msg = Neighbours::from_safetensors(&model, &vocab, None, 2).unwrap_err().to_string();
    assert!(msg.contains("no tensor `embeddings.word_embeddings.weight` (nor `bert.embeddings.word_embeddings.weight`)"), "{msg}");
    assert!(Neighbours::from_safetensors(&model, &vocab, Some("encoder.weight"), 0).unwrap_err().to_string().starts_with("k:"));
    std::fs::write(&vocab, VOCAB.join("\n") + "\nextra\n").unwrap();
    let msg = Neighbours::from_safetensors(&model, &vocab, Some("encoder.weight"), 2).unwrap_err().to_string();
    assert!(msg.contains("shape [11, 3]"), "{msg}");
}
