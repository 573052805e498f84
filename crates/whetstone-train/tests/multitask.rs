//! Multi-task learning: the weightings against hand computations on a tiny model, and
//! multi-task training through the one Trainer, with kill and resume.

use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_data::conll::{TokenEncoded, IGNORE_INDEX as X};
use whetstone_data::{make_batch, BatchSource, Batch, Encoded, MultiTaskSource, Sampling, TaskData};
use whetstone_data::conll::make_token_batch;
use whetstone_models::{HeadKind, ModelConfig, MultiHead, MultiTaskModel, Pooling, TaskHead, TextCnnConfig, TransformerConfig};
use whetstone_optim::OptimConfig;
use whetstone_train::multitask::{gradnorm_update, pcgrad_project, task_loss, MultiTaskObjective, Select, TaskEval, TaskSpec, Weighting};
use whetstone_train::{Objective, Outcome, Silent, StepContext, TrainConfig, Trainer};

fn encoder() -> TransformerConfig {
    TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 16, dropout: 0.0, attention_dropout: 0.0, ..Default::default() }
}

/// Task "a": the label is whether id 7 occurs; task "b": token tags, 1 on ids >= 10.
fn seq_data(n: usize, salt: i64) -> Encoded {
    let ids: Vec<Vec<i64>> = (0..n as i64).map(|i| vec![2, 5 + (i * 3 + salt) % 6, 5 + (i + salt) % 4, 3]).collect();
    let labels = ids.iter().map(|s| s.contains(&7) as i64).collect();
    Encoded { ids, labels, pad_id: 0 }
}

fn tok_data(n: usize, salt: i64) -> TokenEncoded {
    let ids: Vec<Vec<i64>> = (0..n as i64).map(|i| vec![2, 8 + (i + salt) % 5, 9 + (i * 2 + salt) % 5, 3]).collect();
    let labels = ids.iter().map(|s| s.iter().enumerate().map(|(p, &id)| if p == 0 || p == s.len() - 1 { X } else if id >= 10 { 1 } else { 2 }).collect()).collect();
    TokenEncoded { ids, labels, pad_id: 0 }
}

fn heads() -> Vec<TaskHead> {
    vec![TaskHead::new("a", HeadKind::Sequence, 2), TaskHead::new("b", HeadKind::Token, 3)]
}

fn specs() -> Vec<TaskSpec> {
    vec![
        TaskSpec { name: "a".into(), kind: HeadKind::Sequence, weight: 1.0, metric: "accuracy".into(), valid: TaskEval::Sequence { data: seq_data(12, 1), labels: vec!["no".into(), "yes".into()] } },
        TaskSpec { name: "b".into(), kind: HeadKind::Token, weight: 0.5, metric: "entity_f1".into(), valid: TaskEval::Token { data: tok_data(10, 2), tags: vec!["B-X".into(), "I-X".into(), "O".into()] } },
    ]
}

/// libtorch's random stream is global: tests that seed it run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn model(vs: &VarStore, seed: i64) -> MultiTaskModel {
    tch::manual_seed(seed);
    MultiTaskModel::new(&vs.root(), 20, &encoder(), Pooling::Mean, &heads()).unwrap()
}

fn batches() -> (Batch, Batch) {
    let mut a = make_batch(&seq_data(6, 0), &[0, 1, 2, 3, 4, 5], Device::Cpu).unwrap();
    a.stream = 0;
    let mut b = make_token_batch(&tok_data(5, 0), &[0, 1, 2, 3, 4], Device::Cpu).unwrap();
    b.stream = 1;
    (a, b)
}

fn raw_loss(m: &MultiTaskModel, task: usize, b: &Batch) -> Tensor {
    let kind = m.tasks()[task].kind;
    task_loss(kind, &m.forward_task(task, &b.input_ids, &b.attention_mask, true).unwrap(), &b.labels).unwrap()
}

