//! `whetstone predict`: classify stdin one line at a time, answering each line (empty ones
//! included) in order and flushing after each, so it can be driven through a pipe. Lines are
//! read in bounded memory: at most the run's `max_len × 32` characters of a line are kept
//! (see `whetstone_data::truncate`), the rest is skipped unread into memory.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use whetstone_data::truncate::{char_bound, read_line_bounded};
use whetstone_run::multitask::TaskPrediction;
use whetstone_run::Predictor;

/// How each answer is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PredictFormat {
    /// `label<TAB>probability` (token tasks: `word/TAG` per word); an empty line for an empty line.
    Plain,
    /// One JSON object per line: `{"line": N, "label": L, "prob": P, "probs": {label: p, …}}`
    /// (token tasks: `{"line": N, "words": […], "tags": […]}`); `label`, `prob` and `probs` are
    /// null for an empty line. `"truncated": true` marks a line longer than the read bound.
    Jsonl,
}

#[derive(Args)]
#[command(after_long_help = "\
Input: one text per stdin line (UTF-8; a trailing \\r is dropped). Every line gets exactly one \
output line, in order, flushed as soon as it is computed, so `predict` can answer a pipe \
interactively.

Empty lines: a line that is empty or only whitespace has nothing to classify; it is answered \
with an empty line (plain) or with `\"label\": null, \"probs\": null` (jsonl), so outputs stay \
aligned with inputs.

Long lines: only the first max_len × 32 characters of a line are read (max_len from the run's \
recipe; the model sees at most max_len tokens of them anyway); the rest of the line is skipped \
without being held in memory, and a note goes to stderr. Token tasks tag the words of that \
prefix only.

Errors: a line that is not UTF-8, or probabilities that are not finite (NaN or infinite, from \
broken weights), stop predict with an error naming the stdin line and a non-zero exit; \
the lines before it have already been answered.")]
pub struct PredictArgs {
    #[command(flatten)]
    model: crate::model_args::ModelArgs,
    /// Output: `plain` (`label<TAB>probability`) or `jsonl` (every class's probability and the
    /// input line number).
    #[arg(long, value_enum, default_value_t = PredictFormat::Plain)]
    format: PredictFormat,
}

/// What an empty line is answered with.
fn empty(predictor: &Predictor, line: usize, format: PredictFormat, truncated: bool) -> String {
    match format {
        PredictFormat::Plain => String::new(),
        PredictFormat::Jsonl => numbered(line, predictor.empty_json(), truncated),
    }
}

/// `{"line": N, …answer…}`, with `"truncated": true` when the line was cut.
fn numbered(line: usize, answer: Value, truncated: bool) -> String {
    let mut v = json!({ "line": line });
    if let (Some(o), Value::Object(a)) = (v.as_object_mut(), answer) {
        o.extend(a);
    }
    if truncated {
        v["truncated"] = json!(true);
    }
    v.to_string()
}

/// One answer in `format`.
fn render(p: &TaskPrediction, line: usize, format: PredictFormat, truncated: bool) -> String {
    match format {
        PredictFormat::Plain => p.to_line(),
        PredictFormat::Jsonl => numbered(line, p.to_json(), truncated),
    }
}

/// `whetstone predict`.
pub fn predict(a: PredictArgs) -> Result<()> {
    let m = &a.model;
    let predictor = Predictor::open(&m.dir(), m.device.as_deref(), m.precision, m.task.as_deref())?;
    let max_len = predictor.max_len();
    let bound = char_bound(max_len);
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    answer_lines(&predictor, &mut input, &mut out, bound, a.format)
}

/// Answers each line of `input` on `out`, flushing after each.
fn answer_lines(predictor: &Predictor, input: &mut dyn BufRead, out: &mut dyn Write, bound: usize, format: PredictFormat) -> Result<()> {
    let mut n = 0usize;
    loop {
        n += 1;
        let Some(line) = read_line_bounded(input, bound).with_context(|| format!("reading stdin line {n}"))? else {
            return Ok(());
        };
        if line.truncated {
            eprintln!("whetstone predict: stdin line {n} is longer than {bound} characters; only its first {bound} are used");
        }
        let answer = if line.text.trim().is_empty() {
            empty(predictor, n, format, line.truncated)
        } else {
            let p = predictor.predict(&[line.text]).with_context(|| format!("stdin line {n}"))?.pop().context("the model returned no prediction")?;
            render(&p, n, format, line.truncated)
        };
        writeln!(out, "{answer}").and_then(|()| out.flush()).context("writing to stdout")?;
    }
}
