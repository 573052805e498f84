//! Regularisers: values against direct computation, gradients, the decorator forwarding every
//! part of the strategy it does not change, and errors that propagate.

mod common;

use common::*;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};
use whetstone_compress::*;
use whetstone_data::{Batch, Encoded};
use whetstone_train::{CrossEntropy, EvalContext, Objective, StepContext, StepLoss, StrategyState, Validation};

#[test]
fn l1_and_group_lasso_values_and_gradients() {
    let _g = serial();
    let (vs, model, _) = tiny(1);
    let selected = ParamSelector::default().select_vs(&vs).unwrap();
    let l1 = Regularizer::l1(&selected).penalty().unwrap().double_value(&[]);
    let want: f64 = selected.iter().map(|(_, t)| t.abs().sum(Kind::Double).double_value(&[])).sum();
    assert!((l1 - want).abs() / want < 1e-5);

    let named = model.named_parameters();
    let gl = Regularizer::group_lasso(&model, &named).unwrap();
    let value = gl.penalty().unwrap().double_value(&[]);
    // The same number from the magnitude importance: each unit's L2 norm, summed.
    let imp = magnitude_importance(&model, &named).unwrap();
    let want: f64 = imp.heads.iter().chain(&imp.neurons).flatten().sum();
    assert!((value - want).abs() / want < 1e-4, "{value} vs {want}");

    let b = batch(2, 4);
    let mut obj = RegularizedObjective::new(CrossEntropy::default(), gl, 0.01);
    let base = CrossEntropy::default().loss(&mut step_cx(&model, &vs, 0), &b).unwrap().double_value(&[]);
    let loss = obj.loss(&mut step_cx(&model, &vs, 0), &b).unwrap();
    assert!((loss.double_value(&[]) - base - 0.01 * value).abs() < 1e-4);
    loss.backward();
    let query = || vs.variables()["encoder.layer.0.attention.self.query.weight"].grad().copy();
    let from_loss = query();
    assert!(from_loss.defined());
    // The step's backward (inner backward, then the penalty's) gives the same gradient, and
    // logs the penalty as a term.
    for t in vs.variables().values() {
        let mut g = t.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    let step = obj.backward(&mut step_cx(&model, &vs, 0), &b, 1.0).unwrap();
    assert!((step.value - loss.double_value(&[])).abs() < 1e-5, "{} vs {}", step.value, loss.double_value(&[]));
    let penalty = step.terms.iter().find(|(n, _)| n == "penalty").unwrap().1;
    assert!((penalty - 0.01 * value).abs() < 1e-5);
    assert!(max_abs_diff(&query(), &from_loss) < 1e-6);
}

/// An inner strategy with its own backward, hooks, validation and state, to see that the
/// regulariser forwards them.
#[derive(Default)]
struct Custom {
    backwards: u64,
    updates: u64,
}

impl Objective for Custom {
    fn loss(&mut self, cx: &mut StepContext, batch: &Batch) -> whetstone_train::Result<Tensor> {
        CrossEntropy::default().loss(cx, batch)
    }
    fn backward(&mut self, cx: &mut StepContext, batch: &Batch, weight: f64) -> whetstone_train::Result<StepLoss> {
        self.backwards += 1;
        let l = whetstone_train::backward_weighted(&self.loss(cx, batch)?, weight)?;
        Ok(l.with_term("custom", 1.0))
    }
    fn before_update(&mut self, _cx: &mut StepContext) -> whetstone_train::Result<()> {
        self.updates += 10;
        Ok(())
    }
    fn after_update(&mut self, _cx: &mut StepContext) -> whetstone_train::Result<()> {
        self.updates += 1;
        Ok(())
    }
    fn validate(&mut self, _cx: &EvalContext, valid: &Encoded) -> whetstone_train::Result<Validation> {
        Ok(Validation { metric: valid.len() as f64, summary: "custom".into(), record: Default::default() })
    }
    fn state(&self) -> whetstone_train::Result<StrategyState> {
        Ok(StrategyState::default().with_value("backwards", self.backwards).with_value("updates", self.updates))
    }
    fn load_state(&mut self, s: &StrategyState) -> whetstone_train::Result<()> {
        self.backwards = s.value("backwards")?;
        self.updates = s.value("updates")?;
        Ok(())
    }
}

#[test]
fn the_regulariser_forwards_every_part_of_the_strategy_it_does_not_change() {
    let _g = serial();
    let (vs, model, _) = tiny(4);
    let reg = Regularizer::l1(&ParamSelector::default().select_vs(&vs).unwrap());
    let mut obj = RegularizedObjective::new(Custom::default(), reg, 1e-3);
    let b = batch(5, 4);
    let mut cx = step_cx(&model, &vs, 0);
    let step = obj.backward(&mut cx, &b, 0.5).unwrap();
    obj.before_update(&mut cx).unwrap();
    obj.after_update(&mut cx).unwrap();
    assert_eq!((obj.inner().backwards, obj.inner().updates), (1, 11));
    assert_eq!(step.terms.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["custom", "penalty"]);
    // Validation is the inner strategy's.
    let names = labels();
    let ecx = EvalContext { model: &model, vs: &vs, device: Device::Cpu, batch_size: 8, metric: "accuracy", label_names: &names };
    let v = obj.validate(&ecx, &split(6, 5)).unwrap();
    assert_eq!((v.metric, v.summary.as_str()), (5.0, "custom"));
    // State goes through unchanged, in both directions.
    let state = obj.state().unwrap();
    assert_eq!(state.value::<u64>("updates").unwrap(), 11);
    let mut fresh = RegularizedObjective::new(Custom::default(), Regularizer::l1(&ParamSelector::default().select_vs(&vs).unwrap()), 1e-3);
    fresh.load_state(&state).unwrap();
    assert_eq!((fresh.inner().backwards, fresh.inner().updates), (1, 11));
}

#[test]
fn a_penalty_that_fails_is_an_error_not_a_panic() {
    let _g = serial();
    let (vs, model, _) = tiny(7);
    // Units that do not fit the tensors: 3 heads of 5 cannot reshape a 16-wide projection.
    let units = whetstone_compress::LayerUnits {
        heads: 3,
        head_dim: 5,
        ffn: 32,
        qkv: ["q", "k", "v"].map(String::from),
        attention_out: "o".into(),
        ffn_in: "i".into(),
        ffn_out: "f".into(),
    };
    let w = Tensor::ones([16, 16], (Kind::Float, Device::Cpu));
    let ts: HashMap<String, Tensor> = ["q", "k", "v", "o", "i", "f"].iter().map(|n| (format!("{n}.weight"), w.shallow_clone())).collect();
    let mut obj = RegularizedObjective::new(CrossEntropy::default(), Regularizer::GroupLasso(vec![(units, ts)]), 0.1);
    let b = batch(8, 4);
    assert!(obj.loss(&mut step_cx(&model, &vs, 0), &b).is_err());
    let e = obj.backward(&mut step_cx(&model, &vs, 0), &b, 1.0).unwrap_err();
    assert!(matches!(e, whetstone_train::TrainError::Torch(_)), "{e}");
}

#[test]
fn sparsity_report_counts_pruned_weights_per_layer() {
    let _g = serial();
    let (vs, model, _) = tiny(3);
    let selected = ParamSelector::patterns(&["encoder.layer.1.*.weight"]).select_vs(&vs).unwrap();
    magnitude_masks(&selected, 0.5, Scope::PerLayer).unwrap().apply(&vs).unwrap();
    let weights: Vec<_> = model.named_parameters().into_iter().filter(|(_, t)| t.dim() == 2).collect(); // biases start at 0
    let r = SparsityReport::from_named(&weights);
    let layer0 = r.layers.iter().find(|l| l.name == "encoder.layer.0").unwrap();
    let layer1 = r.layers.iter().find(|l| l.name == "encoder.layer.1").unwrap();
    assert_eq!(layer0.zeros, 0);
    assert!((layer1.fraction() - 0.5).abs() < 1e-9, "{}", layer1.fraction());
    let md = r.to_markdown();
    assert!(md.contains("| encoder.layer.1 |") && md.contains("| total |"), "{md}");
}
