//! Adversarial training from a recipe end to end: `[adversarial] method = "fgm"` trains and
//! logs its adversarial loss, `eval --attack pgd` reports clean and robust accuracy, and a bad
//! setting is refused with the field's name before any run folder exists.

mod common;

use common::{bin, ok, rt_csv};

const TINY: &[&str] = &[
    "--set", "model.embed_dim=16", "--set", "model.channels=8", "--set", "tokenizer.vocab_size=800",
    "--set", "train.epochs=1", "--set", "train.batch_size=32", "--set", "eval.latency_iters=0",
    "--device", "cpu", "--quiet",
];

#[test]
fn fgm_trains_from_a_recipe_and_eval_reports_accuracy_under_pgd() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = rt_csv(tmp.path(), "rt.csv", 400);
    let runs = tmp.path().join("runs");
    let o = bin()
        .args(["train", "--data"])
        .arg(&csv)
        .args(["--name", "fgm", "--runs-dir"])
        .arg(&runs)
        .args(TINY)
        .args(["--set", "adversarial.method=fgm", "--set", "adversarial.epsilon=0.5"])
        .output()
        .unwrap();
    ok(&o);
    let run = runs.join("fgm");
    let recipe = std::fs::read_to_string(run.join("recipe.toml")).unwrap();
    assert!(recipe.contains("[adversarial]") && recipe.contains("method = \"fgm\""), "{recipe}");
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(log.lines().any(|l| l.contains("\"split\":\"train\"") && l.contains("\"adversarial\":")), "no adversarial term in the log");

    let o = bin().args(["eval", "--run"]).arg(&run).args(["--attack", "pgd", "--epsilon", "5", "--attack-steps", "3"]).output().unwrap();
    let out = ok(&o);
    assert!(out.contains("clean accuracy") && out.contains("robust accuracy"), "{out}");
    let o = bin().args(["eval", "--json", "--run"]).arg(&run).args(["--attack", "pgd,synonym", "--epsilon", "5", "--attack-steps", "3", "--budget", "2"]).output().unwrap();
    let r: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    let attacks = r["attacks"].as_array().expect("an `attacks` list");
    assert_eq!(attacks.iter().map(|a| a["attack"].as_str().unwrap()).collect::<Vec<_>>(), ["pgd", "synonym"]);
    for a in attacks {
        let (clean, robust) = (a["clean_accuracy"].as_f64().unwrap(), a["robust_accuracy"].as_f64().unwrap());
        assert_eq!(clean, r["accuracy"].as_f64().unwrap(), "clean accuracy under the {} attack differs from eval's", a["attack"]);
        assert!(robust <= clean, "{r}");
    }
    // The synonym attack changes at most --budget words per sentence and queries the model.
    let syn = &attacks[1];
    assert!(syn["mean_substitutions"].as_f64().unwrap() <= 2.0 && syn["queries_per_example"].as_f64().unwrap() >= 1.0, "{syn}");
    // --attack-examples limits the attacked set.
    let o = bin().args(["eval", "--json", "--run"]).arg(&run).args(["--attack", "synonym", "--attack-examples", "7"]).output().unwrap();
    let r: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(r["attacks"][0]["examples"].as_u64(), Some(7), "{r}");
}

#[test]
fn a_zero_epsilon_is_refused_naming_the_field_and_leaves_no_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = rt_csv(tmp.path(), "rt.csv", 100);
    let runs = tmp.path().join("runs");
    let o = bin()
        .args(["train", "--data"])
        .arg(&csv)
        .args(["--name", "bad", "--runs-dir"])
        .arg(&runs)
        .args(TINY)
        .args(["--set", "adversarial.method=fgm", "--set", "adversarial.epsilon=0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("adversarial.epsilon") && err.contains("fgm") && !err.contains("panicked"), "{err}");
    assert!(!runs.join("bad").exists(), "a refused recipe must leave no run folder");
    // An unknown key in the section is refused too.
    let o = bin().args(["train", "--data"]).arg(&csv).args(["--name", "bad", "--runs-dir"]).arg(&runs).args(TINY).args(["--set", "adversarial.method=pgd", "--set", "adversarial.radius=1"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("radius"), "{err}");
    assert!(!runs.join("bad").exists());
}
