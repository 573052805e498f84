//! The masked-LM strategy in the loop: [`MlmObjective`] trains a Transformer encoder and its
//! tied head through `Trainer`, validates by masked-LM loss and perplexity, and refuses a
//! model that is not a Transformer. (The `whetstone pretrain` pipeline around it is tested in
//! whetstone-run.)

use tch::{nn::VarStore, Device};
use whetstone_data::{chunk_documents, BucketedSource, Masker, MaskingConfig, TextTokenizer};
use whetstone_models::{MlmHead, ModelConfig, Pooling, TextCnnConfig, TransformerClassifier, TransformerClassifierConfig, TransformerConfig, TransformerEncoder};
use whetstone_optim::OptimConfig;
use whetstone_train::{EvalContext, MlmObjective, MlmScore, Objective, Outcome, Silent, TrainConfig, Trainer};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Documents with learnable structure: each pairs a subject with its own verb and object.
fn documents(n: usize) -> Vec<String> {
    let subjects = ["the cat", "a dog", "my neighbour", "the old sailor", "every child", "the quiet teacher"];
    let verbs = ["chases", "feeds", "paints", "remembers", "admires", "follows"];
    let objects = ["the red ball", "a small bird", "the harbour lights", "an empty room", "the winter sky", "a paper boat"];
    (0..n).map(|i| (i % 6, (i / 6) % 6)).map(|(k, m)| format!("{} {} {} and then {} {} {}.", subjects[k], verbs[k], objects[k], subjects[m], verbs[m], objects[m])).collect()
}

fn encoder_config() -> TransformerClassifierConfig {
    TransformerClassifierConfig { encoder: TransformerConfig { layers: 1, hidden: 32, heads: 2, ffn: 64, max_len: 32, ..Default::default() }, pooling: Pooling::Mean, pretrained: None }
}

#[test]
fn the_mlm_objective_trains_an_encoder_and_validates_by_perplexity() {
    let _g = serial();
    let docs = documents(300);
    let tok = TextTokenizer::train_wordpiece(&docs, 200, 1, true).unwrap();
    let valid = chunk_documents(&tok, &docs[..30], 32, 4).unwrap();
    let train = chunk_documents(&tok, &docs[30..], 32, 4).unwrap();
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    // A bare encoder: no classification head is built, trained or saved.
    let model = TransformerEncoder::new(&vs.root(), tok.vocab_size() as i64, &encoder_config().encoder).unwrap();
    let head = MlmHead::new(&(vs.root() / "cls" / "predictions"), &model);
    assert!(!vs.variables().keys().any(|n| n.starts_with("classifier")));
    let objective = MlmObjective { head, masker: Masker::new(&tok, MaskingConfig::default(), Device::Cpu).unwrap(), eval_seed: 9 };
    let before = objective.score(&model, &valid, 64, Device::Cpu).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let optim = OptimConfig { lr: 3e-3, weight_decay: 0.0, ..Default::default() }.build(&vs).unwrap();
    let config = TrainConfig { epochs: 3, batch_size: 32, bucket_factor: 2, ..Default::default() };
    let source = BucketedSource::new(&train, config.batch_size, config.bucket_factor);
    let mut trainer = Trainer::new(&model, &vs, optim, 3e-3, dir.path()).objective(objective).config(config).seed(3).observer(Silent);
    let fit = trainer.fit(&source, &valid, false).unwrap();
    assert_eq!(fit.outcome, Outcome::Finished);
    let mut objective = trainer.into_objective();

    let cx = EvalContext { model: &model, vs: &vs, device: Device::Cpu, batch_size: 64, metric: "perplexity", label_names: &[] };
    let v = objective.validate(&cx, &valid).unwrap();
    let after = MlmScore::from_record(&v.record);
    assert!(after.loss < 0.9 * before.loss, "validation MLM loss did not fall: {} -> {}", before.loss, after.loss);
    assert!((after.perplexity - after.loss.exp()).abs() < 1e-9 && after.tokens == before.tokens && after.tokens > 0);
    assert_eq!(v.metric, -after.loss, "higher is better: the metric is the negated loss");
    // Validation masks are fixed by `eval_seed`: two calls on the same weights agree exactly.
    assert_eq!(objective.validate(&cx, &valid).unwrap().record, v.record);
}

#[test]
fn the_mlm_objective_needs_a_transformer() {
    let _g = serial();
    let docs = documents(40);
    let tok = TextTokenizer::train_wordpiece(&docs, 200, 1, true).unwrap();
    let train = chunk_documents(&tok, &docs, 32, 4).unwrap();
    let head_vs = VarStore::new(Device::Cpu);
    let encoder = TransformerClassifier::new(&head_vs.root(), tok.vocab_size() as i64, 2, &encoder_config()).unwrap();
    let objective = MlmObjective { head: MlmHead::new(&(head_vs.root() / "cls"), encoder.encoder()), masker: Masker::new(&tok, MaskingConfig::default(), Device::Cpu).unwrap(), eval_seed: 0 };

    let vs = VarStore::new(Device::Cpu);
    let cnn = ModelConfig::Textcnn(TextCnnConfig { embed_dim: 8, channels: 2, ..Default::default() }).build(&vs.root(), tok.vocab_size() as i64, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let optim = OptimConfig::default().build(&vs).unwrap();
    let mut trainer = Trainer::new(cnn.as_ref(), &vs, optim, 1e-3, dir.path()).objective(objective).config(TrainConfig { epochs: 1, batch_size: 8, ..Default::default() }).observer(Silent);
    let e = trainer.fit(&BucketedSource::new(&train, 8, 1), &train, false).unwrap_err().to_string();
    assert!(e.contains("Transformer encoder") && e.contains("textcnn"), "{e}");
}