fn zero_grads(vs: &VarStore) {
    for p in vs.trainable_variables() {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

#[test]
fn uncertainty_weights_follow_their_gradient() {
    let _g = serial();
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs, 1);
    let lr = 0.1;
    let mut obj = MultiTaskObjective::new(specs(), Weighting::Uncertainty { lr }, Select::Mean).unwrap();
    let s0 = [0.3f64, -0.2];
    tch::no_grad(|| obj.log_var().unwrap().shallow_clone().copy_(&Tensor::from_slice(&s0)));
    let (a, b) = batches();
    let l = [tch::no_grad(|| raw_loss(&m, 0, &a)).double_value(&[]), tch::no_grad(|| raw_loss(&m, 1, &b)).double_value(&[])];
    let mut cx = StepContext::new(&m, &vs, 0, 0, Device::Cpu, 7);
    let r0 = obj.backward(&mut cx, &a, 0.5).unwrap();
    obj.backward(&mut cx, &b, 0.5).unwrap();
    // The reported loss is exp(-s)·L + s; the per-task term is L.
    assert!((r0.value - ((-s0[0]).exp() * l[0] + s0[0])).abs() < 1e-6, "{} vs {}", r0.value, l[0]);
    assert!((r0.terms[0].1 - l[0]).abs() < 1e-7);
    obj.after_update(&mut cx).unwrap();
    // One SGD step: s_i ← s_i − lr · 0.5 · (1 − exp(−s_i) L_i).
    let s1 = Vec::<f64>::try_from(obj.log_var().unwrap().detach()).unwrap();
    for i in 0..2 {
        let want = s0[i] - lr * 0.5 * (1.0 - (-s0[i]).exp() * l[i]);
        assert!((s1[i] - want).abs() < 1e-6, "s_{i}: {} vs {want}", s1[i]);
    }
    // The weights are exp(-s), and the state carries s.
    let w = obj.task_weights().unwrap();
    assert!((w[0] - (-s1[0]).exp()).abs() < 1e-12);
    let st = obj.state().unwrap();
    assert!(st.tensor("log_var").unwrap().equal(obj.log_var().unwrap()));
}

/// Each task's gradient of the shared parameters, flattened, for `scale × L_task`.
fn task_grad(m: &MultiTaskModel, task: usize, b: &Batch, scale: f64) -> Tensor {
    let shared: Vec<Tensor> = m.shared_parameters().into_iter().map(|(_, t)| t).collect();
    let l = raw_loss(m, task, b).f_mul_scalar(scale).unwrap();
    let g = Tensor::run_backward(&[l], &shared, false, false);
    Tensor::cat(&g.iter().map(|t| t.flatten(0, -1)).collect::<Vec<_>>(), 0)
}

#[test]
fn pcgrad_removes_the_conflicting_component() {
    let _g = serial();
    // By hand: g1 = (1, 0), g2 = (−1, 1) conflict (g1·g2 = −1). g1' = g1 − (−1/2) g2 = (½, ½),
    // g1'·g2 = 0; g2' = g2 − (−1/1) g1 = (0, 1), g2'·g1 = 0. The sum is (½, 3/2).
    let g1 = Tensor::from_slice(&[1.0f64, 0.0]);
    let g2 = Tensor::from_slice(&[-1.0f64, 1.0]);
    let g = pcgrad_project(&[g1.shallow_clone(), g2.shallow_clone()], &[vec![1], vec![0]]).unwrap();
    assert_eq!(Vec::<f64>::try_from(&g).unwrap(), [0.5, 1.5]);
    let only1 = pcgrad_project(&[g1.shallow_clone(), g2.shallow_clone()], &[vec![1], vec![]]).unwrap().f_sub(&g2).unwrap();
    // The projected g1 no longer conflicts with g2: orthogonal to it.
    assert!(only1.dot(&g2).double_value(&[]).abs() < 1e-12, "{}", only1.dot(&g2).double_value(&[]));
    // Gradients that agree are summed untouched.
    let g3 = Tensor::from_slice(&[1.0f64, 1.0]);
    assert_eq!(Vec::<f64>::try_from(&pcgrad_project(&[g1.shallow_clone(), g3], &[vec![1], vec![0]]).unwrap()).unwrap(), [2.0, 1.0]);

    // On a tiny model: the shared gradients after before_update are the projected sum of the
    // tasks' separate gradients; the heads keep their own.
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs, 2);
    let (a, b) = batches();
    let ga = task_grad(&m, 0, &a, 0.5);
    let gb = task_grad(&m, 1, &b, 0.5);
    let dot = ga.dot(&gb).double_value(&[]);
    let want = pcgrad_project(&[ga.shallow_clone(), gb.shallow_clone()], &[vec![1], vec![0]]).unwrap();
    let mut obj = MultiTaskObjective::new(specs(), Weighting::PcGrad, Select::Mean).unwrap();
    zero_grads(&vs);
    let mut cx = StepContext::new(&m, &vs, 0, 0, Device::Cpu, 7);
    obj.backward(&mut cx, &a, 0.5).unwrap();
    obj.backward(&mut cx, &b, 0.5).unwrap();
    obj.before_update(&mut cx).unwrap();
    let shared: Vec<Tensor> = m.shared_parameters().into_iter().map(|(_, t)| t.grad().flatten(0, -1)).collect();
    let got = Tensor::cat(&shared, 0);
    let err = (&got - &want).abs().max().double_value(&[]);
    assert!(err < 1e-6, "max difference {err}");
    if dot < 0.0 {
        // The conflict was removed: each projected gradient no longer opposes the other task.
        let pa = &ga - gb.f_mul_scalar(dot / gb.dot(&gb).double_value(&[])).unwrap();
        assert!(pa.dot(&gb).double_value(&[]).abs() < 1e-6);
    } else {
        assert!((&got - (&ga + &gb)).abs().max().double_value(&[]) < 1e-6, "no conflict: a plain sum");
    }
    let head = vs.variables()["heads.b.classifier.weight"].grad();
    let lb = raw_loss(&m, 1, &b).f_mul_scalar(0.5).unwrap();
    let want_head = Tensor::run_backward(&[lb], &[vs.variables()["heads.b.classifier.weight"].shallow_clone()], false, false);
    assert!((&head - &want_head[0]).abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn gradnorm_updates_its_weights_from_the_last_shared_layers_gradient_norms() {
    let _g = serial();
    // By hand with α = 0 (equalise the norms): G = (3, 1), Ḡ = 2: task 0 is above its target
    // (w_0 = 1 − 0.1·3 = 0.7), task 1 below (w_1 = 1 + 0.1·1 = 1.1); renormalised to sum 2.
    let w = gradnorm_update(&[1.0, 1.0], &[true, true], &[3.0, 1.0], &[1.0, 1.0], &[1.0, 1.0], 0.0, 0.1);
    assert!((w[0] - 0.7 / 0.9).abs() < 1e-12 && (w[1] - 1.1 / 0.9).abs() < 1e-12, "{w:?}");
    // A task missing from the step keeps its weight (before renormalisation).
    let w = gradnorm_update(&[0.5, 1.5], &[true, false], &[3.0, 0.0], &[1.0, 0.0], &[1.0, 1.0], 1.0, 0.1);
    assert_eq!(w, vec![0.5, 1.5]);

    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs, 3);
    let (a, b) = batches();
    let last: Vec<Tensor> = m.last_shared_parameters().into_iter().map(|(_, t)| t).collect();
    let norm = |task: usize, batch: &Batch| {
        let g = Tensor::run_backward(&[raw_loss(&m, task, batch)], &last, false, false);
        g.iter().map(|t| t.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt()
    };
    let norms = [norm(0, &a), norm(1, &b)];
    let losses = [tch::no_grad(|| raw_loss(&m, 0, &a)).double_value(&[]), tch::no_grad(|| raw_loss(&m, 1, &b)).double_value(&[])];
    let mut obj = MultiTaskObjective::new(specs(), Weighting::GradNorm { alpha: 1.5, lr: 0.05 }, Select::Mean).unwrap();
    zero_grads(&vs);
    let mut cx = StepContext::new(&m, &vs, 0, 0, Device::Cpu, 7);
    obj.backward(&mut cx, &a, 0.5).unwrap();
    obj.backward(&mut cx, &b, 0.5).unwrap();
    obj.after_update(&mut cx).unwrap();
    // First step: L(0) = L, so r = 1 and the targets are Ḡ.
    let want = gradnorm_update(&[1.0, 1.0], &[true, true], &norms, &losses, &losses, 1.5, 0.05);
    let got = obj.task_weights().unwrap();
    for i in 0..2 {
        assert!((got[i] - want[i]).abs() < 1e-5, "w_{i}: {} vs {}", got[i], want[i]);
    }
    assert!((got.iter().sum::<f64>() - 2.0).abs() < 1e-12);
    assert!(got[0] != 1.0);
}

fn source(sampling: Sampling) -> MultiTaskSource {
    MultiTaskSource::new(vec![TaskData::Sequence(seq_data(24, 0)), TaskData::Token(tok_data(16, 0))], 4, 2, sampling).unwrap()
}

fn train(weighting: Weighting, dir: &std::path::Path, stop_after: u64, resume: bool) -> (Vec<(String, Tensor)>, Outcome, Vec<f64>) {
    let vs = VarStore::new(Device::Cpu);
    let m = model(&vs, 4);
    let optim = OptimConfig::default().build(&vs).unwrap();
    let cfg = TrainConfig { epochs: 3, batch_size: 4, grad_accum: 2, bucket_factor: 2, log_every: 1, ..Default::default() };
    let obj = MultiTaskObjective::new(specs(), weighting, Select::Task(0)).unwrap();
    let valid = seq_data(12, 1);
    let mut t = Trainer::new(&m, &vs, optim, 3e-3, dir).objective(obj).config(cfg).seed(5).observer(Silent).stop_after(stop_after);
    let fit = t.fit(&source(Sampling::RoundRobin), &valid, resume).unwrap();
    let state = t.get_objective().state().unwrap();
    let extra: Vec<f64> = match state.tensors.first() {
        Some((_, t)) => Vec::<f64>::try_from(t.detach()).unwrap(),
        None => state.values.get("weights").map(|v| serde_json::from_value(v.clone()).unwrap()).unwrap_or_default(),
    };
    drop(t);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    (vars, fit.outcome, extra)
}

#[test]
fn multi_task_training_runs_in_the_one_loop_and_resumes_bit_identically() {
    let _g = serial();
    for weighting in [Weighting::Fixed, Weighting::Uncertainty { lr: 0.05 }, Weighting::GradNorm { alpha: 1.0, lr: 0.02 }, Weighting::PcGrad] {
        let full = tempfile::tempdir().unwrap();
        let (a, outcome, sa) = train(weighting, full.path(), 0, false);
        assert_eq!(outcome, Outcome::Finished);
        let log = std::fs::read_to_string(full.path().join("metrics.jsonl")).unwrap();
        let valid: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).filter(|r: &serde_json::Value| r["split"] == "valid").collect();
        assert_eq!(valid.len(), 3, "{log}");
        for key in ["a_accuracy", "b_entity_f1", "a_loss", "b_loss", "mean", "score", "a_weight"] {
            assert!(valid[2].get(key).is_some(), "{:?}: no {key} in {}", weighting, valid[2]);
        }
        let train_rec = log.lines().find(|l| l.contains("\"split\":\"train\"")).unwrap();
        assert!(train_rec.contains("a_loss") && train_rec.contains("b_loss"), "{train_rec}");
        if !matches!(weighting, Weighting::Fixed | Weighting::PcGrad) {
            assert!(sa.iter().any(|&x| x != 0.0 && x != 1.0), "{weighting:?} did not move its weights: {sa:?}");
        }
        let killed = tempfile::tempdir().unwrap();
        let (_, o, _) = train(weighting, killed.path(), 7, false);
        assert_eq!(o, Outcome::Interrupted);
        let (b, o, sb) = train(weighting, killed.path(), 0, true);
        assert_eq!(o, Outcome::Finished);
        for ((n, x), (_, y)) in a.iter().zip(&b) {
            assert!(x.equal(y), "{weighting:?}: {n} differs after kill and resume");
        }
        assert_eq!(sa, sb, "{weighting:?}: strategy state differs after kill and resume");
    }
}

#[test]
fn clear_errors() {
    let _g = serial();
    let e = Weighting::parse("softmax", 1.0, 0.1).unwrap_err().to_string();
    assert!(e.contains("multitask.weighting") && e.contains("softmax"), "{e}");
    assert!(MultiTaskObjective::new(vec![], Weighting::Fixed, Select::Mean).unwrap_err().to_string().contains("[[tasks]]"));
    let mut bad = specs();
    bad[1].metric = "accuracy".into();
    assert!(MultiTaskObjective::new(bad, Weighting::Fixed, Select::Mean).unwrap_err().to_string().contains("task `b`: metric `accuracy`"));
    // A single-head model.
    let vs = VarStore::new(Device::Cpu);
    let cnn = ModelConfig::Textcnn(TextCnnConfig { embed_dim: 8, channels: 2, ..Default::default() }).build(&vs.root(), 20, 2).unwrap();
    let mut obj = MultiTaskObjective::new(specs(), Weighting::Fixed, Select::Mean).unwrap();
    let (a, _) = batches();
    let mut cx = StepContext::new(cnn.as_ref(), &vs, 0, 0, Device::Cpu, 1);
    let e = obj.backward(&mut cx, &a, 1.0).unwrap_err().to_string();
    assert!(e.contains("multi-task learning") && e.contains("textcnn"), "{e}");
    let _ = source(Sampling::Proportional).len();
}

