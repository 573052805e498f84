//! A tiny unlabelled corpus with learnable structure, for the pretraining and general-distillation
//! tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub const SUBJECTS: [&str; 6] = ["the cat", "a dog", "my neighbour", "the old sailor", "every child", "the quiet teacher"];
pub const VERBS: [&str; 6] = ["chases", "feeds", "paints", "remembers", "admires", "follows"];
pub const OBJECTS: [&str; 6] = ["the red ball", "a small bird", "the harbour lights", "an empty room", "the winter sky", "a paper boat"];

/// `dir/corpus.txt` with `lines` lines, each pairing a subject with its own verb and object.
pub fn write_corpus(dir: &Path, lines: usize) -> PathBuf {
    let text: Vec<String> = (0..lines)
        .map(|i| {
            let (k, m) = (i % 6, (i / 6) % 6);
            format!("{} {} {} and then {} {} {}.", SUBJECTS[k], VERBS[k], OBJECTS[k], SUBJECTS[m], VERBS[m], OBJECTS[m])
        })
        .collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}
