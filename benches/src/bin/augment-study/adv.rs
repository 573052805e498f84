//! The adv section: baseline, FGM, PGD, FreeLB and R-Drop on the 2 × 128 Transformer (all
//! data) and on MiniLM-L6 fine-tuning, each run scored clean and under two attacks on the
//! first `--attack-examples` test reviews: the embedding-space PGD attack with ε set to each
//! `--attack-epsilon` ρ × the mean L2 norm of a review's token embeddings (so the attack is
//! equally strong, relative to the embeddings, for every model), 10 steps; and the greedy
//! WordNet synonym attack with a budget of `--attack-budget` words per sentence.

use crate::{fetched, fmt_cell, fmt_gain, recipe, train, with, Study};
use anyhow::Result;
use serde_json::{json, Value};
use whetstone_augment::WordNet;
use whetstone_run::robustness::{head, mean_embedding_norm, pgd_report, synonym_report};
use whetstone_run::LoadedRun;
use whetstone_train::adversarial::PgdAttack;

/// The recipe sections of an arm. `fgm`, `pgd` and `freelb` run the library defaults (radius
/// 0.1 per sentence); `fgm:E`, `pgd:E` and `freelb:E` the same method at radius E (PGD and
/// FreeLB with step size E/3 over 3 steps, FreeLB's random start E/3).
fn arm_sections(arm: &str, _model: &str) -> Result<String> {
    if let Some((method, e)) = arm.split_once(':') {
        let e: f64 = e.parse().map_err(|_| anyhow::anyhow!("`{arm}`: the radius after `:` must be a number"))?;
        return Ok(match method {
            "fgm" => format!("[adversarial]\nmethod = \"fgm\"\nepsilon = {e}\n"),
            "pgd" => format!("[adversarial]\nmethod = \"pgd\"\nepsilon = {e}\nalpha = {}\nsteps = 3\n", e / 3.0),
            "freelb" => format!("[adversarial]\nmethod = \"freelb\"\nepsilon = {e}\nalpha = {}\ninit_mag = {}\nsteps = 3\n", e / 3.0, e / 3.0),
            other => anyhow::bail!("`{other}:` takes a radius only for fgm, pgd and freelb"),
        });
    }
    Ok(match arm {
        "none" => String::new(),
        "fgm" | "pgd" | "freelb" => format!("[adversarial]\nmethod = \"{arm}\"\n"),
        "rdrop" => "[regularize]\nmethod = \"rdrop\"\nalpha = 1.0\n".to_string(),
        other => anyhow::bail!("unknown adv arm `{other}` (known: none, fgm, pgd, freelb, rdrop, and fgm:E, pgd:E, freelb:E)"),
    })
}

fn epochs(model: &str, quick: bool) -> u64 {
    match (quick, model) {
        (true, _) => 1,
        (false, "minilm") => 1,
        (false, _) => 6,
    }
}

