//! Dynamic int8: close to f32 and smaller.

mod common;

use common::*;
use whetstone_compress::{QuantizedClassifier, QuantizedLinear};
use whetstone_models::TextClassifier;
use tch::{Device, Kind, Tensor};

#[test]
fn quantized_linear_is_close_to_f32() {
    let _g = serial();
    tch::manual_seed(1);
    let w = Tensor::randn([24, 32], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([24], (Kind::Float, Device::Cpu));
    let x = Tensor::randn([3, 5, 32], (Kind::Float, Device::Cpu));
    let q = QuantizedLinear::new(&w, Some(&b)).unwrap();
    let y = q.forward(&x).unwrap();
    let want = x.linear(&w, Some(&b));
    assert_eq!(y.size(), vec![3, 5, 24]);
    let rel = max_abs_diff(&y, &want) / want.abs().max().double_value(&[]);
    assert!(rel < 0.03, "relative error {rel}");
    assert!(q.size_bytes() < 4 * 24 * 32 / 3);
}

#[test]
fn int8_classifier_logits_stay_close_and_the_model_is_smaller() {
    let _g = serial();
    for pre_norm in [false, true] {
        let mut cfg = config(2, 32, 4, 64);
        cfg.encoder.pre_norm = pre_norm;
        let (vs, model, _) = tiny_with(2, cfg);
        let int8 = QuantizedClassifier::new(&model).unwrap();
        let b = batch(3, 6);
        let f32_logits = tch::no_grad(|| model.forward_t(&b.input_ids, &b.attention_mask, false).unwrap());
        let q_logits = int8.forward_t(&b.input_ids, &b.attention_mask, false).unwrap();
        let diff = max_abs_diff(&f32_logits, &q_logits);
        let scale = f32_logits.abs().max().double_value(&[]);
        println!("pre_norm {pre_norm}: max |logit diff| = {diff:.5} (max |logit| {scale:.3})");
        assert!(diff < 0.05 * scale.max(1.0), "int8 logits differ by {diff}");
        let fp32_bytes = 4 * whetstone_models::count_parameters(&vs) as usize;
        assert!((int8.size_bytes() as f64) < 0.6 * fp32_bytes as f64, "{} vs {fp32_bytes} bytes", int8.size_bytes());
    }
}
