//! What a resumed run must match: the run's identity, recorded in every checkpoint
//! ([`whetstone_train::Trainer::identity`]) and checked by `--resume` before anything is
//! loaded or trained.
//!
//! * `recipe`: the resolved recipe as canonical JSON, without the settings that may change on
//!   resume ([`RESUMABLE_SETTINGS`], [`PRETRAIN_RESUMABLE_SETTINGS`]). Keeping the recipe
//!   itself rather than only its hash lets a refused resume name the keys that changed.
//! * `data`: a fingerprint of the texts and labels of every split (or of the corpus).
//! * `labels`: the class names, in class-id order.
//!
//! The loop adds its own entries (the encoded training data and the batch plan).

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use whetstone_data::{Fingerprint, Split};
use whetstone_train::{Checkpoint, Result, TrainError, CHECKPOINT_FILE};

use crate::folder::{RunDir, RunFolder};

/// The identity entry of the resolved recipe.
pub const RECIPE_IDENTITY: &str = "recipe";
/// The identity entry of the data (texts and labels of every split).
pub const DATA_IDENTITY: &str = "data";
/// The identity entry of the label set.
pub const LABELS_IDENTITY: &str = "labels";

/// Training-recipe settings that may change on `--resume` and are left out of the recipe's
/// identity: the run's name, where it runs (`device`, `threads`), and how long the finished
/// model's latency and throughput are timed. Everything else (data, tokenizer, model,
/// optimiser, schedule, loop, fine-tuning) must stay as the run started.
pub const RESUMABLE_SETTINGS: &[&str] = &["name", "device", "threads", "precision", "optim.kernel", "eval.latency_iters", "eval.throughput_iters", "train.epochs", "train.checkpoint_minutes"];

/// Pretraining-recipe settings that may change on `--resume`: the name, `device`, `threads`,
/// `precision`.
pub const PRETRAIN_RESUMABLE_SETTINGS: &[&str] = &["name", "device", "threads", "precision", "optim.kernel", "train.epochs", "train.checkpoint_minutes"];

/// `recipe` as canonical JSON (keys sorted) without the dotted `resumable` keys.
pub fn recipe_identity(recipe: &impl Serialize, resumable: &[&str]) -> Result<String> {
    let mut value = serde_json::to_value(recipe).map_err(|e| TrainError::Config(format!("cannot record the recipe: {e}")))?;
    for key in resumable {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let pointer: String = parts.iter().map(|p| format!("/{p}")).collect();
        if let Some(obj) = value.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            obj.remove(last);
        }
    }
    Ok(value.to_string())
}

/// A fingerprint of one split's texts and labels.
pub fn split_fingerprint(split: &Split) -> String {
    let mut f = Fingerprint::new();
    for (t, l) in split.texts.iter().zip(&split.labels) {
        f.write_str(t);
        f.write_i64(*l);
    }
    format!("{} examples, fingerprint {:016x}", split.len(), f.finish())
}

/// The data identity of named parts (`train`, `valid`, `test`; or a corpus's documents).
pub fn data_identity(parts: &[(&str, String)]) -> String {
    let map: Map<String, Value> = parts.iter().map(|(k, v)| (k.to_string(), Value::String(v.clone()))).collect();
    Value::Object(map).to_string()
}

/// A fingerprint of documents (a pretraining corpus).
pub fn documents_fingerprint(docs: &[String]) -> String {
    let mut f = Fingerprint::new();
    for d in docs {
        f.write_str(d);
    }
    format!("{} documents, fingerprint {:016x}", docs.len(), f.finish())
}

/// The label-set identity.
pub fn labels_identity(names: &[String]) -> String {
    Value::from(names.to_vec()).to_string()
}

/// The settings in which two recipes differ, as `key: a → b`, leaving out the resumable ones
/// ([`RESUMABLE_SETTINGS`]).
pub fn recipe_changes(a: &crate::Recipe, b: &crate::Recipe) -> Result<Vec<String>> {
    Ok(changes(&recipe_identity(a, RESUMABLE_SETTINGS)?, &recipe_identity(b, RESUMABLE_SETTINGS)?))
}

/// Flatten JSON into dotted keys.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, sub) in m {
                flatten(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, sub, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The keys whose values differ between two identity values, as `key: then → now`. Values
/// that are not JSON compare whole.
fn changes(then: &str, now: &str) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::from_str::<Value>(then), serde_json::from_str::<Value>(now)) else {
        return vec![format!("{then} → {now}")];
    };
    if !a.is_object() || !b.is_object() {
        return vec![format!("{a} → {b}")];
    }
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &a, &mut fa);
    flatten("", &b, &mut fb);
    let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (fa.get(k), fb.get(k)) {
            (Some(x), Some(y)) if x == y => None,
            (x, y) => Some(format!("{k}: {} → {}", x.map_or("(not set)", String::as_str), y.map_or("(not set)", String::as_str))),
        })
        .collect()
}

/// The identity the checkpoint of the run in `dir` records.
pub fn recorded_identity(dir: &Path) -> Result<BTreeMap<String, String>> {
    Checkpoint::read_identity(&dir.join(CHECKPOINT_FILE))
}

