//! all-MiniLM-L6-v2 loaded from its Hugging Face folder matches two references: a from-scratch
//! BERT forward (tests/oracle/bert_reference.py, float64 torch over the same safetensors) and
//! Hugging Face `transformers` itself (tests/oracle/hf_transformers.py); and an exported
//! fine-tuned classifier reloads with the same outputs in whetstone, the reference and
//! `transformers`.
//!
//! The model is fetched into the data cache on first use (`whetstone data minilm-l6`).
//! The references need `$WHETSTONE_PYTHON` (else `python3`) with numpy, torch and
//! transformers (`cargo xtask setup` installs them); without them these tests fail rather
//! than skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_data::{cache_dir, fetch, Manifest, TextTokenizer};
use whetstone_models::pretrained::BertCheckpoint;
use whetstone_models::{pool, Pooling, TextClassifier, TransformerClassifier};

const TOLERANCE: f64 = 1e-4;

const SENTENCES: [&str; 12] = [
    "A man is playing a guitar",
    "Someone plays an instrument",
    "The stock market fell",
    "A man is playing a guitar, unbelievably well!",
    "Hi",
    "The café's crème brûlée was naïvely priced at €3.50 — a bargain?!",
    "Dogs chase cats; cats chase mice; mice chase nothing at all.",
    "In 1998, 42 researchers published 7 papers on tokenisation and WordPiece vocabularies.",
    "东京 is the capital of Japan 🙂",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "I didn't think the movie would be THIS good, honestly; the second half drags, though.",
    "A long sentence that keeps going, with clauses piled on clauses, so that the padded batch \
     has one row much longer than the others and the attention mask really matters for every \
     shorter row in the batch.",
];

fn minilm_dir() -> PathBuf {
    // One fetch per test binary, however many tests ask at once.
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(fetch_minilm).clone()
}

fn fetch_minilm() -> PathBuf {
    let manifest = Manifest::builtin().expect("builtin manifest");
    let entry = manifest.get("minilm-l6").expect("minilm-l6 in the manifest");
    fetch(entry, &cache_dir()).unwrap_or_else(|e| panic!("cannot fetch minilm-l6: {e}"))
}

/// Token ids padded with 0 into `[B, T]`, and the mask.
fn batch(ids: &[Vec<i64>]) -> (Tensor, Tensor) {
    let t = ids.iter().map(Vec::len).max().unwrap_or(0);
    let mut flat = Vec::new();
    let mut mask = Vec::new();
    for row in ids {
        flat.extend(row.iter().copied().chain(std::iter::repeat_n(0, t - row.len())));
        mask.extend((0..t).map(|i| i64::from(i < row.len())));
    }
    let b = ids.len() as i64;
    (Tensor::from_slice(&flat).view([b, t as i64]), Tensor::from_slice(&mask).view([b, t as i64]))
}

struct Reference {
    hidden: Tensor,
    pooled: Tensor,
    logits: Option<Tensor>,
    token_ids: Vec<Vec<i64>>,
}

/// Runs the from-scratch Python reference on `model_dir` for these ids (and texts, for its WordPiece).
fn reference(model_dir: &Path, ids: &[Vec<i64>], texts: &[&str]) -> Reference {
    oracle("bert_reference.py", model_dir, ids, texts)
}

/// Runs Hugging Face `transformers` on `model_dir` for these ids (and texts, for AutoTokenizer).
fn transformers_reference(model_dir: &Path, ids: &[Vec<i64>], texts: &[&str]) -> Reference {
    oracle("hf_transformers.py", model_dir, ids, texts)
}

