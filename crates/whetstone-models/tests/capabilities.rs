//! Capabilities: input embeddings for all three models (bit-identical to `forward_t`, and
//! differentiable back to the word embeddings), layer outputs and structure for the
//! Transformer only, clear errors where one is missing, and errors instead of panics for
//! inputs libtorch rejects.

use tch::{nn::VarStore, Device, Kind, Tensor};
use whetstone_models::*;

const VOCAB: i64 = 30;

/// libtorch's random generator is global and the tests of this file run on parallel threads:
/// each holds this lock, so seeding then drawing (initialisation, dropout) is not interleaved.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn configs() -> Vec<ModelConfig> {
    let transformer = |pre_norm, pooling| {
        ModelConfig::Transformer(TransformerClassifierConfig {
            encoder: TransformerConfig { layers: 2, hidden: 16, heads: 2, ffn: 32, max_len: 16, pre_norm, ..Default::default() },
            pooling,
            ..Default::default()
        })
    };
    vec![
        transformer(false, Pooling::Mean),
        transformer(true, Pooling::Cls),
        ModelConfig::Textcnn(TextCnnConfig { embed_dim: 8, kernel_sizes: vec![2, 3], channels: 4, ..Default::default() }),
        ModelConfig::Bilstm(BiLstmConfig { embed_dim: 8, hidden: 6, layers: 2, ..Default::default() }),
    ]
}

/// Two padded sentences, the second shorter than TextCNN's widest window once unpadded.
fn batch() -> (Tensor, Tensor) {
    let ids = Tensor::from_slice(&[2i64, 10, 11, 12, 3, 2, 13, 3, 0, 0]).view([2, 5]);
    let mask = ids.ne(0).to_kind(Kind::Int64);
    (ids, mask)
}

fn build(cfg: &ModelConfig) -> (VarStore, Box<dyn TextClassifier>) {
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let model = cfg.build(&vs.root(), VOCAB, 3).unwrap();
    (vs, model)
}

#[test]
fn forward_embedded_of_embed_is_forward_t_bit_for_bit() {
    let _rng = rng();
    let (ids, mask) = batch();
    for cfg in configs() {
        let (_vs, model) = build(&cfg);
        assert_eq!(model.kind(), cfg.kind());
        let e = model.embedding_input().unwrap_or_else(|| panic!("{} has input embeddings", cfg.kind()));
        assert_eq!(e.word_embeddings().size()[0], VOCAB);
        for train in [false, true] {
            tch::manual_seed(11);
            let direct = model.forward_t(&ids, &mask, train).unwrap();
            tch::manual_seed(11);
            let emb = e.embed(&ids, train).unwrap();
            assert_eq!(emb.size(), vec![2, 5, e.word_embeddings().size()[1]], "{}", cfg.kind());
            let via = e.forward_embedded(&emb, &mask, train).unwrap();
            assert!(direct.equal(&via), "{} (train {train}): forward_embedded(embed(ids)) differs from forward_t(ids)", cfg.kind());
        }
    }
}

#[test]
fn a_perturbation_of_the_embeddings_changes_the_logits_and_gradients_reach_the_word_embeddings() {
    let _rng = rng();
    let (ids, mask) = batch();
    for cfg in configs() {
        let (_vs, model) = build(&cfg);
        let e = require_embedding_input(model.as_ref(), "FGM").unwrap();
        let emb = e.embed(&ids, false).unwrap();
        let clean = e.forward_embedded(&emb, &mask, false).unwrap();
        let delta = (emb.randn_like() * 0.5).detach();
        let perturbed = e.forward_embedded(&(&emb + &delta), &mask, false).unwrap();
        let moved = (&perturbed - &clean).abs().max().double_value(&[]);
        assert!(moved > 1e-6, "{}: a perturbation of the embeddings left the logits unchanged", cfg.kind());

        let w = e.word_embeddings();
        let mut g = w.grad();
        if g.defined() {
            let _ = g.zero_();
        }
        perturbed.cross_entropy_for_logits(&Tensor::from_slice(&[0i64, 2])).backward();
        let g = w.grad();
        assert!(g.defined(), "{}: no gradient on the word embeddings", cfg.kind());
        // Rows of ids in the batch get a gradient; a row never used gets none.
        let used = g.get(10).abs().sum(Kind::Float).double_value(&[]);
        let unused = g.get(VOCAB - 1).abs().sum(Kind::Float).double_value(&[]);
        assert!(used > 0.0, "{}: the gradient did not flow back to the word embeddings", cfg.kind());
        assert_eq!(unused, 0.0, "{}", cfg.kind());
    }
}

