//! Pieces shared by the long studies (`optim-study`, `transfer-study`): a JSONL cache of
//! finished runs, so an interrupted study resumes where it stopped, and summary statistics.

use anyhow::{Context, Result};
use whetstone_data::Split;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Finished runs by their `key` field (later records replace earlier ones).
pub fn read_cache(path: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Ok(recs) = whetstone_eval::read_jsonl(path) {
        for r in recs {
            if let Some(k) = r.get("key").and_then(Value::as_str) {
                out.insert(k.to_string(), r);
            }
        }
    }
    out
}

/// Appends one finished run (a JSON object with a `key`) to the cache.
pub fn append_cache(path: &Path, rec: &Value) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{rec}")?;
    Ok(())
}

/// A number field of a record, NaN when absent.
pub fn field(r: &Value, k: &str) -> f64 {
    r.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// A class-balanced sample of `n` training examples (all when `n` is 0), fixed by `seed`.
pub fn sample(train: &Split, n: usize, seed: u64) -> Split {
    if n == 0 || n >= train.len() {
        return train.clone();
    }
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003) ^ n as u64);
    let classes = train.labels.iter().copied().max().unwrap_or(0) + 1;
    let mut picked = Vec::new();
    for c in 0..classes {
        let mut idx: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] == c).collect();
        idx.shuffle(&mut rng);
        let share = n / classes as usize + usize::from((c as usize) < n % classes as usize);
        picked.extend(idx.into_iter().take(share));
    }
    picked.sort_unstable();
    Split { texts: picked.iter().map(|&i| train.texts[i].clone()).collect(), labels: picked.iter().map(|&i| train.labels[i]).collect() }
}

/// Writes `split` as a `text,label` CSV with the class names of `names`.
pub fn write_csv(path: &Path, split: &Split, names: &[String]) -> Result<()> {
    let mut body = String::from("text,label\n");
    for (t, l) in split.texts.iter().zip(&split.labels) {
        body.push_str(&format!("\"{}\",{}\n", t.replace('"', "\"\""), names[*l as usize]));
    }
    std::fs::write(path, body).with_context(|| format!("writing {}", path.display()))
}

