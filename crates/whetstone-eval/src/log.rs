//! Append-only JSON-Lines metrics log (`metrics.jsonl`).
//!
//! One self-describing JSON object per line is robust to crashes (every
//! complete line stays parseable), trivially appendable on resume, and
//! readable by `pandas.read_json(lines=True)` / `jq`. With
//! [`MetricsLog::with_tfevents`] the numeric fields of every record also go to a TensorBoard
//! event file (see [`crate::tfevents`]).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::fs::{create_parent_dir, io_err};
use crate::tfevents::TfEventsWriter;
use crate::EvalError;

/// Writer for a `metrics.jsonl` file; each [`MetricsLog::write`] is flushed
/// immediately so the log survives a killed process.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
    /// The TensorBoard event file the records' scalars are mirrored into, if any.
    events: Option<TfEventsWriter>,
}

impl MetricsLog {
    /// Create (or truncate) the log at `path`, creating parent directories.
    ///
    /// # Errors
    /// [`EvalError::Io`] naming the path.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, EvalError> {
        let path = path.as_ref();
        create_parent_dir(path)?;
        let file = File::create(path).map_err(|e| io_err(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            events: None,
        })
    }

    /// Open the log at `path` for appending (creating it if absent), used when
    /// resuming a run. If a crash left a partial last line, a newline is
    /// written first so new records start on their own line.
    ///
    /// # Errors
    /// [`EvalError::Io`] naming the path.
    pub fn append(path: impl AsRef<Path>) -> Result<Self, EvalError> {
        let path = path.as_ref();
        create_parent_dir(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        let len = file.metadata().map_err(|e| io_err(path, e))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(|e| io_err(path, e))?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(|e| io_err(path, e))?;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            events: None,
        })
    }

    /// Also write the scalars of every record (its numeric fields, tagged `split/field`, at its
    /// `step`; see [`crate::tfevents::record_scalars`]) to `events`, so TensorBoard shows the
    /// curves.
    pub fn with_tfevents(mut self, events: TfEventsWriter) -> Self {
        self.events = Some(events);
        self
    }

    /// Path of the underlying file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of the TensorBoard event file the records are mirrored into, if any.
    pub fn tfevents_path(&self) -> Option<&Path> {
        self.events.as_ref().map(TfEventsWriter::path)
    }

    /// Write `record` as one compact JSON line and flush it.
    ///
    /// # Errors
    /// [`EvalError::Serialize`] or [`EvalError::Io`] naming the log path.
    pub fn write(&mut self, record: &serde_json::Value) -> Result<(), EvalError> {
        let mut line = serde_json::to_vec(record).map_err(|source| EvalError::Serialize {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        // A single write_all of the whole line keeps records atomic with
        // respect to other appenders in practice (O_APPEND).
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(|e| io_err(&self.path, e))?;
        match &mut self.events {
            Some(events) => events.add_record(record),
            None => Ok(()),
        }
    }
}

/// Read every non-blank line of a JSONL file as a JSON value.
///
/// # Errors
/// [`EvalError::Io`] naming the path, or [`EvalError::JsonLine`] naming the
/// path and the 1-based line of the first malformed record.
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<serde_json::Value>, EvalError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| io_err(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line).map_err(|source| EvalError::JsonLine {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        out.push(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/metrics.jsonl");
        let records = vec![
            json!({"step": 1, "train_loss": 0.69, "lr": 1e-3}),
            json!({"step": 2, "valid": {"accuracy": 0.5, "mcc": 0.0}, "note": "a \"quoted\"\nline"}),
        ];
        let mut log = MetricsLog::create(&path).unwrap();
        for r in &records {
            log.write(r).unwrap();
        }
        // Flushed: readable without dropping the writer.
        assert_eq!(read_jsonl(&path).unwrap(), records);
        drop(log);

        let mut log = MetricsLog::append(&path).unwrap();
        log.write(&json!({"step": 3})).unwrap();
        let back = read_jsonl(&path).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2]["step"], 3);

        // create truncates.
        MetricsLog::create(&path).unwrap();
        assert!(read_jsonl(&path).unwrap().is_empty());
    }

    #[test]
    fn records_are_mirrored_into_tensorboard_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::create(dir.path().join("metrics.jsonl"))
            .unwrap()
            .with_tfevents(TfEventsWriter::create(dir.path()).unwrap());
        log.write(&json!({"split": "train", "step": 10, "epoch": 1, "loss": 0.5, "lr": 2e-5, "seq_per_s": 100.0}))
            .unwrap();
        log.write(&json!({"event": "resume", "step": 10})).unwrap();
        log.write(&json!({"split": "valid", "step": 10, "epoch": 1, "accuracy": 0.75, "loss": 0.6}))
            .unwrap();
        let events = crate::tfevents::read_events(log.tfevents_path().unwrap()).unwrap();
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(events[1..].iter().all(|e| e.step == 10));
        let tags: Vec<&str> = events[1..]
            .iter()
            .flat_map(|e| e.scalars.iter().map(|(t, _)| t.as_str()))
            .collect();
        assert_eq!(tags, ["train/loss", "train/lr", "train/seq_per_s", "valid/accuracy", "valid/loss"]);
        assert_eq!(events[2].scalars[0].1, 0.75);
    }

    #[test]
    fn append_after_partial_line_starts_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"step\":1}\n{\"step\":2}").unwrap();
        MetricsLog::append(&path)
            .unwrap()
            .write(&json!({"step": 3}))
            .unwrap();
        let steps: Vec<_> = read_jsonl(&path)
            .unwrap()
            .iter()
            .map(|v| v["step"].clone())
            .collect();
        assert_eq!(steps, vec![json!(1), json!(2), json!(3)]);
    }

    #[test]
    fn bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"step\":1}\n\n{\"step\":\n{\"step\":4}\n").unwrap();
        let err = read_jsonl(&path).unwrap_err();
        assert!(
            matches!(err, EvalError::JsonLine { line: 3, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("line 3") && msg.contains("metrics.jsonl"),
            "{msg}"
        );

        let missing = dir.path().join("missing.jsonl");
        assert!(read_jsonl(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.jsonl"));
    }
}
