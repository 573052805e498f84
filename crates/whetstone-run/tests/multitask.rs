//! Multi-task runs from a recipe: two tiny tasks (a CSV sequence task and a token-tagged
//! file) trained together, per-task results, the exported head, serving one task, and the
//! errors for bad task settings.

use std::fmt::Write as _;
use std::path::Path;
use whetstone_run::{train_recipe, LoadedRun, MultiTaskRun, Recipe, RunOptions};

/// libtorch's random stream is global: runs that seed it go one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_data(dir: &Path) {
    let words = ["film", "plot", "cast", "music", "story", "scene"];
    let mut csv = String::from("text,label\n");
    for i in 0..96 {
        let (w, label) = if i % 2 == 0 { ("great", "pos") } else { ("awful", "neg") };
        writeln!(csv, "\"the {} was {w} and {}\",{label}", words[i % 6], words[(i / 6) % 6]).unwrap();
    }
    std::fs::write(dir.join("sent.csv"), csv).unwrap();
    let names = ["paris", "london", "berlin", "rome"];
    let mut conll = String::new();
    for i in 0..80 {
        let city = names[i % 4];
        writeln!(conll, "we\tO\nflew\tO\nto\tO\n{city}\tB-loc\ntoday\tO\n").unwrap();
    }
    std::fs::write(dir.join("ner.txt"), conll).unwrap();
}

fn recipe(dir: &Path, weighting: &str, extra: &str) -> String {
    format!(
        r#"
name = "mtl"
seed = 3
device = "cpu"
[data]
max_len = 16
[tokenizer]
vocab_size = 200
min_frequency = 1
[model]
kind = "transformer"
layers = 1
hidden = 16
heads = 2
ffn = 32
max_len = 16
[train]
epochs = 2
batch_size = 8
grad_accum = 2
log_every = 1
[eval]
latency_iters = 0
[multitask]
sampling = "round_robin"
weighting = "{weighting}"
select = "mean"
[[tasks]]
name = "sent"
data = "{d}/sent.csv"
n = 60
[[tasks]]
name = "ner"
data = "{d}/ner.txt"
kind = "token"
{extra}
"#,
        d = dir.display()
    )
}

#[test]
fn two_tasks_train_together_report_per_task_and_serve_one_head() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let r = Recipe::parse("mtl.toml", &recipe(tmp.path(), "uncertainty", ""), &[]).unwrap();
    let run_dir = tmp.path().join("run");
    let mut opts = RunOptions::new(&run_dir);
    opts.quiet = true;
    let result = train_recipe(&r, &opts).unwrap();
    assert!(result.test.is_some(), "the main task's report");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("metrics.json")).unwrap()).unwrap();
    for (task, metric) in [("sent", "accuracy"), ("ner", "entity_f1")] {
        let t = &metrics["tasks"][task];
        assert_eq!(t["metric"], metric, "{metrics}");
        let v = t["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{task}: {v}");
    }
    assert_eq!(metrics["tasks"]["sent"]["train_examples"], 60);
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.contains("| sent |") && report.contains("| ner |"), "{report}");
    let log = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    assert!(log.contains("\"ner_entity_f1\"") && log.contains("\"sent_accuracy\""));

    // One head served from the multi-task run, and the same head exported as a run folder.
    let texts = vec!["the film was great and plot".to_string(), "the cast was awful and music".to_string()];
    let mt = MultiTaskRun::open(&run_dir, None).unwrap();
    let from_mt = mt.predict("sent", &texts).unwrap();
    let single = LoadedRun::open(&run_dir.join("tasks/sent"), None).unwrap();
    let from_single: Vec<String> = single.predict_texts(&texts).unwrap().into_iter().map(|(l, p)| format!("{l}\t{p:.4}")).collect();
    assert_eq!(from_mt, from_single);
    let tags = mt.predict("ner", &["we flew to rome today".to_string()]).unwrap();
    assert_eq!(tags[0].split(' ').count(), 5, "{tags:?}");
    assert!(tags[0].starts_with("we/"), "{tags:?}");
    assert!(mt.predict("nope", &texts).unwrap_err().to_string().contains("no task `nope`"));
}

#[test]
fn bad_task_settings_are_clear_errors() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let e = Recipe::parse("mtl.toml", &recipe(tmp.path(), "softmax", ""), &[]).unwrap_err();
    assert!(e.contains("multitask.weighting") && e.contains("softmax"), "{e}");
    let e = Recipe::parse("mtl.toml", &recipe(tmp.path(), "fixed", "[[tasks]]\nname = \"empty\"\n"), &[]).unwrap_err();
    assert!(e.contains("tasks[2] (`empty`) has no data"), "{e}");
    let e = Recipe::parse("mtl.toml", &recipe(tmp.path(), "fixed", "").replace("select = \"mean\"", "select = \"topic\""), &[]).unwrap_err();
    assert!(e.contains("multitask.select") && e.contains("topic"), "{e}");
    let e = Recipe::parse("mtl.toml", &recipe(tmp.path(), "fixed", "").replace("kind = \"transformer\"\nlayers = 1\nhidden = 16\nheads = 2\nffn = 32\nmax_len = 16", "kind = \"textcnn\""), &[]).unwrap_err();
    assert!(e.contains("model.kind = \"transformer\""), "{e}");
    // A token file with a malformed tag: the error names the file and line.
    std::fs::write(tmp.path().join("ner.txt"), "we\tO\nflew\tO\n\nto\tO\nrome\tX-loc\n").unwrap();
    let r = Recipe::parse("mtl.toml", &recipe(tmp.path(), "fixed", ""), &[]).unwrap();
    let mut opts = RunOptions::new(tmp.path().join("run"));
    opts.quiet = true;
    let e = train_recipe(&r, &opts).unwrap_err().to_string();
    assert!(e.contains("ner.txt:5:") && e.contains("X-loc"), "{e}");
    assert!(!tmp.path().join("run").exists(), "a failed check leaves no run folder");
}

#[test]
fn a_killed_multi_task_run_resumes_to_the_same_weights() {
    let _g = serial();
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let r = Recipe::parse("mtl.toml", &recipe(tmp.path(), "gradnorm", ""), &[]).unwrap();
    let quiet = |mut o: RunOptions| {
        o.quiet = true;
        o
    };
    train_recipe(&r, &quiet(RunOptions::new(tmp.path().join("full")))).unwrap();
    let mut killed = quiet(RunOptions::new(tmp.path().join("killed")));
    killed.stop_after = 11; // 8 steps an epoch: killed after the first epoch's checkpoint
    assert!(train_recipe(&r, &killed).unwrap().test.is_none(), "interrupted");
    train_recipe(&r, &quiet(RunOptions::resume(tmp.path().join("killed")))).unwrap();
    let weights = |run: &str| std::fs::read(tmp.path().join(run).join(whetstone_run::BEST_MODEL_FILE)).unwrap();
    assert!(weights("full") == weights("killed"), "the resumed run's best model differs");
    let m = |run: &str| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(tmp.path().join(run).join("metrics.json")).unwrap()).unwrap() };
    assert_eq!(m("full")["tasks"], m("killed")["tasks"]);
}
