//! The greedy synonym attack on a toy model whose decision depends on known words.

mod fixture;

use whetstone_augment::{split_words, synonym_attack, StopWords, Verdict, WordNet};

/// True-class probability 0.2 + 0.4·[good] + 0.3·[funny] + 0.05·[film]; correct at ≥ 0.5.
fn model(calls: &mut Vec<usize>) -> impl FnMut(&[String]) -> whetstone_augment::Result<Vec<Verdict>> + '_ {
    move |sentences: &[String]| {
        calls.push(sentences.len());
        Ok(sentences
            .iter()
            .map(|s| {
                let w = split_words(s);
                let has = |x: &str| w.iter().any(|y| y == x);
                let p = 0.2 + 0.4 * f32::from(u8::from(has("good"))) + 0.3 * f32::from(u8::from(has("funny"))) + 0.05 * f32::from(u8::from(has("film")));
                Verdict { true_prob: p, correct: p >= 0.5 }
            })
            .collect())
    }
}

#[test]
fn the_attack_substitutes_the_most_important_words_first_and_stops_when_the_label_flips() {
    let dir = tempfile::tempdir().unwrap();
    fixture::write_wordnet(dir.path());
    let wn = WordNet::load(dir.path()).unwrap();
    let stop = StopWords::english();
    let words = split_words("a very good and funny film");

    let mut calls = Vec::new();
    let one = synonym_attack(&words, 1, &wn, &stop, &mut model(&mut calls)).unwrap();
    assert_eq!(one.substitutions.len(), 1, "the budget is respected");
    assert_eq!((one.substitutions[0].original.as_str(), one.substitutions[0].replacement.as_str()), ("good", "fine"), "the most important word first");
    assert!(!one.flipped() && one.last.true_prob < one.original.true_prob);
    assert_eq!(calls, [1, 6, 1], "original, one deletion per word, the synonyms of `good`");
    assert_eq!(one.queries, 8);

    let mut calls = Vec::new();
    let two = synonym_attack(&words, 3, &wn, &stop, &mut model(&mut calls)).unwrap();
    assert!(two.flipped());
    assert_eq!(two.substitutions.len(), 2, "it stops at the flip, under the budget of 3");
    assert_eq!(two.words, split_words("a very fine and amusing film"));
    assert!(two.substitutions.iter().all(|s| s.original != "very"), "stop words are left alone");

    // A sentence the model already gets wrong is left as it is.
    let wrong = split_words("a dull film");
    let out = synonym_attack(&wrong, 3, &wn, &stop, &mut model(&mut Vec::new())).unwrap();
    assert!(out.substitutions.is_empty() && !out.flipped() && out.queries == 1);

    // A scorer that answers for the wrong number of sentences is an error.
    let mut bad = |_: &[String]| Ok(vec![]);
    assert!(synonym_attack(&words, 1, &wn, &stop, &mut bad).unwrap_err().to_string().contains("0 verdicts for 1 sentences"));
}
