//! `cargo xtask mutants`: sampled mutation testing with cargo-mutants.
//!
//! cargo-mutants makes one small change at a time in a crate's code (a `+` for a `-`, a body
//! replaced by `Ok(())`, a condition negated), rebuilds, and runs that crate's tests: a mutant
//! the tests still pass on ("missed") shows where the suite is blind. A full run over these
//! crates is thousands of mutants, each a rebuild and a test run: far too slow for CI. This
//! command samples a spread of them per crate (cargo-mutants' round-robin `--shard K/N`),
//! sized to a time budget, and prints the caught rate.
//!
//! It runs exactly what `reports/mutants.md` describes: mutants of the library crates only
//! (`.cargo/mutants.toml` excludes the benches, the CLI driver, xtask and the tests), each
//! tested by its own crate's unit and integration tests (no doctests), one at a time at
//! `nice 5`, in a separate target directory (`target/mutants`) so a normal build is never
//! disturbed.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, ExitCode};

/// The crates sampled by default.
const CRATES: &[&str] = &["whetstone-optim", "whetstone-train", "whetstone-compress", "whetstone-data"];

/// Minutes one mutant takes on a small machine (an incremental rebuild of the crate and its
/// test binaries, then its tests): what turns a budget into a sample size.
const MINUTES_PER_MUTANT: f64 = 2.5;

struct Args {
    crates: Vec<String>,
    minutes: f64,
    seed: usize,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args { crates: Vec::new(), minutes: 15.0, seed: 7 };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--crate" | "-p" => a.crates.push(it.next().context("--crate needs a crate name")?.clone()),
            "--minutes" => {
                a.minutes = it.next().context("--minutes needs a number")?.parse().context("--minutes needs a number")?;
                if !(a.minutes.is_finite() && a.minutes > 0.0) {
                    bail!("--minutes must be a positive number");
                }
            }
            "--seed" => a.seed = it.next().context("--seed needs a number")?.parse().context("--seed needs a whole number")?,
            other => bail!("unknown mutants argument `{other}` (--crate NAME, --minutes N, --seed K)"),
        }
    }
    if a.crates.is_empty() {
        a.crates = CRATES.iter().map(|c| c.to_string()).collect();
    }
    Ok(a)
}

/// `cargo mutants` with the libtorch environment, in the separate target directory.
fn cargo_mutants(root: &Path, base: &Command) -> Command {
    let mut c = Command::new("nice");
    c.args(["-n", "5"]).arg(base.get_program()).arg("mutants").current_dir(root);
    for (k, v) in base.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))) {
        c.env(k, v);
    }
    c.env("CARGO_TARGET_DIR", root.join("target").join("mutants"));
    c
}

fn ensure_installed(base: &Command) -> Result<()> {
    let installed = Command::new(base.get_program()).args(["mutants", "--version"]).output().is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("xtask: installing cargo-mutants (cargo install cargo-mutants --locked)");
        let st = Command::new(base.get_program()).args(["install", "cargo-mutants", "--locked"]).status().context("could not run cargo install")?;
        if !st.success() {
            bail!("cargo install cargo-mutants failed");
        }
    }
    Ok(())
}

/// Lines of `file` (a cargo-mutants result list), or 0 when absent.
fn count(file: &Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |s| s.lines().filter(|l| !l.trim().is_empty()).count())
}

/// Run the sampled mutation test. `base` is a `cargo` command with the libtorch environment.
pub fn mutants(root: &Path, base: &Command, args: &[String]) -> Result<ExitCode> {
    let a = parse(args)?;
    ensure_installed(base)?;
    let sample = ((a.minutes / MINUTES_PER_MUTANT).floor() as usize).max(1);
    let mut rows = Vec::new();
    for krate in &a.crates {
        let listed = cargo_mutants(root, base).args(["-p", krate, "--list"]).output().context("could not run cargo mutants --list")?;
        if !listed.status.success() {
            bail!("cargo mutants --list -p {krate} failed: {}", String::from_utf8_lossy(&listed.stderr));
        }
        let total = String::from_utf8_lossy(&listed.stdout).lines().count();
        if total == 0 {
            bail!("cargo-mutants finds no mutants in {krate}");
        }
        let shards = total.div_ceil(sample).max(1);
        let shard = format!("{}/{shards}", a.seed % shards);
        let out = root.join("target").join("mutants-out").join(krate);
        // cargo-mutants creates `-o DIR` but not its parent.
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        eprintln!("xtask: {krate}: {total} mutants, testing shard {shard} (~{sample}) for about {} min", a.minutes);
        let started = std::time::Instant::now();
        let st = cargo_mutants(root, base)
            .args(["-p", krate, "--shard", &shard, "--sharding", "round-robin", "--timeout", "180", "--build-timeout", "900", "-j", "1"])
            .args(["--cargo-test-arg=--lib", "--cargo-test-arg=--tests", "-o"])
            .arg(&out)
            .status()
            .context("could not run cargo mutants")?;
        let dir = out.join("mutants.out");
        let [caught, missed, timeout, unviable] = ["caught.txt", "missed.txt", "timeout.txt", "unviable.txt"].map(|f| count(&dir.join(f)));
        // Exit 2: some mutants were missed; 3: timeouts; 4: the baseline failed.
        match st.code() {
            Some(0 | 2 | 3) => {}
            Some(4) => bail!("{krate}: the tests fail without any mutation; see {}", dir.join("log").display()),
            other => bail!("{krate}: cargo mutants failed (exit {}); see its output above", other.map_or("by a signal".to_string(), |c| c.to_string())),
        }
        rows.push((krate.clone(), total, caught, missed, timeout, unviable, started.elapsed().as_secs_f64() / 60.0));
    }
    println!("| crate | mutants | tested | caught | missed | timeout | unviable | caught rate | minutes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (krate, total, caught, missed, timeout, unviable, minutes) in &rows {
        let rate = if caught + missed > 0 { format!("{:.0}%", 100.0 * *caught as f64 / (caught + missed) as f64) } else { "-".into() };
        println!("| {krate} | {total} | {} | {caught} | {missed} | {timeout} | {unviable} | {rate} | {minutes:.0} |", caught + missed + timeout + unviable);
    }
    println!("missed mutants: target/mutants-out/CRATE/mutants.out/missed.txt");
    Ok(ExitCode::SUCCESS)
}
