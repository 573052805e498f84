//! The multi-task source's sampling, and token-classification data: reading, errors, alignment.

use std::path::Path;
use whetstone_data::conll::{encode_tagged, parse_conll, split_sentences, IGNORE_INDEX as X};
use whetstone_data::{BatchSource, Encoded, LabelSet, MultiTaskSource, Sampling, TaskData, TextTokenizer};

fn task(n: usize, label: i64) -> TaskData {
    TaskData::Sequence(Encoded { ids: (0..n).map(|i| vec![2, 5 + (i % 7) as i64, 3]).collect(), labels: vec![label; n], pad_id: 0 })
}

fn counts(source: &MultiTaskSource, seed: u64, epoch: u64) -> Vec<usize> {
    let mut c = vec![0; source.tasks().len()];
    for e in source.epoch_plan(seed, epoch).unwrap() {
        c[e.stream] += 1;
    }
    c
}

#[test]
fn proportional_and_temperature_sampling_follow_their_probabilities() {
    // 900 + 100 examples in batches of 1: 1,000 draws per epoch.
    let prop = MultiTaskSource::new(vec![task(900, 0), task(100, 1)], 1, 1, Sampling::Proportional).unwrap();
    assert_eq!(Sampling::Proportional.probabilities(&[900, 100]), vec![0.9, 0.1]);
    let c: usize = (0..4).map(|e| counts(&prop, 3, e)[0]).sum();
    // 4,000 draws at p = 0.9: mean 3,600, sd 19.
    assert!((3_540..=3_660).contains(&c), "task 0 drawn {c} times of 4000");
    // T = 2: p ∝ sqrt(n) = 30 : 10.
    let temp = MultiTaskSource::new(vec![task(900, 0), task(100, 1)], 1, 1, Sampling::Temperature(2.0)).unwrap();
    let p = Sampling::Temperature(2.0).probabilities(&[900, 100]);
    assert!((p[0] - 0.75).abs() < 1e-12);
    let c: usize = (0..4).map(|e| counts(&temp, 3, e)[0]).sum();
    // mean 3,000, sd 27.
    assert!((2_920..=3_080).contains(&c), "task 0 drawn {c} times of 4000");
}

#[test]
fn round_robin_gives_each_step_one_batch_of_every_task() {
    let source = MultiTaskSource::new(vec![task(10, 0), task(3, 1), task(5, 2)], 2, 1, Sampling::RoundRobin).unwrap();
    let plan = source.epoch_plan(1, 0).unwrap();
    // 5 + 2 + 3 = 10 batches, rounded up to 12 = 4 rounds of 3.
    assert_eq!(plan.len(), 12);
    for round in plan.chunks(3) {
        assert_eq!(round.iter().map(|e| e.stream).collect::<Vec<_>>(), [0, 1, 2]);
    }
    // Task 1 (2 batches a pass) is served twice: each pass covers all its examples once.
    let t1: Vec<Vec<usize>> = plan.iter().filter(|e| e.stream == 1).map(|e| e.indices.clone()).collect();
    for pass in t1.chunks(2) {
        let mut seen: Vec<usize> = pass.concat();
        seen.sort();
        assert_eq!(seen, [0, 1, 2]);
    }
}

#[test]
fn plans_are_pure_functions_of_seed_and_epoch_and_batches_carry_their_stream() {
    let make = |s| MultiTaskSource::new(vec![task(40, 0), task(25, 1)], 4, 2, s).unwrap();
    for sampling in [Sampling::Proportional, Sampling::Temperature(3.0), Sampling::RoundRobin] {
        let source = make(sampling);
        let a = source.epoch_plan(9, 2).unwrap();
        assert_eq!(a, make(sampling).epoch_plan(9, 2).unwrap());
        assert_ne!(a, source.epoch_plan(9, 3).unwrap());
        assert_ne!(a, source.epoch_plan(10, 2).unwrap());
        for e in &a {
            let b = source.batch(e, tch::Device::Cpu).unwrap();
            assert_eq!((b.stream, b.indices.clone()), (e.stream, e.indices.clone()));
            assert_eq!(Vec::<i64>::try_from(&b.labels).unwrap(), vec![e.stream as i64; e.indices.len()]);
        }
    }
    // Padding over mixed-task batches: the example tasks' sequences all have length 3.
    let source = make(Sampling::Proportional);
    assert_eq!(source.padding_fraction(&source.epoch_plan(1, 0).unwrap()), Some(0.0));
    // The fingerprint covers the sampling and every task.
    assert_ne!(make(Sampling::Proportional).fingerprint(), make(Sampling::RoundRobin).fingerprint());
    let other = MultiTaskSource::new(vec![task(40, 0), task(25, 0)], 4, 2, Sampling::RoundRobin).unwrap();
    assert_ne!(other.fingerprint(), make(Sampling::RoundRobin).fingerprint());
}

