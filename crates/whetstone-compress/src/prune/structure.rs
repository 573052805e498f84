//! The small trait through which structured pruning sees a model's heads and neurons.

use whetstone_models::TransformerClassifier;

/// Parameter names and sizes of one Transformer layer's prunable units.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerUnits {
    /// Attention heads in the layer.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Feed-forward neurons in the layer.
    pub ffn: usize,
    /// Prefixes (without `.weight` / `.bias`) of the query, key and value projections, whose
    /// output rows are grouped per head.
    pub qkv: [String; 3],
    /// Prefix of the attention output projection, whose input columns are grouped per head.
    pub attention_out: String,
    /// Prefix of the feed-forward input projection (one output row per neuron).
    pub ffn_in: String,
    /// Prefix of the feed-forward output projection (one input column per neuron).
    pub ffn_out: String,
}

/// A model whose attention heads and feed-forward neurons can be ranked and removed.
///
/// Implemented for whetstone's [`TransformerClassifier`] (BERT names); another architecture
/// implements it by naming its projections.
pub trait Structured {
    /// The prunable units of each layer, in order.
    fn layer_units(&self) -> Vec<LayerUnits>;
}

impl Structured for TransformerClassifier {
    fn layer_units(&self) -> Vec<LayerUnits> {
        let c = self.encoder().config();
        self.encoder()
            .layers()
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let p = format!("encoder.layer.{i}");
                let shape = layer.shape();
                LayerUnits {
                    heads: shape.heads,
                    head_dim: c.head_dim(),
                    ffn: shape.ffn,
                    qkv: ["query", "key", "value"].map(|n| format!("{p}.attention.self.{n}")),
                    attention_out: format!("{p}.attention.output.dense"),
                    ffn_in: format!("{p}.intermediate.dense"),
                    ffn_out: format!("{p}.output.dense"),
                }
            })
            .collect()
    }
}
