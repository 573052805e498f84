//! Masked-LM pretraining end to end on a small corpus written by the test: the loss falls,
//! a killed run resumes exactly, the encoder exports as a BERT checkpoint, and a fine-tuning
//! recipe starts from it.

use std::path::Path;
use whetstone_models::BertCheckpoint;
use whetstone_run::{pretrain_recipe, read_recipe, train_recipe, Outcome, PretrainRecipe, Recipe, RunOptions, ENCODER_DIR};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[path = "common/corpus.rs"]
mod corpus;
use corpus::{OBJECTS, SUBJECTS, VERBS};

fn write_corpus(dir: &Path) -> std::path::PathBuf {
    corpus::write_corpus(dir, 600)
}

fn recipe(corpus: &Path) -> PretrainRecipe {
    let text = format!(
        r#"
        name = "tiny-mlm"
        device = "cpu"
        [corpus]
        sources = [{corpus:?}]
        max_len = 32
        min_tokens = 4
        valid_fraction = 0.1
        [tokenizer]
        vocab_size = 200
        [model]
        layers = 1
        hidden = 32
        heads = 2
        ffn = 64
        max_len = 32
        [optim]
        kind = "adamw"
        lr = 3e-3
        [schedule]
        kind = "warmup-linear"
        warmup_ratio = 0.05
        [train]
        epochs = 4
        batch_size = 32
        eval_every = 15
        bucket_factor = 4
        "#
    );
    PretrainRecipe::parse("test", &text, &[]).unwrap()
}