#[test]
fn a_task_without_examples_and_a_bad_sampling_are_errors() {
    let e = MultiTaskSource::new(vec![task(4, 0), task(0, 1)], 2, 1, Sampling::Proportional).unwrap_err();
    assert!(e.to_string().contains("task 1 has no training examples"), "{e}");
    assert!(Sampling::parse("uniformly", 1.0).unwrap_err().to_string().contains("multitask.sampling"));
    assert!(Sampling::parse("temperature", 0.0).unwrap_err().to_string().contains("multitask.temperature"));
}

#[test]
fn conll_errors_name_the_file_and_line() {
    let f = Path::new("ner.txt");
    let e = parse_conll("a\tO\nb O\n", f).unwrap_err().to_string();
    assert!(e.starts_with("ner.txt:2:") && e.contains("no tab"), "{e}");
    for bad in ["X-person", "B-", "B", "b-person", "I"] {
        let e = parse_conll(&format!("a\tO\n\nb\t{bad}\n"), f).unwrap_err().to_string();
        assert!(e.starts_with("ner.txt:3:") && e.contains("not a BIO tag"), "{bad}: {e}");
    }
    // A dangling I- is accepted (seqeval's default mode reads it as a chunk start).
    let s = parse_conll("a\tI-person\n \nb\tO\n", f).unwrap();
    assert_eq!((s.len(), s[1].line), (2, 3));
}

#[test]
fn word_pieces_are_aligned_first_piece_carries_the_tag() {
    // A tiny vocabulary, so that words split into pieces.
    let texts: Vec<String> = ["the empire state building is tall", "buildings and states", "empire"].iter().map(|s| s.to_string()).collect();
    let tok = TextTokenizer::train_wordpiece(&texts, 40, 1, true).unwrap();
    let s = parse_conll("Empire\tB-facility\nState\tI-facility\nBuildings\tI-facility\n!\tO\n", Path::new("t")).unwrap();
    let tags = LabelSet::from_labels(["B-facility", "I-facility", "O"]);
    let enc = encode_tagged(&tok, &s, &tags, 32).unwrap();
    let pieces: Vec<String> = enc.ids[0].iter().map(|&i| tok.id_to_token(i).unwrap()).collect();
    // Hand alignment (B-facility = 0, I-facility = 1, O = 2): [CLS], [SEP] and every `##`
    // piece get -100; the first piece of each word (`!` is unknown: one [UNK] piece) its tag.
    assert_eq!(pieces, ["[CLS]", "em", "##p", "##i", "##r", "##e", "st", "##at", "##e", "bu", "##il", "##di", "##n", "##g", "##s", "[UNK]", "[SEP]"]);
    assert_eq!(enc.labels[0], [X, 0, X, X, X, X, 1, X, X, 1, X, X, X, X, X, 2, X]);
    // Truncation keeps [SEP] and drops the words cut off.
    let short = encode_tagged(&tok, &s, &tags, 8).unwrap();
    assert_eq!(short.labels[0], [X, 0, X, X, X, X, 1, X]);
    // Splitting is seeded and keeps every sentence.
    let many: Vec<_> = (0..10).map(|_| s[0].clone()).collect();
    let sp = split_sentences(many, 0.2, 0.2, 1).unwrap();
    assert_eq!((sp.train.len(), sp.valid.len(), sp.test.len()), (6, 2, 2));
}

#[test]
fn wnut16_reads_as_the_data_page_counts_it_when_cached() {
    let manifest = whetstone_data::Manifest::builtin().unwrap();
    let entry = manifest.get("wnut16").unwrap();
    assert!(entry.is_token_data() && !entry.is_model());
    let Some(dir) = whetstone_data::cached(entry, &whetstone_data::cache_dir()).unwrap() else {
        eprintln!("wnut16 is not cached: skipped (cargo xtask data wnut16)");
        return;
    };
    let s = whetstone_data::read_conll(&dir.join("ner.txt")).unwrap();
    assert_eq!(s.len(), 2_394);
    assert_eq!(s.iter().map(|s| s.words.len()).sum::<usize>(), 46_469);
    let types = LabelSet::from_labels(s.iter().flat_map(|s| s.tags.iter().filter_map(|t| t.get(2..))));
    assert_eq!(types.len(), 10, "{:?}", types.names);
}

#[test]
fn token_files_come_only_from_token_entries_and_ids_only_keeps_the_inputs() {
    let manifest = whetstone_data::Manifest::builtin().unwrap();
    // A text-classification entry is refused before anything is fetched.
    let err = whetstone_data::conll::obtain_token_file(manifest.get("rotten-tomatoes").unwrap(), std::path::Path::new("/nonexistent")).unwrap_err().to_string();
    assert!(err.contains("rotten-tomatoes") && err.contains("not token-classification"), "{err}");
    let e = whetstone_data::TokenEncoded { ids: vec![vec![2, 7, 3], vec![2, 3]], labels: vec![vec![-100, 1, -100], vec![-100, -100]], pad_id: 0 };
    let plain = e.ids_only();
    assert_eq!((plain.ids, plain.labels, plain.pad_id), (e.ids.clone(), vec![0, 0], 0));
}
