//! Entity-level F1 (seqeval default mode) against hand-computed cases.

use whetstone_eval::entities::{entity_scores, get_entities};
use whetstone_eval::EvalError;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|t| t.to_string()).collect()
}

fn e(t: &str, a: usize, b: usize) -> (String, usize, usize) {
    (t.to_string(), a, b)
}

#[test]
fn seqeval_readme_example() {
    // seqeval's README: f1 0.50; MISC 0/0/0 (support 1), PER 1/1/1 (support 1).
    let gold = vec![s(&["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"]), s(&["B-PER", "I-PER", "O"])];
    let pred = vec![s(&["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"]), s(&["B-PER", "I-PER", "O"])];
    let r = entity_scores(&gold, &pred).unwrap();
    assert_eq!((r.precision, r.recall, r.f1, r.support), (0.5, 0.5, 0.5, 2));
    let t: Vec<(&str, f64, f64, f64, usize)> = r.per_type.iter().map(|t| (t.entity.as_str(), t.precision, t.recall, t.f1, t.support)).collect();
    assert_eq!(t, [("MISC", 0.0, 0.0, 0.0, 1), ("PER", 1.0, 1.0, 1.0, 1)]);
}

#[test]
fn chunks_are_read_leniently_like_conlleval() {
    // seqeval's get_entities docstring.
    assert_eq!(get_entities(&s(&["B-PER", "I-PER", "O", "B-LOC"])), [e("PER", 0, 1), e("LOC", 3, 3)]);
    // A dangling I- starts a chunk; a type change ends one; B- after I- splits.
    assert_eq!(get_entities(&s(&["I-PER", "I-PER", "O", "I-LOC"])), [e("PER", 0, 1), e("LOC", 3, 3)]);
    assert_eq!(get_entities(&s(&["B-PER", "I-LOC", "I-LOC"])), [e("PER", 0, 0), e("LOC", 1, 2)]);
    assert_eq!(get_entities(&s(&["B-PER", "I-PER", "B-PER"])), [e("PER", 0, 1), e("PER", 2, 2)]);
    // Types may contain a hyphen (WNUT's geo-loc).
    assert_eq!(get_entities(&s(&["B-geo-loc", "I-geo-loc"])), [e("geo-loc", 0, 1)]);
    assert!(get_entities(&s(&["O", "O"])).is_empty());
}

#[test]
fn partial_matches_count_as_both_a_false_positive_and_a_false_negative() {
    // Gold: PER 0-1, LOC 3, ORG 5-6 (3 chunks). Pred: PER 0-1 (right), LOC 3-4 (wrong end).
    let gold = vec![s(&["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG"])];
    let pred = vec![s(&["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O"])];
    let r = entity_scores(&gold, &pred).unwrap();
    // P = 1/2, R = 1/3, F1 = 2·(1/2)(1/3)/(1/2 + 1/3) = 0.4.
    assert_eq!((r.precision, r.recall), (0.5, 1.0 / 3.0));
    assert!((r.f1 - 0.4).abs() < 1e-12);
    let org = r.per_type.iter().find(|t| t.entity == "ORG").unwrap();
    assert_eq!((org.precision, org.recall, org.support), (0.0, 0.0, 1));
}

#[test]
fn no_chunk_spans_two_sentences() {
    let gold = vec![s(&["O", "B-PER"]), s(&["I-PER", "O"])];
    // Two gold chunks (PER at the end of one sentence, PER starting the next); predicting
    // both exactly gives 1.0.
    let r = entity_scores(&gold, &gold).unwrap();
    assert_eq!((r.support, r.f1), (2, 1.0));
    // Nothing predicted: precision and F1 are 0, not NaN.
    let none = vec![s(&["O", "O"]), s(&["O", "O"])];
    let r = entity_scores(&gold, &none).unwrap();
    assert_eq!((r.precision, r.recall, r.f1), (0.0, 0.0, 0.0));
}

#[test]
fn mismatched_inputs_are_errors() {
    assert!(matches!(entity_scores(&[s(&["O"])], &[]), Err(EvalError::LengthMismatch { .. })));
    assert!(matches!(entity_scores(&[s(&["O", "O"])], &[s(&["O"])]), Err(EvalError::LengthMismatch { labels: 2, preds: 1 })));
    assert!(matches!(entity_scores(&[], &[]), Err(EvalError::Empty)));
}
