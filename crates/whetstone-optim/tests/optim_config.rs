//! `OptimConfig::validate`: every algorithm's defaults pass without any parameters, and bad
//! values (non-finite ones included) are refused with the recipe key named.

use whetstone_optim::OptimConfig;

fn config(text: &str) -> OptimConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn every_algorithm_validates_with_its_defaults() {
    for kind in ["sgd", "adam", "adamw", "nadam", "radam", "adagrad", "rmsprop", "adamax", "adabelief", "lion", "lamb", "adafactor", "schedulefree-adamw", "adaptive"] {
        config(&format!("kind = \"{kind}\"")).validate().unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

#[test]
fn bad_values_name_their_key() {
    for (text, key) in [
        ("kind = \"adamw\"\nlr = nan", "optim.lr"),
        ("kind = \"adamw\"\nlr = inf", "optim.lr"),
        ("kind = \"adamw\"\nweight_decay = nan", "optim.weight_decay"),
        ("kind = \"adamw\"\nweight_decay = -inf", "optim.weight_decay"),
        ("kind = \"adamw\"\nlayer_decay = nan", "optim.layer_decay"),
        ("kind = \"adamw\"\ngroups = [{ pattern = \"x\", lr_scale = nan }]", "optim.groups[0].lr_scale"),
        ("kind = \"adamw\"\ngroups = [{ pattern = \"x\", betas = [0.9, 1.5] }]", "optim.groups[0].betas"),
        ("kind = \"sgd\"\ngroups = [{ pattern = \"x\", betas = [0.9, 0.99] }]", "optim.groups[0].betas"),
        ("kind = \"adamw\"\nlookahead = { k = 0, alpha = 0.5 }", "optim.lookahead"),
        ("kind = \"adamw\"\nbetas = [0.9, 1.0]", "betas"),
        ("kind = \"adamw\"\neps = nan", "eps"),
    ] {
        let e = config(text).validate().unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}