pub fn run(study: &mut Study) -> Result<()> {
    let models: Vec<String> = study.args.models.iter().filter(|m| *m != "textcnn").cloned().collect();
    for arm in &study.args.adv_arms {
        arm_sections(arm, "transformer")?;
    }
    let wordnet = WordNet::load(&fetched("wordnet")?)?;
    let train_csv = study.write_train(&study.splits.train.clone(), "adv-train.csv")?;
    let attacked = head(&study.splits.test, study.args.attack_examples);
    for model in &models {
        for arm in &study.args.adv_arms.clone() {
            for seed in study.seeds() {
                let k = study.key(&["adv", model, arm], seed);
                if study.get(&k).is_some() {
                    continue;
                }
                let batch = 32;
                let r = recipe(study, &format!("adv-{model}-{arm}-s{seed}"), model, seed, &train_csv, epochs(model, study.args.quick), batch, &arm_sections(arm, model)?)?;
                eprintln!("adv: {model} {arm} seed {seed}");
                let (dir, rec) = train(study, &r, true)?;
                let loaded = LoadedRun::open(&dir, None)?;
                let norm = mean_embedding_norm(&loaded, &attacked)?;
                let mut pgd = serde_json::Map::new();
                let mut clean = f64::NAN;
                for &rel in &study.args.attack_epsilon {
                    let attack = PgdAttack { epsilon: rel * norm, alpha: None, steps: 10 };
                    let r = pgd_report(&loaded, &attacked, &attack)?;
                    clean = r.clean_accuracy;
                    pgd.insert(format!("pgd_accuracy_{rel}"), json!(r.robust_accuracy));
                }
                let syn = synonym_report(&loaded, &attacked, study.args.attack_budget, &wordnet)?;
                drop(loaded);
                // MiniLM folders are kept (about 0.4 GB each) so that a run can be attacked again.
                if model != "minilm" {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                eprintln!(
                    "    test accuracy {:.4}; on {} attacked: clean {clean:.4}, PGD {:?}, synonym {:.4}; {:.0}s",
                    crate::field(&rec, "test_accuracy"),
                    attacked.len(),
                    pgd,
                    syn.robust_accuracy,
                    crate::field(&rec, "wall_s")
                );
                let rec = with(
                    rec,
                    json!({"key": k, "section": "adv", "model": model, "arm": arm, "seed": seed,
                           "attacked": attacked.len(), "embedding_norm": norm,
                           "attacked_clean_accuracy": clean,
                           "synonym_accuracy": syn.robust_accuracy, "synonym_substitutions": syn.mean_substitutions,
                           "synonym_queries": syn.queries_per_example}),
                );
                let rec = with(rec, Value::Object(pgd));
                study.put(rec)?;
            }
        }
    }
    Ok(())
}

pub fn report(study: &Study, md: &mut String, cells: &mut Vec<Value>) {
    let models: Vec<&str> = ["transformer", "minilm"].into_iter().filter(|m| study.args.adv_arms.iter().any(|a| study.cell(&["adv", m, a], "test_accuracy").is_some())).collect();
    if models.is_empty() {
        return;
    }
    md.push_str(&format!(
        "\n## Adversarial and consistency training\n\nAll {} training reviews. Test accuracy (%) on the full test split, then accuracy on the first {} test reviews clean and under attack: \
         embedding-space PGD (10 steps of 2.5·ε/10, ε = ρ × the mean L2 norm of a review's token embeddings, measured per run, for each ρ) and the greedy WordNet synonym attack (at most {} words per review). Mean ± std (seeds).\n\n",
        study.splits.train.len(),
        study.args.attack_examples,
        study.args.attack_budget
    ));
    let rhos = &study.args.attack_epsilon;
    md.push_str(&format!(
        "| model | method | test accuracy | gain (paired seeds) | clean (attacked set) | {} | under synonym attack |\n|---|---|---:|---:|---:|{}---:|\n",
        rhos.iter().map(|r| format!("PGD ρ = {r}")).collect::<Vec<_>>().join(" | "),
        "---:|".repeat(rhos.len())
    ));
    for model in models {
        for arm in &study.args.adv_arms {
            let parts = ["adv", model, arm.as_str()];
            let acc = study.cell(&parts, "test_accuracy");
            if acc.is_none() {
                continue;
            }
            let gain = if arm == "none" { "–".into() } else { fmt_gain(study.paired_gain(&["adv", model, "none"], &parts, "test_accuracy")) };
            let pgd: Vec<_> = rhos.iter().map(|r| study.cell(&parts, &format!("pgd_accuracy_{r}"))).collect();
            cells.push(json!({"section": "adv", "model": model, "arm": arm, "test_accuracy": acc.as_ref().map(|c| &c.2),
                "pgd": rhos.iter().zip(&pgd).map(|(r, c)| json!({"rho": r, "accuracy": c.as_ref().map(|c| &c.2)})).collect::<Vec<_>>(),
                "synonym": study.cell(&parts, "synonym_accuracy").map(|c| c.2)}));
            md.push_str(&format!(
                "| {model} | {arm} | {} | {gain} | {} | {} | {} |\n",
                fmt_cell(acc),
                fmt_cell(study.cell(&parts, "attacked_clean_accuracy")),
                pgd.into_iter().map(fmt_cell).collect::<Vec<_>>().join(" | "),
                fmt_cell(study.cell(&parts, "synonym_accuracy"))
            ));
        }
    }
    let best = study.args.adv_arms.iter().filter(|a| *a != "none").filter_map(|a| study.paired_gain(&["adv", "minilm", "none"], &["adv", "minilm", a], "test_accuracy").map(|g| (a.clone(), g))).max_by(|x, y| x.1 .0.total_cmp(&y.1 .0));
    if let Some((arm, (g, n))) = best {
        md.push_str(&format!("\n**Goal check (MiniLM fine-tuning): best method {arm}, {g:+.1} points clean (paired over {n} seeds)** (goal: at least +1). {}\n", if g >= 1.0 { "Met." } else { "Not met." }));
    }
}
