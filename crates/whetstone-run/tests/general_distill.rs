//! General distillation and domain-adaptive pretraining through the pretraining pipeline, on
//! a small corpus written by the test, with a small masked-LM run as the teacher / the
//! checkpoint to continue: the distillation loss falls, a killed run resumes exactly, the
//! exported encoder is the student and loads as `pretrained` in a training recipe; DAPT starts
//! from the checkpoint's weights and tokenizer.

use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_models::{load_varstore, BertCheckpoint, ModelConfig, TransformerClassifier, TransformerEncoder};
use whetstone_run::{pretrain_recipe, resolve_model, train_recipe, Outcome, PretrainRecipe, Recipe, RunOptions, ENCODER_DIR};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[path = "common/corpus.rs"]
mod corpus;
use corpus::{OBJECTS, SUBJECTS, VERBS};

fn write_corpus(dir: &Path) -> std::path::PathBuf {
    corpus::write_corpus(dir, 480)
}

const TAIL: &str = r#"
[optim]
kind = "adamw"
lr = 3e-3
[schedule]
kind = "warmup-linear"
warmup_ratio = 0.05
"#;

/// A 2 × 32 masked-LM run on the corpus: the teacher, and the checkpoint DAPT continues.
fn mlm_teacher(tmp: &Path, corpus: &Path) -> PathBuf {
    let text = format!(
        "name = \"teacher\"\ndevice = \"cpu\"\nthreads = 1\n[corpus]\nsources = [{corpus:?}]\nmax_len = 32\nmin_tokens = 4\nvalid_fraction = 0.1\n[tokenizer]\nvocab_size = 200\n[model]\nlayers = 2\nhidden = 32\nheads = 4\nffn = 64\nmax_len = 32\n{TAIL}[train]\nepochs = 4\nbatch_size = 32\neval_every = 0\nbucket_factor = 4\n"
    );
    let dir = tmp.join("teacher");
    pretrain_recipe(&PretrainRecipe::parse("teacher", &text, &[]).unwrap(), &RunOptions { quiet: true, ..RunOptions::new(&dir) }).unwrap();
    dir
}

fn gd_recipe(corpus: &Path, teacher: &Path) -> PretrainRecipe {
    let text = format!(
        "name = \"gd\"\ndevice = \"cpu\"\nthreads = 1\n[general]\nteacher = {teacher:?}\n[corpus]\nsources = [{corpus:?}]\nmax_len = 32\nmin_tokens = 4\nvalid_fraction = 0.1\n[model]\nlayers = 1\nhidden = 16\nheads = 2\nffn = 32\nmax_len = 32\n{TAIL}[train]\nepochs = 3\nbatch_size = 32\neval_every = 10\nbucket_factor = 4\n"
    );
    PretrainRecipe::parse("gd", &text, &[]).unwrap()
}

fn records(dir: &Path, split: &str, key: &str) -> Vec<f64> {
    whetstone_eval::read_jsonl(dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.get("split").and_then(|s| s.as_str()) == Some(split))
        .filter_map(|r| r.get(key).and_then(|v| v.as_f64()))
        .collect()
}

