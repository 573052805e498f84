//! A whole run from a recipe that names a pretrained checkpoint folder: a tiny random BERT
//! written with `save_pretrained`, fine-tuned with its own tokenizer under `[finetune]`
//! settings, loaded back, and the errors of bad settings.

use std::path::{Path, PathBuf};
use tch::Tensor;
use whetstone_data::{Split, TextTokenizer};
use whetstone_run::{train_recipe, LoadedRun, Recipe, RunOptions, BEST_MODEL_FILE, TOKENIZER_FILE};
#[path = "../../whetstone-train/tests/common/tiny_bert.rs"]
mod tiny_bert;
use tiny_bert::{checkpoint_tensors, corpus, same, tiny_checkpoint};

fn write_csv(path: &Path, split: &Split) {
    let mut body = String::from("text,label\n");
    for (t, l) in split.texts.iter().zip(&split.labels) {
        body.push_str(&format!("\"{t}\",{}\n", if *l == 1 { "pos" } else { "neg" }));
    }
    std::fs::write(path, body).unwrap();
}

fn recipe(csv: &Path, pretrained: &Path, extra: &str) -> Recipe {
    let text = format!(
        "name = \"ft\"\ndevice = \"cpu\"\n[data]\npath = {csv:?}\nmax_len = 24\nvalid_fraction = 0.2\ntest_fraction = 0.2\n\
         [model]\nkind = \"transformer\"\npretrained = {pretrained:?}\npooling = \"cls\"\n[optim]\nkind = \"adamw\"\nlr = 1e-3\n\
         [train]\nepochs = 2\nbatch_size = 8\n[eval]\nlatency_iters = 2\nthroughput_iters = 1\n{extra}"
    );
    Recipe::parse("test recipe", &text, &[]).unwrap()
}

#[test]
fn a_recipe_fine_tunes_a_checkpoint_folder_with_its_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let tok = tiny_checkpoint(&ckpt);
    let csv = tmp.path().join("reviews.csv");
    write_csv(&csv, &corpus(80));
    let r = recipe(&csv, &ckpt, "[finetune]\nfreeze = [\"embeddings\"]\nhead_warmup_steps = 3\nreinit_layers = 1\n");
    let dir = tmp.path().join("run");
    let result = train_recipe(&r, &RunOptions { quiet: true, ..RunOptions::new(dir.clone()) }).unwrap();
    assert!(result.test.is_some());
    let run_tok = TextTokenizer::from_file(&dir.join(TOKENIZER_FILE)).unwrap();
    assert_eq!(run_tok.vocab_size(), tok.vocab_size());
    assert_eq!(run_tok.token_to_id("awful"), tok.token_to_id("awful"));
    let best = Tensor::read_safetensors(dir.join(BEST_MODEL_FILE)).unwrap();
    assert!(same(&best, &checkpoint_tensors(&ckpt), "embeddings."), "frozen embeddings are saved unchanged");
    let loaded = LoadedRun::open(&dir, None).unwrap();
    assert_eq!(loaded.predict_texts(&["the film was great".into()]).unwrap().len(), 1);

    // A checkpoint without tokenizer.json needs tokenizer.path.
    let bare: PathBuf = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(ckpt.join(f), bare.join(f)).unwrap();
    }
    let e = train_recipe(&recipe(&csv, &bare, ""), &RunOptions { quiet: true, ..RunOptions::new(tmp.path().join("bare-run")) }).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json") && e.contains("tokenizer.path"), "{e}");

    // Bad [finetune] settings name their keys.
    let e = Recipe::parse("r", "[finetune]\nunfreeze_every = 3\n", &[]).unwrap_err();
    assert!(e.contains("finetune.unfreeze_every"), "{e}");
    let e = Recipe::parse("r", "[finetune]\nhead_warmup_steps = 3\nunfreeze_every_epochs = 1\n", &[]).unwrap_err();
    assert!(e.contains("finetune.head_warmup_steps") && e.contains("unfreeze_every_epochs"), "{e}");
    let e = train_recipe(&recipe(&csv, &ckpt, "[finetune]\nfreeze = [\"embedings\"]\n"), &RunOptions { quiet: true, ..RunOptions::new(tmp.path().join("typo")) }).unwrap_err().to_string();
    assert!(e.contains("embedings") && e.contains("matches no"), "{e}");
}
