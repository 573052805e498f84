//! The compression config: its defaults are the settings the pipeline used to hard-code, every
//! optimiser and schedule is reachable, and bad settings name their key; TinyBERT's
//! neighbour transfer set distils from a tiny teacher fine-tuned from a pretrained checkpoint.

use tch::{nn, nn::VarStore, Device, Kind, Tensor};
use whetstone_run::compress::{build_optimizer, default_optim, distill, CompressConfig, Source};
use whetstone_run::RunFolder;
use whetstone_optim::{AdamWConfig, Algorithm, OptimConfig, Schedule, NO_DECAY};
use whetstone_train::TrainConfig;

/// libtorch's random generator is global to the process: tests that seed it run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse(overrides: &[&str]) -> whetstone_compress::Result<CompressConfig> {
    CompressConfig::parse("test", "", &overrides.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

fn error(overrides: &[&str]) -> String {
    parse(overrides).unwrap_err().to_string()
}

#[path = "../../whetstone-train/tests/common/tiny_bert.rs"]
mod tiny_bert;

#[test]
fn defaults_are_the_settings_the_pipeline_used_to_hard_code() {
    let c = parse(&[]).unwrap();
    assert_eq!(c, CompressConfig::default());
    // AdamW (default betas), weight decay 0.01 except biases and LayerNorms, per-tensor buffers.
    assert_eq!(c.optim.algorithm, Algorithm::Adamw(AdamWConfig::default()));
    assert_eq!((c.optim.weight_decay, c.optim.flat, c.optim.layer_decay, c.optim.lookahead.is_none()), (0.01, false, None, true));
    assert_eq!(c.optim.no_decay, NO_DECAY.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    // 10% warm-up, then linear decay.
    assert_eq!(c.schedule, Schedule::WarmupLinear { warmup_steps: None, warmup_ratio: 0.1 });
    // Batches of 32, the loss logged every 50 steps, the loop's defaults otherwise.
    assert_eq!(c.train.for_phase(3, None), TrainConfig { epochs: 3, batch_size: 32, log_every: 50, ..Default::default() });
    assert_eq!(c.distill.batch_size, None);
    assert_eq!(c.train.for_phase(3, Some(64)).batch_size, 64);
    // A partial [optim] keeps the compression defaults of what it leaves out.
    let c = parse(&["optim.weight_decay=0.0"]).unwrap();
    assert_eq!(c.optim, OptimConfig { weight_decay: 0.0, ..default_optim() });
    // The phase's learning rate replaces the (unused) optim.lr.
    assert_eq!(c.optim_at(3e-5).lr, 3e-5);
    // Settings survive a round trip through TOML (they are written into compression.json),
    // without the unused optim.lr.
    let c = parse(&["optim.kind=\"lion\"", "schedule.kind=\"cosine\"", "train.grad_accum=2", "distill.batch_size=8"]).unwrap();
    let text = toml::to_string(&c).unwrap();
    assert!(!text.contains("lr = 0.001"), "{text}");
    assert_eq!(CompressConfig::parse("again", &text, &[]).unwrap(), c);
}

#[test]
fn every_optimiser_and_schedule_is_reachable() {
    let _g = serial();
    let kinds = ["sgd", "adam", "adamw", "nadam", "radam", "adagrad", "rmsprop", "adamax", "adabelief", "lion", "lamb", "adafactor", "schedulefree-adamw", "adaptive"];
    for kind in kinds {
        let c = parse(&[&format!("optim.kind=\"{kind}\"")]).unwrap();
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "dense", 4, 2, Default::default());
        let before = lin.ws.copy();
        let mut opt = c.optimizer(1e-2, &[&vs]).unwrap();
        opt.zero_grad();
        Tensor::ones([3, 4], (Kind::Float, Device::Cpu)).linear(&lin.ws, lin.bs.as_ref()).square().sum(Kind::Float).backward();
        opt.step(1e-2).unwrap();
        assert!(!lin.ws.equal(&before), "{kind} did not update");
    }
    for schedule in ["[schedule]\nkind = \"cosine\"", "[schedule]\nkind = \"constant\"", "[schedule]\nkind = \"warmup\"\nwarmup_ratio = 0.1\nthen = { kind = \"reduce-on-plateau\", mode = \"max\" }"] {
        CompressConfig::parse("test", schedule, &[]).unwrap();
    }
}

#[test]
fn bad_settings_name_their_key() {
    let e = error(&["optim.lr=1e-3"]);
    assert!(e.contains("optim.lr") && e.contains("distill.lr"), "{e}");
    let e = error(&["train.epochs=3"]);
    assert!(e.contains("train.epochs") && e.contains("recovery.epochs"), "{e}");
    for (set, key) in [
        ("train.batch_size=0", "train.batch_size"),
        ("train.grad_accum=0", "train.grad_accum"),
        ("train.metric=\"f2\"", "train.metric"),
        ("train.clip_norm=-1.0", "train.clip_norm"),
        ("train.bach_size=16", "train.bach_size"),
        ("optim.weight_decay=-1.0", "optim.weight_decay"),
        ("optim.betas_=[0.9, 0.9]", "optim.betas_"),
        ("optim.kind=\"adamx\"", "optim"),
        ("distill.batch_size=0", "distill.batch_size"),
        ("distill.loss.tempreature=3.0", "distill.loss.tempreature"),
        ("recovery.epochs=0", "recovery.epochs"),
        ("schedule.kind=\"cosine\"", ""),
    ] {
        if key.is_empty() {
            assert!(parse(&[set]).is_ok(), "{set}");
            continue;
        }
        let e = error(&[set]);
        assert!(e.contains(key), "{set}: {e}");
    }
    let e = CompressConfig::parse("test", "[schedule]\nkind = \"reduce-on-plateau\"", &[]).unwrap_err().to_string();
    assert!(e.contains("schedule") && e.contains("max"), "{e}");
    assert!(parse(&["recovery.epochs=0", "recovery.mode=\"none\""]).is_ok());
}

#[test]
fn one_optimiser_over_several_stores() {
    let _g = serial();
    tch::manual_seed(2);
    let (a, b) = (VarStore::new(Device::Cpu), VarStore::new(Device::Cpu));
    let la = nn::linear(a.root() / "student", 4, 3, Default::default());
    let lb = nn::linear(b.root() / "projection", 3, 5, Default::default());
    let mut opt = build_optimizer(&OptimConfig { lr: 1e-2, ..default_optim() }, &[&a, &b]).unwrap();
    assert_eq!(opt.params().len(), 4);
    let (wa, wb) = (la.ws.copy(), lb.ws.copy());
    opt.zero_grad();
    Tensor::ones([2, 4], (Kind::Float, Device::Cpu)).linear(&la.ws, la.bs.as_ref()).linear(&lb.ws, lb.bs.as_ref()).sum(Kind::Float).backward();
    opt.step(1e-2).unwrap();
    assert!(!la.ws.equal(&wa) && !lb.ws.equal(&wb), "both stores train");
    let state = opt.state();
    for n in ["student.weight", "projection.weight"] {
        assert!(state.tensors.iter().any(|(t, _)| t.starts_with(n)), "no state for {n}");
    }
    let mut again = build_optimizer(&OptimConfig { lr: 1e-2, ..default_optim() }, &[&a, &b]).unwrap();
    again.load_state(&state).unwrap();
    // The same name in two stores is refused.
    let c = VarStore::new(Device::Cpu);
    let _lc = nn::linear(c.root() / "student", 4, 3, Default::default());
    let e = build_optimizer(&default_optim(), &[&a, &c]).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("student.weight") || e.contains("student.bias"), "{e}");
    // An empty store (no projections) is left out.
    let empty = VarStore::new(Device::Cpu);
    assert_eq!(build_optimizer(&default_optim(), &[&a, &empty]).unwrap().params().len(), 2);
}

