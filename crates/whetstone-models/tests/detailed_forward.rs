//! Hidden states and attention probabilities on request, and per-layer shapes (pruned encoders).

use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_models::*;

fn cfg(pre_norm: bool, layer_shapes: Vec<LayerShape>) -> TransformerClassifierConfig {
    TransformerClassifierConfig {
        encoder: TransformerConfig { layers: 2, hidden: 16, heads: 4, ffn: 32, max_len: 8, dropout: 0.0, attention_dropout: 0.0, pre_norm, layer_shapes, ..Default::default() },
        ..Default::default()
    }
}

#[test]
fn detailed_forward_matches_the_fused_one() {
    tch::set_num_threads(1);
    let ids = Tensor::from_slice(&[2i64, 10, 11, 3, 2, 12, 3, 0]).view([2, 4]);
    let mask = ids.ne(0).to_kind(Kind::Int64);
    for pre_norm in [false, true] {
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let model = TransformerClassifier::new(&vs.root(), 20, 2, &cfg(pre_norm, vec![])).unwrap();
        let fused = model.forward_t(&ids, &mask, false).unwrap();
        let (logits, out) = model.forward_detailed(&ids, &mask, false, true).unwrap();
        assert!((fused - &logits).abs().max().double_value(&[]) < 1e-5);
        assert_eq!(out.hidden_states.len(), 3);
        assert_eq!(out.attentions.len(), 2);
        assert_eq!(out.attentions[0].size(), vec![2, 4, 4, 4]);
        let row_sums = out.attentions[1].sum_dim_intlist(-1, false, Kind::Float);
        assert!((row_sums - 1.0).abs().max().double_value(&[]) < 1e-5);
        // Padded keys get no attention.
        assert_eq!(out.attentions[0].select(0, 1).select(2, 3).abs().max().double_value(&[]), 0.0);
    }
}

#[test]
fn per_layer_shapes_build_smaller_layers_and_are_validated() {
    let vs = VarStore::new(Device::Cpu);
    let shapes = vec![LayerShape { heads: 1, ffn: 5 }, LayerShape { heads: 3, ffn: 32 }];
    let model = TransformerClassifier::new(&vs.root(), 20, 2, &cfg(false, shapes.clone())).unwrap();
    let vars = vs.variables();
    assert_eq!(vars["encoder.layer.0.attention.self.query.weight"].size(), vec![4, 16]);
    assert_eq!(vars["encoder.layer.0.attention.output.dense.weight"].size(), vec![16, 4]);
    assert_eq!(vars["encoder.layer.0.intermediate.dense.weight"].size(), vec![5, 16]);
    assert_eq!(vars["encoder.layer.1.attention.self.key.weight"].size(), vec![12, 16]);
    assert_eq!(model.encoder().layers()[0].shape(), shapes[0]);
    let ids = Tensor::from_slice(&[2i64, 10, 11, 3]).view([1, 4]);
    assert_eq!(model.forward_t(&ids, &ids.ones_like(), false).unwrap().size(), vec![1, 2]);
    let bad = |s: Vec<LayerShape>| TransformerClassifier::new(&VarStore::new(Device::Cpu).root(), 20, 2, &cfg(false, s)).unwrap_err().to_string();
    assert!(bad(vec![LayerShape { heads: 1, ffn: 5 }]).contains("1 entries for 2 layers"));
    assert!(bad(vec![LayerShape { heads: 0, ffn: 5 }; 2]).contains("at least one head"));
    // BERT's config.json cannot express per-layer shapes.
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, "{}").unwrap();
    assert!(model.encoder().save_pretrained(&dir.path().join("out"), &tok).unwrap_err().to_string().contains("per-layer"));
}
