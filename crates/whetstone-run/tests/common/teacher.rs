//! A tiny Transformer teacher for the compression tests (shared by compress_config.rs and
//! pretrained_student.rs).

use std::path::{Path, PathBuf};
use whetstone_run::{train_recipe, Recipe, RunOptions};

/// A tiny Transformer teacher trained one epoch on the toy reviews in `csv` into `dir`:
/// fine-tuned from the checkpoint `pretrained`, or from scratch with its own tokenizer of
/// `vocab` ids.
pub fn tiny_teacher(dir: &Path, csv: &Path, pretrained: Option<&Path>, vocab: usize) -> PathBuf {
    let model = match pretrained {
        Some(p) => format!("[model]\nkind = \"transformer\"\npretrained = {p:?}\npooling = \"cls\""),
        None => format!("[tokenizer]\nvocab_size = {vocab}\n[model]\nkind = \"transformer\"\nlayers = 1\nhidden = 16\nheads = 2\nffn = 32\nmax_len = 24"),
    };
    let text = format!(
        "name = \"t\"\ndevice = \"cpu\"\nthreads = 1\n[data]\npath = {csv:?}\nmax_len = 24\nvalid_fraction = 0.2\ntest_fraction = 0.2\n\
         {model}\n[train]\nepochs = 1\nbatch_size = 8\n[eval]\nlatency_iters = 2\nthroughput_iters = 1\n"
    );
    let recipe = Recipe::parse("teacher", &text, &[]).unwrap();
    train_recipe(&recipe, &RunOptions { quiet: true, ..RunOptions::new(dir.to_path_buf()) }).unwrap();
    dir.to_path_buf()
}

/// `split`'s texts and binary labels as a `text,label` CSV at `csv` (labels `pos` / `neg`).
pub fn write_reviews(csv: &Path, split: &whetstone_data::Split) {
    let mut body = String::from("text,label\n");
    for (t, l) in split.texts.iter().zip(&split.labels) {
        body.push_str(&format!("\"{t}\",{}\n", if *l == 1 { "pos" } else { "neg" }));
    }
    std::fs::write(csv, body).unwrap();
}