#[test]
fn only_the_transformer_has_layer_outputs_and_structure() {
    let _rng = rng();
    let (ids, mask) = batch();
    for cfg in configs() {
        let (_vs, model) = build(&cfg);
        let m = model.as_ref();
        if let ModelConfig::Transformer(_) = &cfg {
            let l = require_layer_outputs(m, "hidden-state distillation").unwrap();
            assert_eq!((l.num_layers(), l.hidden_size(), l.attention_heads()), (2, 16, vec![2, 2]));
            let (logits, out) = l.forward_detailed(&ids, &mask, false, true).unwrap();
            // Explicit attention (for the probabilities) instead of the fused kernel: equal up to rounding.
            let fused = model.forward_t(&ids, &mask, false).unwrap();
            assert!((&logits - fused).abs().max().double_value(&[]) < 1e-5);
            assert_eq!(out.hidden_states.len(), 3);
            assert_eq!(out.attentions.len(), 2);
            assert!(l.logits_from_states(&out.last, &mask, false).unwrap().equal(&logits));
            let units = require_structured(m, "structured pruning").unwrap().layer_units();
            assert_eq!(units.len(), 2);
            assert_eq!((units[1].heads, units[1].head_dim, units[1].ffn), (2, 8, 32));
            assert_eq!(units[1].qkv[2], "encoder.layer.1.attention.self.value");
            assert!(m.as_transformer().is_some());
        } else {
            assert!(m.layer_outputs().is_none() && m.structured().is_none() && m.as_transformer().is_none(), "{}", cfg.kind());
            let err = require_layer_outputs(m, "hidden-state distillation").err().expect("no layer outputs");
            assert!(matches!(err, ModelError::Capability { model, .. } if model == cfg.kind()));
            let msg = err.to_string();
            assert!(msg.contains("hidden-state distillation") && msg.contains("hidden states") && msg.contains(&format!("a {} model", cfg.kind())), "{msg}");
            let msg = require_structured(m, "structured pruning").err().expect("no structure").to_string();
            assert!(msg.contains("structured pruning") && msg.contains("attention heads") && msg.contains(cfg.kind()), "{msg}");
        }
    }
}

/// A user model that implements nothing beyond `forward_t`.
#[derive(Debug)]
struct Constant;

impl TextClassifier for Constant {
    fn forward_t(&self, input_ids: &Tensor, _attention_mask: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(Tensor::zeros([input_ids.size()[0], 2], (Kind::Float, Device::Cpu)))
    }
}

#[test]
fn a_model_without_input_embeddings_gets_a_clear_error() {
    let _rng = rng();
    let err = require_embedding_input(&Constant, "FGM").err().expect("no input embeddings");
    assert_eq!(err.to_string(), "FGM needs a model with input embeddings (embed / forward_embedded); a model model does not provide it");
    assert!(matches!(err, ModelError::Capability { model: "model", capability, ref needed_by } if capability.contains("input embeddings") && needed_by == "FGM"));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let _rng = rng();
    let (ids, mask) = batch();
    let too_big = ids.copy();
    let _ = too_big.get(0).get(1).fill_(VOCAB); // one id past the vocabulary
    let negative = ids.copy();
    let _ = negative.get(1).get(2).fill_(-1);
    for cfg in configs() {
        let (_vs, model) = build(&cfg);
        let k = cfg.kind();
        for bad in [&too_big, &negative] {
            let err = model.forward_t(bad, &mask, false).err().unwrap_or_else(|| panic!("{k}: an id outside the vocabulary gave logits"));
            assert!(matches!(err, ModelError::Torch(_)), "{k}: {err}");
            assert!(model.embedding_input().unwrap().embed(bad, false).is_err(), "{k}");
        }
        // Input ids of the wrong rank.
        assert!(model.forward_t(&ids.view([-1]), &mask, false).is_err(), "{k}");
        // Embeddings of the wrong width.
        let e = model.embedding_input().unwrap();
        let wrong = Tensor::zeros([2, 5, e.word_embeddings().size()[1] + 1], (Kind::Float, Device::Cpu));
        assert!(e.forward_embedded(&wrong, &mask, false).is_err(), "{k}");
    }
    // Longer than the Transformer's position embeddings (max_len 16).
    let (_vs, model) = build(&configs()[0]);
    let long = Tensor::full([1, 17], 5, (Kind::Int64, Device::Cpu));
    assert!(matches!(model.forward_t(&long, &long.ones_like(), false), Err(ModelError::Torch(_))));
    // The model still works afterwards.
    assert_eq!(model.forward_t(&ids, &mask, false).unwrap().size(), vec![2, 3]);
}

#[test]
fn a_bare_encoder_trains_under_the_loop_but_has_no_logits() {
    use whetstone_models::{require_transformer_encoder, TextClassifier, TransformerConfig, TransformerEncoder};
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let enc = TransformerEncoder::new(&vs.root(), 50, &TransformerConfig { layers: 1, hidden: 16, heads: 2, ffn: 32, max_len: 8, ..Default::default() }).unwrap();
    let model: &dyn TextClassifier = &enc;
    assert!(require_transformer_encoder(model, "masked-LM pretraining").is_ok());
    let ids = tch::Tensor::from_slice(&[2i64, 5, 3]).view([1, 3]);
    let e = model.forward_t(&ids, &ids.ones_like(), false).unwrap_err().to_string();
    assert!(e.contains("classification head"), "{e}");
    // Classifiers expose their encoder; other models say they have none.
    assert!(!vs.variables().keys().any(|n| n.starts_with("classifier")));
}
