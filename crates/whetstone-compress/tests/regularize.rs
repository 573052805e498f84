//! Regularisers: values against direct computation, gradients, and training toward zero groups.

mod common;

use common::*;
use tch::Kind;
use whetstone_compress::*;
use whetstone_train::{CrossEntropy, Objective};

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
    let base = CrossEntropy::default().loss(&model, &b).double_value(&[]);
    let loss = obj.loss(&model, &b);
    assert!((loss.double_value(&[]) - base - 0.01 * value).abs() < 1e-4);
    loss.backward();
    assert!(vs.variables()["encoder.layer.0.attention.self.query.weight"].grad().defined());
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
