//! How sparse a model is, per tensor and per layer.

use tch::{Kind, Tensor};

/// Zeros out of all entries for one tensor or layer.
#[derive(Debug, Clone, PartialEq)]
pub struct SparsityRow {
    /// Tensor name, or layer prefix (`encoder.layer.3`, `embeddings`, `classifier`).
    pub name: String,
    /// Entries equal to zero.
    pub zeros: i64,
    /// All entries.
    pub numel: i64,
}

impl SparsityRow {
    /// zeros / numel.
    pub fn fraction(&self) -> f64 {
        if self.numel == 0 { 0.0 } else { self.zeros as f64 / self.numel as f64 }
    }
}

/// The fraction of zeros per tensor, per layer and overall.
///
/// ```
/// use whetstone_compress::SparsityReport;
/// use tch::Tensor;
/// let named = vec![
///     ("encoder.layer.0.output.dense.weight".to_string(), Tensor::from_slice(&[0.0f32, 1.0, 0.0, 0.0])),
///     ("classifier.weight".to_string(), Tensor::from_slice(&[1.0f32, 2.0])),
/// ];
/// let r = SparsityReport::from_named(&named);
/// assert_eq!(r.layers[1].name, "encoder.layer.0");
/// assert_eq!(r.total.fraction(), 0.5);
/// assert!(r.to_markdown().contains("| encoder.layer.0 | 3 | 4 | 75.0% |"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SparsityReport {
    /// One row per tensor, by name.
    pub tensors: Vec<SparsityRow>,
    /// One row per layer, by name.
    pub layers: Vec<SparsityRow>,
    /// All tensors together.
    pub total: SparsityRow,
}

fn layer_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 && parts[0] == "encoder" && parts[1] == "layer" {
        parts[..3].join(".")
    } else {
        parts[0].to_string()
    }
}

impl SparsityReport {
    /// Count zeros in `named` (e.g. a model's `named_parameters()` or a store's variables).
    pub fn from_named(named: &[(String, Tensor)]) -> Self {
        let mut tensors: Vec<SparsityRow> = named
            .iter()
            .map(|(n, t)| SparsityRow { name: n.clone(), zeros: t.eq(0.0).sum(Kind::Int64).int64_value(&[]), numel: t.numel() as i64 })
            .collect();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let mut layers: Vec<SparsityRow> = Vec::new();
        for r in &tensors {
            let l = layer_of(&r.name);
            match layers.iter_mut().find(|x| x.name == l) {
                Some(x) => {
                    x.zeros += r.zeros;
                    x.numel += r.numel;
                }
                None => layers.push(SparsityRow { name: l, zeros: r.zeros, numel: r.numel }),
            }
        }
        layers.sort_by(|a, b| a.name.cmp(&b.name));
        let total = SparsityRow { name: "total".into(), zeros: tensors.iter().map(|r| r.zeros).sum(), numel: tensors.iter().map(|r| r.numel).sum() };
        Self { tensors, layers, total }
    }

    /// A Markdown table of the layers and the total.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from("| layer | zeros | entries | sparsity |\n|---|---:|---:|---:|\n");
        for r in self.layers.iter().chain([&self.total]) {
            s.push_str(&format!("| {} | {} | {} | {:.1}% |\n", r.name, r.zeros, r.numel, 100.0 * r.fraction()));
        }
        s
    }
}