fn ids() -> (Tensor, Tensor) {
    let ids = Tensor::from_slice(&[2i64, 10, 11, 12, 13, 3, 2, 20, 21, 3, 0, 0]).view([2, 6]);
    (ids.shallow_clone(), ids.ne(0).to_kind(Kind::Int64))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn general_distillation_learns_resumes_exactly_and_exports_a_pretrained_encoder() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = write_corpus(tmp.path());
    let teacher = mlm_teacher(tmp.path(), &corpus);
    let r = gd_recipe(&corpus, &teacher);

    let full = tmp.path().join("gd");
    let done = pretrain_recipe(&r, &RunOptions { quiet: true, ..RunOptions::new(&full) }).unwrap();
    assert_eq!(done.fit.outcome, Outcome::Finished);
    let losses = records(&full, "valid", "gd_loss");
    assert!(losses.len() >= 3, "{losses:?}");
    let best = done.valid_record.as_ref().unwrap()["gd_loss"].as_f64().unwrap();
    assert!(best < 0.7 * losses[0], "validation distillation loss did not fall enough: first {} best {best}", losses[0]);
    for term in ["gd_embedding", "gd_hidden", "gd_attention"] {
        assert!(!records(&full, "train", term).is_empty(), "{term} is not logged");
    }
    assert!(done.valid.is_none(), "no masked-LM score for a distillation");

    // The exported encoder is the student's best weights, with the teacher's tokenizer.
    let ckpt = BertCheckpoint::open(full.join(ENCODER_DIR)).unwrap();
    assert_eq!((ckpt.encoder_config().layers, ckpt.encoder_config().hidden), (1, 16));
    let teacher_ckpt = BertCheckpoint::open(teacher.join(ENCODER_DIR)).unwrap();
    assert_eq!(ckpt.vocab_size(), teacher_ckpt.vocab_size());
    let tok = |d: &Path| whetstone_data::TextTokenizer::from_file(&d.join("tokenizer.json")).unwrap();
    let sentence = vec!["the old sailor paints a paper boat".to_string()];
    assert_eq!(tok(&full.join(ENCODER_DIR)).encode_batch(&sentence, 32).unwrap(), tok(&teacher.join(ENCODER_DIR)).encode_batch(&sentence, 32).unwrap());
    let mut svs = VarStore::new(Device::Cpu);
    let student = TransformerEncoder::new(&svs.root(), ckpt.vocab_size(), &r.model).unwrap();
    load_varstore(&mut svs, &full.join(whetstone_train::BEST_MODEL_FILE)).unwrap();
    let (x, m) = ids();
    let want = student.forward_t(&x, &m, false).unwrap();
    // A training recipe naming the run as `pretrained` starts from exactly that encoder.
    let ft_text = |path: &Path| format!("name = \"ft\"\ndevice = \"cpu\"\n[data]\npath = {path:?}\nmax_len = 32\n[model]\nkind = \"transformer\"\npretrained = {full:?}\n[train]\nepochs = 1\nbatch_size = 16\n[eval]\nlatency_iters = 0\n");
    let labelled = tmp.path().join("labelled.csv");
    let rows: Vec<String> = (0..72).map(|i| format!("{} {} {},{}", SUBJECTS[i % 6], VERBS[(i / 6) % 6], OBJECTS[(i / 12) % 6], if (i / 6) % 2 == 0 { "pos" } else { "neg" })).collect();
    std::fs::write(&labelled, format!("text,label\n{}\n", rows.join("\n"))).unwrap();
    let ft = Recipe::parse("ft", &ft_text(&labelled), &[]).unwrap();
    let ModelConfig::Transformer(c) = resolve_model(&ft.model).unwrap() else { panic!("not a transformer") };
    assert_eq!(c.pretrained.as_deref(), Some(full.join(ENCODER_DIR).as_path()));
    let cvs = VarStore::new(Device::Cpu);
    let clf = TransformerClassifier::from_pretrained(&cvs.root(), c.pretrained.as_ref().unwrap(), 2, c.pooling).unwrap();
    assert_eq!(max_abs_diff(&clf.encoder().forward_t(&x, &m, false).unwrap(), &want), 0.0);
    let out = train_recipe(&ft, &RunOptions { quiet: true, ..RunOptions::new(tmp.path().join("ft")) }).unwrap();
    assert!(out.test.is_some());

    // Killed part-way, then resumed (the projections come back from the checkpoint): the same
    // encoder, bit for bit.
    let cut = tmp.path().join("cut");
    let stopped = pretrain_recipe(&r, &RunOptions { stop_after: 12, quiet: true, ..RunOptions::new(&cut) }).unwrap();
    assert_eq!(stopped.fit.outcome, Outcome::Interrupted);
    let resumed = pretrain_recipe(&r, &RunOptions { quiet: true, ..RunOptions::resume(&cut) }).unwrap();
    assert_eq!(resumed.fit.outcome, Outcome::Finished);
    let a = std::fs::read(full.join(ENCODER_DIR).join("model.safetensors")).unwrap();
    let b = std::fs::read(cut.join(ENCODER_DIR).join("model.safetensors")).unwrap();
    assert!(a == b, "resumed general distillation differs from the uninterrupted run");

    // Settings that cannot work are refused before any folder is made.
    let bad = |set: &str| {
        let base = toml::to_string(&r).unwrap();
        match PretrainRecipe::parse("r.toml", &base, &[set.into()]) {
            Err(e) => e,
            Ok(rr) => {
                let dir = tmp.path().join("bad");
                let e = pretrain_recipe(&rr, &RunOptions { quiet: true, ..RunOptions::new(&dir) }).unwrap_err().to_string();
                assert!(!dir.exists(), "{set}: a run that fails its checks leaves no folder");
                e
            }
        }
    };
    for (set, want) in [
        ("general.mapping=\"0:7\"", "0:7"),
        ("general.mapping=\"3:1\"", "model.layers = 1"),
        ("general.mapping=\"middle\"", "layer mapping"),
        ("general.teacher=\"no-such-model\"", "minilm-l6"),
        ("general.student_init=\"pca\"", "student_init"),
        ("tokenizer.path=\"tok.json\"", "teacher's tokenizer.json"),
        ("init=\"minilm-l6\"", "cannot be combined"),
        ("general.attention=-1", "attention"),
    ] {
        let e = bad(set);
        assert!(e.contains(want), "{set}: {e}");
    }
    // A student whose vocabulary is not the teacher's: a teacher whose config and tokenizer disagree.
    let odd = tmp.path().join("odd-teacher");
    std::fs::create_dir_all(&odd).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(teacher.join(ENCODER_DIR).join(f), odd.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(teacher.join(ENCODER_DIR).join("config.json")).unwrap();
    let v = teacher_ckpt.vocab_size();
    std::fs::write(odd.join("config.json"), config.replace(&format!("\"vocab_size\": {v}"), &format!("\"vocab_size\": {}", v + 3))).unwrap();
    let e = bad(&format!("general.teacher={odd:?}"));
    assert!(e.contains("word embeddings") && e.contains("tokenizer.json"), "{e}");
}

#[test]
fn domain_adaptive_pretraining_continues_from_the_checkpoint() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = write_corpus(tmp.path());
    let teacher = mlm_teacher(tmp.path(), &corpus);
    // The recipe's [model] and [tokenizer] are not used: the checkpoint brings both.
    let run = |name: &str, init: Option<&Path>| {
        let init = init.map(|p| format!("init = {p:?}\n")).unwrap_or_default();
        let text = format!(
            "name = \"{name}\"\ndevice = \"cpu\"\nthreads = 1\n{init}[corpus]\nsources = [{corpus:?}]\nmax_len = 32\nmin_tokens = 4\nvalid_fraction = 0.1\n[tokenizer]\nvocab_size = 200\n[model]\nlayers = 2\nhidden = 32\nheads = 4\nffn = 64\nmax_len = 32\n{TAIL}[train]\nepochs = 1\nbatch_size = 32\neval_every = 0\nlog_every = 3\nbucket_factor = 4\n"
        );
        let dir = tmp.path().join(name);
        let done = pretrain_recipe(&PretrainRecipe::parse(name, &text, &[]).unwrap(), &RunOptions { quiet: true, ..RunOptions::new(&dir) }).unwrap();
        (dir, done)
    };
    let (dapt, done) = run("dapt", Some(&teacher));
    let (scratch, scratch_done) = run("scratch", None);
    let first = |d: &Path| records(d, "train", "loss")[0];
    let uniform = (BertCheckpoint::open(teacher.join(ENCODER_DIR)).unwrap().vocab_size() as f64).ln();
    // The encoder already knows the corpus: only the new head has to be learnt.
    assert!(first(&dapt) < 0.8 * uniform && first(&dapt) < first(&scratch) - 0.3, "first logged MLM loss: dapt {} scratch {} uniform {uniform}", first(&dapt), first(&scratch));
    let (v, s) = (done.valid.unwrap(), scratch_done.valid.unwrap());
    assert!(v.loss < s.loss - 0.3, "valid MLM loss after one epoch: dapt {v:?}, scratch {s:?}");

    // The export has the checkpoint's shape, names and tokenizer; its weights moved by training.
    let (before, after) = (BertCheckpoint::open(teacher.join(ENCODER_DIR)).unwrap(), BertCheckpoint::open(dapt.join(ENCODER_DIR)).unwrap());
    assert_eq!(before.encoder_config(), after.encoder_config());
    assert_eq!(std::fs::read(teacher.join(ENCODER_DIR).join("tokenizer.json")).unwrap(), std::fs::read(dapt.join(ENCODER_DIR).join("tokenizer.json")).unwrap());
    let load = |c: &BertCheckpoint| {
        let vs = VarStore::new(Device::Cpu);
        let e = c.load_encoder(&vs.root()).unwrap();
        (vs, e)
    };
    let ((_a, a), (_b, b)) = (load(&before), load(&after));
    let (pa, pb) = (a.named_parameters(), b.named_parameters());
    assert_eq!(pa.iter().map(|(n, t)| (n.clone(), t.size())).collect::<Vec<_>>(), pb.iter().map(|(n, t)| (n.clone(), t.size())).collect::<Vec<_>>());
    let (mut moved, mut diff2, mut norm2) = (0, 0.0f64, 0.0f64);
    for ((_, x), (_, y)) in pa.iter().zip(&pb) {
        moved += usize::from(max_abs_diff(x, y) > 0.0);
        diff2 += (x - y).square().sum(Kind::Double).double_value(&[]);
        norm2 += x.square().sum(Kind::Double).double_value(&[]);
    }
    assert!(moved > pa.len() / 2, "only {moved} of {} tensors changed", pa.len());
    // Independent weights of the same scale would be about √2 of the norm apart.
    let rel = (diff2 / norm2).sqrt();
    assert!(rel < 0.5, "the encoder moved by {rel} of its norm in one short epoch");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dapt.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["objective"], "mlm");
    assert!(metrics["init"].as_str().unwrap().ends_with(ENCODER_DIR));
}