fn valid_losses(dir: &Path) -> Vec<f64> {
    whetstone_eval::read_jsonl(dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.get("split").and_then(|s| s.as_str()) == Some("valid"))
        .map(|r| r["mlm_loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn pretraining_learns_resumes_exactly_and_exports_a_checkpoint_for_fine_tuning() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = write_corpus(tmp.path());
    let r = recipe(&corpus);

    let full = tmp.path().join("full");
    let done = pretrain_recipe(&r, &RunOptions { quiet: true, ..RunOptions::new(&full) }).unwrap();
    assert_eq!(done.fit.outcome, Outcome::Finished);
    let losses = valid_losses(&full);
    assert!(losses.len() >= 4, "{losses:?}");
    let v = done.valid.unwrap();
    assert!(v.loss < 0.8 * losses[0], "validation MLM loss did not fall enough: first {} best {}", losses[0], v.loss);
    assert!((v.perplexity - v.loss.exp()).abs() < 1e-9 && v.tokens > 0);
    assert!(full.join("curves.png").is_file() && full.join("metrics.json").is_file());

    // Killed part-way, then resumed: the same encoder, bit for bit.
    let cut = tmp.path().join("cut");
    let stopped = pretrain_recipe(&r, &RunOptions { stop_after: 20, quiet: true, ..RunOptions::new(&cut) }).unwrap();
    assert_eq!(stopped.fit.outcome, Outcome::Interrupted);
    // stop_after is a run option, not part of the saved recipe; a changed recipe is refused.
    let saved = PretrainRecipe::parse("saved", &std::fs::read_to_string(cut.join("pretrain.toml")).unwrap(), &[]).unwrap();
    assert_eq!(saved, r);
    let changed = PretrainRecipe { seed: r.seed + 1, ..r.clone() };
    let refused = pretrain_recipe(&changed, &RunOptions { quiet: true, ..RunOptions::resume(&cut) }).unwrap_err().to_string();
    assert!(refused.contains("seed: 42 → 43"), "a changed recipe must be refused on resume, naming the key: {refused}");
    // The name (like the device and the threads) may change on resume.
    let moved = PretrainRecipe { name: "renamed".into(), ..r.clone() };
    let resumed = pretrain_recipe(&moved, &RunOptions { quiet: true, ..RunOptions::resume(&cut) }).unwrap();
    assert_eq!(resumed.fit.outcome, Outcome::Finished);
    let a = std::fs::read(full.join(ENCODER_DIR).join("model.safetensors")).unwrap();
    let b = std::fs::read(cut.join(ENCODER_DIR).join("model.safetensors")).unwrap();
    assert!(a == b, "resumed pretraining differs from the uninterrupted run");

    // The encoder is a BERT checkpoint folder; a classifier recipe fine-tunes from the run folder.
    let ckpt = BertCheckpoint::open(full.join(ENCODER_DIR)).unwrap();
    assert_eq!(ckpt.encoder_config().layers, 1);
    let labelled = tmp.path().join("labelled.csv");
    // Every subject × verb × object once; the label is carried by the verb alone (chases,
    // paints, admires → pos), so neither the first words nor the length give it away.
    let rows: Vec<String> = (0..216)
        .map(|i| {
            let (s, v, o) = (i % 6, (i / 6) % 6, (i / 36 + i) % 6);
            format!("{} {} {},{}", SUBJECTS[s], VERBS[v], OBJECTS[o], if v % 2 == 0 { "pos" } else { "neg" })
        })
        .collect();
    std::fs::write(&labelled, format!("text,label\n{}\n", rows.join("\n"))).unwrap();
    let ft = Recipe::parse(
        "ft",
        &format!("name = \"ft\"\ndevice = \"cpu\"\n[data]\npath = {labelled:?}\nmax_len = 32\n[model]\nkind = \"transformer\"\npretrained = {full:?}\n[train]\nepochs = 6\nbatch_size = 16\n[eval]\nlatency_iters = 0\n"),
        &[],
    )
    .unwrap();
    let ft_dir = tmp.path().join("ft");
    let out = train_recipe(&ft, &RunOptions { quiet: true, ..RunOptions::new(ft_dir.clone()) }).unwrap();
    let acc = out.test.unwrap().accuracy;
    assert!(acc >= 0.8, "fine-tuned accuracy {acc}");
    // Fine-tuning used the pretraining tokenizer, which the checkpoint carries.
    assert_eq!(std::fs::read(ft_dir.join("tokenizer.json")).unwrap(), std::fs::read(full.join("tokenizer.json")).unwrap());
    assert!(read_recipe(&ft_dir).is_ok());
}

#[test]
fn bad_pretraining_recipes_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = write_corpus(tmp.path());
    let base = toml::to_string(&recipe(&corpus)).unwrap();
    for (set, key) in [("corpus.max_len=64", "corpus.max_len"), ("mlm.mask_prob=0", "mask_prob"), ("corpus.valid_fraction=1.5", "corpus.valid_fraction"), ("model.pre_norm=true", "pre_norm"), ("mlm.whole_words=true", "mlm.whole_words")] {
        let e = PretrainRecipe::parse("r.toml", &base, &[set.into()]).unwrap_err();
        assert!(e.contains(key) && e.contains("r.toml"), "{set}: {e}");
    }
    let missing = PretrainRecipe::parse("r.toml", &base, &["corpus.sources=[\"no-such-corpus\"]".into()]).unwrap();
    let e = pretrain_recipe(&missing, &RunOptions { quiet: true, ..RunOptions::new(tmp.path().join("x")) }).unwrap_err().to_string();
    assert!(e.contains("no-such-corpus") && e.contains("wiki100"), "{e}");
    assert!(!tmp.path().join("x").exists(), "a run that fails its checks leaves no folder");
    // Non-finite values and encoders too large to allocate are refused by key.
    for (set, key) in [("optim.weight_decay=nan", "optim.weight_decay"), ("mlm.mask_prob=nan", "mlm.mask_prob"), ("threads=4294967296", "threads"), ("model.hidden=65536", "model.hidden")] {
        let e = PretrainRecipe::parse("r.toml", &base, &[set.into(), "model.heads=1".into()]).unwrap_err();
        assert!(e.contains(key), "{set}: {e}");
    }
}
