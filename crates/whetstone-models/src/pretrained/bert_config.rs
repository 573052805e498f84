//! Hugging Face `BertConfig` (`config.json`) and its mapping onto [`TransformerConfig`].

use crate::error::{ModelError, Result};
use crate::head::Pooling;
use crate::transformer::TransformerConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fields of a Hugging Face BERT `config.json` that whetstone reads and writes.
///
/// Shape fields are required; the rest default to `transformers`' `BertConfig` defaults.
/// Fields whetstone does not use (`transformers_version`, `_name_or_path`, …) are kept in
/// [`extra`](Self::extra) so nothing is lost when a config is read and written again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertJsonConfig {
    /// The `transformers` classes this checkpoint is for, e.g. `["BertModel"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Must be `bert` when present: other families (RoBERTa, …) lay out positions differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// Rows of the word-embedding matrix.
    pub vocab_size: usize,
    /// Width of the token states.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Rows of the position-embedding matrix (longest input).
    pub max_position_embeddings: usize,
    /// Rows of the token-type (segment) embedding matrix.
    #[serde(default = "defaults::type_vocab_size")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Dropout on embeddings and sub-layer outputs.
    #[serde(default = "defaults::dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "defaults::dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Feed-forward activation; whetstone implements only `gelu` (the exact, erf form).
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: String,
    /// Standard deviation of the initialisation (for fresh heads).
    #[serde(default = "defaults::initializer_range")]
    pub initializer_range: f64,
    /// Must be `absolute` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_embedding_type: Option<String>,
    /// Id of the padding token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<i64>,
    /// Class names by index (`{"0": "negative", …}`), present with a classification head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    /// The inverse of `id2label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, i64>>,
    /// How whetstone's classifier pooled token states (not a `transformers` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whetstone_pooling: Option<Pooling>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

mod defaults {
    pub fn type_vocab_size() -> usize {
        2
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn hidden_act() -> String {
        "gelu".into()
    }
    pub fn initializer_range() -> f64 {
        0.02
    }
}

impl BertJsonConfig {
    /// The encoder shape this config describes, or an error saying which field whetstone
    /// cannot honour (`path` names the file in messages).
    pub fn to_transformer_config(&self, path: &str) -> Result<TransformerConfig> {
        let bad = |message: String| Err(ModelError::Pretrained { path: path.to_string(), message });
        if let Some(t) = self.model_type.as_deref().filter(|t| *t != "bert") {
            return bad(format!("model_type `{t}` is not supported: whetstone loads BERT-layout checkpoints (model_type \"bert\")"));
        }
        if self.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act `{}` is not supported: whetstone's encoder uses exact (erf) GELU, `gelu` in transformers",
                self.hidden_act
            ));
        }
        if let Some(t) = self.position_embedding_type.as_deref().filter(|t| *t != "absolute") {
            return bad(format!("position_embedding_type `{t}` is not supported: only `absolute`"));
        }
        let config = TransformerConfig {
            layers: self.num_hidden_layers,
            hidden: self.hidden_size,
            heads: self.num_attention_heads,
            ffn: self.intermediate_size,
            max_len: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            dropout: self.hidden_dropout_prob,
            attention_dropout: self.attention_probs_dropout_prob,
            pre_norm: false,
            layer_norm_eps: self.layer_norm_eps,
            init_std: self.initializer_range,
            layer_shapes: Vec::new(),
        };
        config.validate().map_err(|e| ModelError::Pretrained { path: path.to_string(), message: e.to_string() })?;
        Ok(config)
    }

    /// The `config.json` of a post-LN encoder of shape `c` with `vocab_size` word rows.
    ///
    /// Fails for a pre-LN encoder, which has no Hugging Face BERT equivalent.
    pub fn from_transformer_config(c: &TransformerConfig, vocab_size: usize) -> Result<Self> {
        if c.pre_norm {
            return Err(ModelError::Config(
                "a pre-LayerNorm encoder cannot be exported as BERT, which is post-LayerNorm".into(),
            ));
        }
        if !c.is_uniform() {
            return Err(ModelError::Config(
                "an encoder with per-layer head counts or feed-forward widths (structurally pruned) cannot be exported as a BERT config.json; save it with save_varstore and its whetstone config".into(),
            ));
        }
        Ok(Self {
            architectures: Some(vec!["BertModel".into()]),
            model_type: Some("bert".into()),
            vocab_size,
            hidden_size: c.hidden,
            num_hidden_layers: c.layers,
            num_attention_heads: c.heads,
            intermediate_size: c.ffn,
            max_position_embeddings: c.max_len,
            type_vocab_size: c.type_vocab_size,
            layer_norm_eps: c.layer_norm_eps,
            hidden_dropout_prob: c.dropout,
            attention_probs_dropout_prob: c.attention_dropout,
            hidden_act: "gelu".into(),
            initializer_range: c.init_std,
            position_embedding_type: Some("absolute".into()),
            pad_token_id: Some(0),
            id2label: None,
            label2id: None,
            whetstone_pooling: None,
            extra: serde_json::Map::new(),
        })
    }

    /// Marks the config as a sequence classifier with these class names and pooling.
    pub fn with_labels(mut self, labels: &[String], pooling: Pooling) -> Self {
        self.architectures = Some(vec!["BertForSequenceClassification".into()]);
        self.id2label = Some(labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect());
        self.label2id = Some(labels.iter().enumerate().map(|(i, l)| (l.clone(), i as i64)).collect());
        self.whetstone_pooling = Some(pooling);
        self.extra.insert("problem_type".into(), "single_label_classification".into());
        self
    }

    /// Class names in index order, when `id2label` covers `0..n` exactly.
    pub fn labels(&self) -> Option<Vec<String>> {
        let map = self.id2label.as_ref()?;
        (0..map.len()).map(|i| map.get(&i.to_string()).cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_bert_defaults_and_unknown_fields_survive() {
        let json = r#"{"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 64, "max_position_embeddings": 16, "transformers_version": "4.8.2"}"#;
        let c: BertJsonConfig = serde_json::from_str(json).unwrap();
        let t = c.to_transformer_config("config.json").unwrap();
        assert_eq!((t.layers, t.hidden, t.heads, t.ffn, t.max_len, t.type_vocab_size), (1, 32, 2, 64, 16, 2));
        assert_eq!((t.dropout, t.layer_norm_eps, t.pre_norm), (0.1, 1e-12, false));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["transformers_version"], "4.8.2");
    }

    #[test]
    fn unsupported_activation_and_family_are_named() {
        let mut c = BertJsonConfig::from_transformer_config(&TransformerConfig::default(), 10).unwrap();
        c.hidden_act = "gelu_new".into();
        let e = c.to_transformer_config("x/config.json").unwrap_err().to_string();
        assert!(e.contains("x/config.json") && e.contains("gelu_new"), "{e}");
        c.hidden_act = "gelu".into();
        c.model_type = Some("roberta".into());
        assert!(c.to_transformer_config("c").unwrap_err().to_string().contains("roberta"));
    }

    #[test]
    fn labels_round_trip_and_pre_norm_is_refused() {
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let c = BertJsonConfig::from_transformer_config(&TransformerConfig::default(), 10).unwrap().with_labels(&labels, Pooling::Cls);
        assert_eq!(c.labels().unwrap(), labels);
        assert_eq!(c.label2id.as_ref().unwrap()["pos"], 1);
        let pre = TransformerConfig { pre_norm: true, ..Default::default() };
        assert!(BertJsonConfig::from_transformer_config(&pre, 10).is_err());
    }
}