/// Runs `tests/oracle/<script>` on `model_dir` for these ids and texts.
fn oracle(script: &str, model_dir: &Path, ids: &[Vec<i64>], texts: &[&str]) -> Reference {
    let (input_ids, mask) = batch(ids);
    let to_rows = |t: &Tensor| -> Vec<Vec<i64>> { Vec::<Vec<i64>>::try_from(t).unwrap() };
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input.json");
    let output = work.path().join("output.json");
    let payload = serde_json::json!({ "input_ids": to_rows(&input_ids), "attention_mask": to_rows(&mask), "texts": texts });
    std::fs::write(&input, payload.to_string()).unwrap();
    let python = std::env::var("WHETSTONE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle").join(script);
    let out = Command::new(&python).arg(&script).arg(model_dir).arg(&input).arg(&output).output().unwrap_or_else(|e| {
        panic!("ORACLE MISSING: cannot run `{python} {}`: {e}. Set WHETSTONE_PYTHON to the setup virtualenv's Python (numpy, torch, transformers): `cargo xtask test` does.", script.display())
    });
    assert!(
        out.status.success(),
        "ORACLE FAILED: `{python} {}` exited with {}. It needs numpy, torch and transformers (`cargo xtask setup`).\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let floats = |key: &str| -> Vec<f64> { v[key].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let shape: Vec<i64> = v["shape"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    let logits = v.get("logits").map(|_| Tensor::from_slice(&floats("logits")).view([shape[0], -1]));
    Reference {
        hidden: Tensor::from_slice(&floats("hidden")).view(shape.as_slice()),
        pooled: Tensor::from_slice(&floats("pooled")).view([shape[0], shape[2]]),
        logits,
        token_ids: serde_json::from_value(v["token_ids"].clone()).unwrap_or_default(),
    }
}

/// Largest absolute difference over real (unpadded) token positions.
fn max_err_tokens(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let keep = mask.ne(0).unsqueeze(-1);
    let diff = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().masked_fill(&keep.logical_not(), 0.0);
    diff.max().double_value(&[])
}

fn max_err(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    ((&a * &b).sum(Kind::Double) / (a.norm() * b.norm())).double_value(&[])
}

fn encode(dir: &Path) -> (Vec<Vec<i64>>, Tensor, Tensor) {
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let texts: Vec<String> = SENTENCES.iter().map(|s| s.to_string()).collect();
    let ids = tok.encode_batch(&texts, 128).unwrap();
    let (input_ids, mask) = batch(&ids);
    (ids, input_ids, mask)
}

#[test]
fn minilm_matches_the_reference_forward() {
    let dir = minilm_dir();
    let (ids, input_ids, mask) = encode(&dir);
    assert_eq!(ids[3], [101, 1037, 2158, 2003, 2652, 1037, 2858, 1010, 4895, 8671, 2666, 3567, 6321, 2092, 999, 102]);

    let ckpt = BertCheckpoint::open(&dir).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let encoder = ckpt.load_encoder(&vs.root()).unwrap();
    let hidden = tch::no_grad(|| encoder.forward_t(&input_ids, &mask, false)).unwrap();
    let pooled = pool(&hidden, &mask, Pooling::Mean).unwrap();

    let r = reference(&dir, &ids, &SENTENCES);
    // The tokenizer.json pipeline and the reference's own BERT WordPiece over vocab.txt agree.
    assert_eq!(ids, r.token_ids, "tokenizer.json ids differ from the reference WordPiece");
    let hidden_err = max_err_tokens(&hidden, &r.hidden, &mask);
    let pooled_err = max_err(&pooled, &r.pooled);
    eprintln!("MiniLM-L6 vs reference, {} sentences padded to {}: hidden max |err| {hidden_err:.3e}, pooled max |err| {pooled_err:.3e}", ids.len(), input_ids.size()[1]);
    assert!(hidden_err <= TOLERANCE, "last-layer hidden states differ by {hidden_err}");
    assert!(pooled_err <= TOLERANCE, "mean-pooled embeddings differ by {pooled_err}");

    // Hugging Face transformers on the same folder: its tokenizer and its BertModel.
    let hf = transformers_reference(&dir, &ids, &SENTENCES);
    assert_eq!(ids, hf.token_ids, "tokenizer.json ids differ from transformers' AutoTokenizer");
    let (hf_hidden_err, hf_pooled_err) = (max_err_tokens(&hidden, &hf.hidden, &mask), max_err(&pooled, &hf.pooled));
    eprintln!("MiniLM-L6 vs transformers: hidden max |err| {hf_hidden_err:.3e}, pooled max |err| {hf_pooled_err:.3e}");
    assert!(hf_hidden_err <= TOLERANCE, "last-layer hidden states differ from transformers by {hf_hidden_err}");
    assert!(hf_pooled_err <= TOLERANCE, "mean-pooled embeddings differ from transformers by {hf_pooled_err}");

    // Padding does not leak: each sentence alone gives the same embedding as in the batch.
    let (solo_ids, solo_mask) = batch(&ids[4..5]);
    let solo = tch::no_grad(|| pool(&encoder.forward_t(&solo_ids, &solo_mask, false).unwrap(), &solo_mask, Pooling::Mean)).unwrap();
    assert!(max_err(&solo, &pooled.narrow(0, 4, 1)) <= TOLERANCE);

    // Sentence similarity behaves: related sentences are close, unrelated ones orthogonal.
    // DATA.md quotes 0.667 and -0.054 from a numpy pass; both implementations here give
    // 0.6515 and -0.0839 for its exact sentences (0.667 is what "A man is playing a
    // guitar." with a full stop gives), so these bounds are a sanity check and the
    // reference above is the oracle, as DATA.md itself advises.
    let (guitar, instrument, market) = (pooled.get(0), pooled.get(1), pooled.get(2));
    let (c1, c2) = (cosine(&guitar, &instrument), cosine(&guitar, &market));
    eprintln!("cos(guitar, instrument) = {c1:.4}, cos(guitar, stock market) = {c2:.4}");
    assert!((c1 - 0.6515).abs() <= 0.01 && (c1 - 0.667).abs() <= 0.02, "{c1}");
    assert!((c2 + 0.0839).abs() <= 0.01 && c2.abs() <= 0.1, "{c2}");
}

#[test]
fn fine_tuned_classifier_exports_and_reloads_identically() {
    let dir = minilm_dir();
    let (ids, input_ids, mask) = encode(&dir);
    let labels: Vec<String> = ["negative", "neutral", "positive"].map(String::from).to_vec();

    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let model = TransformerClassifier::from_pretrained(&vs.root(), &dir, 3, Pooling::Mean).unwrap();
    // Stand in for fine-tuning: move every weight a little, so the export must carry the
    // model's current weights rather than the original file's.
    tch::no_grad(|| {
        for (_, mut t) in vs.variables() {
            let _ = t.g_add_(&(t.randn_like() * 0.01));
        }
    });
    let (logits, hidden) = tch::no_grad(|| (model.forward_t(&input_ids, &mask, false).unwrap(), model.encoder().forward_t(&input_ids, &mask, false).unwrap()));

    let out = tempfile::tempdir().unwrap();
    model.save_pretrained(out.path(), &labels, &dir.join("tokenizer.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["2"], "positive");
    assert_eq!(config["label2id"]["neutral"], 1);
    assert_eq!(config["hidden_size"], 384);
    assert_eq!(config["whetstone_pooling"], "mean");
    assert!(out.path().join("tokenizer.json").is_file());

    // Whetstone reads its own export back bit for bit.
    let ckpt = BertCheckpoint::open(out.path()).unwrap();
    assert_eq!(ckpt.config().labels().unwrap(), labels);
    let vs2 = VarStore::new(Device::Cpu);
    let reloaded = ckpt.load_classifier(&vs2.root(), 3, Pooling::Mean).unwrap();
    let logits2 = tch::no_grad(|| reloaded.forward_t(&input_ids, &mask, false)).unwrap();
    assert!(logits.equal(&logits2), "reloaded logits differ by {}", max_err(&logits, &logits2));

    // So does the independent reference, from the exported folder alone.
    let r = reference(out.path(), &ids, &[]);
    let hidden_err = max_err_tokens(&hidden, &r.hidden, &mask);
    let logits_err = max_err(&logits, r.logits.as_ref().expect("reference found classifier.* in the export"));
    eprintln!("exported classifier vs reference: hidden max |err| {hidden_err:.3e}, logits max |err| {logits_err:.3e}");
    assert!(hidden_err <= TOLERANCE, "{hidden_err}");
    assert!(logits_err <= TOLERANCE, "{logits_err}");

    // And transformers loads the export as a BertModel: same states, and the same logits
    // through the exported classifier.* weights and whetstone's pooling.
    let hf = transformers_reference(out.path(), &ids, &[]);
    let (hf_hidden_err, hf_logits_err) = (max_err_tokens(&hidden, &hf.hidden, &mask), max_err(&logits, hf.logits.as_ref().expect("classifier.* in the export")));
    eprintln!("exported classifier vs transformers: hidden max |err| {hf_hidden_err:.3e}, logits max |err| {hf_logits_err:.3e}");
    assert!(hf_hidden_err <= TOLERANCE, "{hf_hidden_err}");
    assert!(hf_logits_err <= TOLERANCE, "{hf_logits_err}");

    // The exported encoder alone is a plain BertModel folder.
    let enc_dir = out.path().join("encoder");
    model.encoder().save_pretrained(&enc_dir, &dir.join("tokenizer.json")).unwrap();
    let vs3 = VarStore::new(Device::Cpu);
    let encoder = BertCheckpoint::open(&enc_dir).unwrap().load_encoder(&vs3.root()).unwrap();
    let hidden3 = tch::no_grad(|| encoder.forward_t(&input_ids, &mask, false)).unwrap();
    assert!(hidden.equal(&hidden3));
}