#[test]
fn distillation_takes_an_adversarial_section_around_logit_distillation_only() {
    use whetstone_train::adversarial::{AdversarialConfig, PgdConfig};
    let c = parse(&["distill.adversarial.method=\"pgd\"", "distill.adversarial.steps=2"]).unwrap();
    assert_eq!(c.distill.adversarial, Some(AdversarialConfig::Pgd(PgdConfig { steps: 2, ..Default::default() })));
    // Written into compression.json and read back.
    assert_eq!(CompressConfig::parse("again", &toml::to_string(&c).unwrap(), &[]).unwrap(), c);
    assert_eq!(parse(&[]).unwrap().distill.adversarial, None);
    let e = error(&["distill.adversarial.method=\"fgm\"", "distill.adversarial.epsilon=0.0"]);
    assert!(e.contains("adversarial.epsilon") && e.contains("fgm"), "{e}");
    let e = error(&["distill.adversarial.method=\"fgm\"", "distill.loss.hidden=1.0"]);
    assert!(e.contains("distill.adversarial") && e.contains("logit distillation only"), "{e}");
}

#[path = "common/teacher.rs"]
mod teacher;
use teacher::{tiny_teacher, write_reviews};

#[test]
fn neighbour_transfer_rewrites_the_teachers_training_texts_with_its_checkpoints_neighbours() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    tiny_bert::tiny_checkpoint(&ckpt);
    let csv = tmp.path().join("reviews.csv");
    let corpus = tiny_bert::corpus(80);
    write_reviews(&csv, &corpus);
    let teacher = tiny_teacher(&tmp.path().join("teacher"), &csv, Some(&ckpt), 120);
    let limit = 20;
    assert!(Source::open(&teacher, Some("cpu")).unwrap().train.len() > limit);
    let fast = ["threads=1", "latency_iters=2", "throughput_iters=1", "distill.student=\"1x16x2x32\"", "distill.epochs=1", "distill.transfer=\"neighbour\"", "distill.transfer_copies=2"];
    let config = parse(&[&fast[..], &["train_limit=20"]].concat()).unwrap();
    let out = tmp.path().join("student");
    let finished = distill(&teacher, &config, &RunFolder::At(out.clone()), true).unwrap();
    let notes = finished.provenance.notes.join("\n");
    assert!(notes.contains(&format!("transfer set: {} neighbour sentences (2 copies of each of {limit} training texts", 2 * limit)), "{notes}");
    assert!(notes.contains("augmented in"), "{notes}");
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(metrics.contains(&format!("transfer set: {} neighbour sentences", 2 * limit)), "{metrics}");
    assert!(metrics.contains(&format!("on {} examples", 3 * limit)), "{metrics}");

    // The builder alone: deterministic, each text's copies differ from it somewhere, capped.
    let texts: Vec<String> = corpus.texts[..10].to_vec();
    let a = whetstone_run::compress::neighbour_transfer(&texts, &ckpt, 3, 1000, 7).unwrap();
    assert_eq!(a.len(), 30);
    assert_eq!(a, whetstone_run::compress::neighbour_transfer(&texts, &ckpt, 3, 1000, 7).unwrap());
    assert!(a.iter().any(|t| !texts.contains(t)), "{a:?}");
    assert_eq!(whetstone_run::compress::neighbour_transfer(&texts, &ckpt, 3, 12, 7).unwrap().len(), 12);

    // A teacher trained from scratch has no embeddings to take neighbours from: no folder.
    let scratch = tiny_teacher(&tmp.path().join("scratch"), &csv, None, 120);
    let out = tmp.path().join("no-student");
    let e = distill(&scratch, &parse(&fast).unwrap(), &RunFolder::At(out.clone()), true).unwrap_err().to_string();
    assert!(e.contains("neighbour") && e.contains("pretrained"), "{e}");
    assert!(!out.exists());

    // Bad settings fail before anything is read, naming the key (and the choices).
    let e = error(&["distill.transfer=\"neighbour\"", "distill.transfer_copies=0"]);
    assert!(e.contains("distill.transfer_copies"), "{e}");
    let e = error(&["distill.transfer=\"neighbor\""]);
    assert!(e.contains("neighbor") && e.contains("`neighbour`") && e.contains("imdb"), "{e}");
    assert_eq!(parse(&[]).unwrap().distill.transfer_copies, 20);
}