/// Check the entry `what` of a resumed run: `now` must equal what the checkpoint recorded.
/// The error is one line that says what changed (for the recipe, the keys and both values,
/// and the `resumable` settings that may change).
pub fn check_identity(dir: &Path, recorded: &BTreeMap<String, String>, what: &str, now: &str, resumable: &[&str]) -> Result<()> {
    let refuse = |msg: String| Err(TrainError::Resume { run: dir.to_path_buf(), msg });
    let Some(then) = recorded.get(what) else {
        return refuse(format!("its checkpoint does not record the {what} (it was written by an older whetstone); start a new run"));
    };
    if then == now {
        return Ok(());
    }
    // A checkpoint written before a setting became resumable still records it: leave it out.
    let resumable_key = |k: &str| resumable.iter().any(|r| k == *r || k.starts_with(&format!("{r}.")));
    let changed: Vec<String> = changes(then, now).into_iter().filter(|c| what != RECIPE_IDENTITY || !resumable_key(c.split(':').next().unwrap_or(""))).collect();
    if changed.is_empty() {
        return Ok(());
    }
    let changed = changed.join("; ");
    match what {
        RECIPE_IDENTITY => refuse(format!(
            "the recipe differs from the one the run started with ({changed}); resume with the run's own settings (only {} may change)",
            resumable.join(", ")
        )),
        DATA_IDENTITY => refuse(format!("the data differs from what the run was trained on ({changed}); resume with the same data, or start a new run")),
        LABELS_IDENTITY => refuse(format!("the label set differs from the run's ({changed})")),
        _ => refuse(format!("the {what} changed ({changed})")),
    }
}

/// A run being resumed: its folder (locked) and the identity its checkpoint records.
pub struct Resumed {
    /// The run's folder.
    pub run: RunDir,
    recorded: BTreeMap<String, String>,
    resumable: &'static [&'static str],
}

impl Resumed {
    /// For a [`RunFolder::Resume`], lock the run, read its checkpoint's identity and check the
    /// recipe entry against `recipe_id` (the settings in `resumable` may differ); `None` for a
    /// fresh run. Done before any data is read.
    pub fn open(folder: &RunFolder, recipe_id: &str, resumable: &'static [&'static str]) -> Result<Option<Self>> {
        Self::open_as(folder, recipe_id, resumable, false)
    }

    /// [`Resumed::open`]; a `follower` (a data-parallel replica other than rank 0) reads the
    /// checkpoint's identity without locking the folder, which rank 0 holds.
    pub fn open_as(folder: &RunFolder, recipe_id: &str, resumable: &'static [&'static str], follower: bool) -> Result<Option<Self>> {
        let RunFolder::Resume(dir) = folder else {
            return Ok(None);
        };
        let run = if follower {
            if !dir.join(whetstone_train::CHECKPOINT_FILE).is_file() {
                return Err(TrainError::Resume { run: dir.clone(), msg: format!("this replica cannot read {} there: every data-parallel process must see the run folder (a shared file system across machines)", whetstone_train::CHECKPOINT_FILE) });
            }
            RunDir::follow(dir)
        } else {
            RunDir::resume(dir)?
        };
        let recorded = recorded_identity(run.path())?;
        let me = Self { run, recorded, resumable };
        me.check(RECIPE_IDENTITY, recipe_id)?;
        Ok(Some(me))
    }

    /// What the checkpoint records for `what`, if anything. A resumed run passes the recorded
    /// recipe identity on to the loop once [`Resumed::check`] accepted it: it may differ from
    /// today's in settings that became resumable since the checkpoint was written.
    pub fn recorded(&self, what: &str) -> Option<&str> {
        self.recorded.get(what).map(String::as_str)
    }

    /// Check the entry `what` (see [`check_identity`]).
    pub fn check(&self, what: &str, now: &str) -> Result<()> {
        check_identity(self.run.path(), &self.recorded, what, now, self.resumable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_named_with_both_values() {
        let a = serde_json::json!({"train": {"batch_size": 32, "epochs": 3}, "seed": 42}).to_string();
        let b = serde_json::json!({"train": {"batch_size": 16, "epochs": 3}, "seed": 42, "extra": true}).to_string();
        assert_eq!(changes(&a, &b), vec!["extra: (not set) → true".to_string(), "train.batch_size: 32 → 16".to_string()]);
        let recorded: BTreeMap<String, String> = [(RECIPE_IDENTITY.to_string(), a.clone())].into();
        let e = check_identity(Path::new("runs/x"), &recorded, RECIPE_IDENTITY, &b, RESUMABLE_SETTINGS).unwrap_err().to_string();
        assert!(e.contains("train.batch_size: 32 → 16") && !e.contains('\n'), "{e}");
        check_identity(Path::new("runs/x"), &recorded, RECIPE_IDENTITY, &a, RESUMABLE_SETTINGS).unwrap();
        assert!(check_identity(Path::new("runs/x"), &recorded, DATA_IDENTITY, "{}", &[]).unwrap_err().to_string().contains("does not record"));
    }

    #[test]
    fn resumable_settings_are_left_out() {
        #[derive(Serialize)]
        struct R {
            name: String,
            threads: usize,
            eval: serde_json::Value,
            seed: u64,
        }
        let r = |name: &str, threads, iters| R { name: name.into(), threads, eval: serde_json::json!({"latency_iters": iters, "throughput_iters": 3}), seed: 1 };
        let a = recipe_identity(&r("a", 1, 10), RESUMABLE_SETTINGS).unwrap();
        assert_eq!(a, recipe_identity(&r("b", 4, 20), RESUMABLE_SETTINGS).unwrap());
        assert_eq!(a, r#"{"eval":{},"seed":1}"#);
    }
}
