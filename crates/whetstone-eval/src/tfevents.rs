//! TensorBoard event files (`events.out.tfevents.*`), written without TensorFlow.
//!
//! TensorBoard reads every event file in a folder (`tensorboard --logdir runs/` shows one curve
//! per run folder). A file is a sequence of records,
//!
//! ```text
//! u64 length (little-endian) | u32 masked crc32c(length bytes) | data | u32 masked crc32c(data)
//! ```
//!
//! with `masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`, each record's data a serialised
//! `tensorflow.Event` protobuf: `wall_time` (field 1, double), `step` (2, int64) and either
//! `file_version` (3, string `brain.Event:2`, the first record) or `summary` (5, a `Summary`
//! whose repeated `value` (1) are `Value { tag = 1 (string); simple_value = 2 (float) }`).
//! The protobuf is small enough to encode (and, for the tests and for truncation on resume,
//! decode) by hand; CRC-32C is the table-driven Castagnoli CRC.
//!
//! [`crate::MetricsLog`] mirrors every numeric field of its records into a [`TfEventsWriter`]
//! (see [`record_scalars`]), so a training run's curves appear in TensorBoard as
//! `train/loss`, `train/lr`, `valid/accuracy`, ….

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fs::io_err;
use crate::EvalError;

/// The start of every event file's name (TensorBoard only reads files whose name contains
/// `tfevents`).
pub const TFEVENTS_PREFIX: &str = "events.out.tfevents.";
/// The end of the names of the event files whetstone writes (other writers' files in a run
/// folder are never touched).
pub const TFEVENTS_SUFFIX: &str = ".whetstone";
/// The version string of the first record of every event file.
pub const FILE_VERSION: &str = "brain.Event:2";

// ---------------------------------------------------------------------------------------------
// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78.

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC32C_TABLE: [u32; 256] = crc32c_table();

/// CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = CRC32C_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The masked CRC-32C TFRecord files store (a CRC of data that holds CRCs is weak otherwise).
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
}

// ---------------------------------------------------------------------------------------------
// Protobuf encoding of `tensorflow.Event`.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, ((field as u64) << 3) | wire as u64);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One event: the file-version header, or scalars at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The global step.
    pub step: i64,
    /// `Some("brain.Event:2")` in the first record of a file.
    pub file_version: Option<String>,
    /// `(tag, simple_value)` pairs of the event's summary (empty for the header).
    pub scalars: Vec<(String, f32)>,
}

impl Event {
    /// The serialised `tensorflow.Event` (proto3: a zero `step` is left out, as protobuf does).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 24 * self.scalars.len());
        put_key(&mut out, 1, 1);
        out.extend_from_slice(&self.wall_time.to_le_bytes());
        if self.step != 0 {
            put_key(&mut out, 2, 0);
            put_varint(&mut out, self.step as u64);
        }
        if let Some(v) = &self.file_version {
            put_bytes(&mut out, 3, v.as_bytes());
        }
        if !self.scalars.is_empty() {
            let mut summary = Vec::new();
            for (tag, value) in &self.scalars {
                let mut v = Vec::with_capacity(tag.len() + 8);
                put_bytes(&mut v, 1, tag.as_bytes());
                put_key(&mut v, 2, 5);
                v.extend_from_slice(&value.to_le_bytes());
                put_bytes(&mut summary, 1, &v);
            }
            put_bytes(&mut out, 5, &summary);
        }
        out
    }

    /// Decode what [`Event::encode`] writes (other fields are skipped); `None` when the bytes
    /// are not a well-formed protobuf message.
    pub fn decode(bytes: &[u8]) -> Option<Event> {
        let mut e = Event { wall_time: 0.0, step: 0, file_version: None, scalars: Vec::new() };
        for (field, value) in Fields::new(bytes) {
            match (field?, value) {
                (1, Value::Fixed64(b)) => e.wall_time = f64::from_le_bytes(b),
                (2, Value::Varint(v)) => e.step = v as i64,
                (3, Value::Bytes(b)) => e.file_version = Some(String::from_utf8(b.to_vec()).ok()?),
                (5, Value::Bytes(summary)) => {
                    for (f, v) in Fields::new(summary) {
                        if let (1, Value::Bytes(value)) = (f?, v) {
                            let (mut tag, mut simple) = (String::new(), 0f32);
                            for (g, w) in Fields::new(value) {
                                match (g?, w) {
                                    (1, Value::Bytes(t)) => tag = String::from_utf8(t.to_vec()).ok()?,
                                    (2, Value::Fixed32(x)) => simple = f32::from_le_bytes(x),
                                    _ => {}
                                }
                            }
                            e.scalars.push((tag, simple));
                        }
                    }
                }
                _ => {}
            }
        }
        Some(e)
    }
}

enum Value<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
    /// A malformed field: iteration stops after it.
    Bad,
}

/// The fields of a protobuf message: `(Some(field), value)`, or `(None, Bad)` once when the bytes
/// are malformed.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes, failed: false }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.rest.split_first()?;
            self.rest = rest;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    fn field(&mut self) -> Option<(u32, Value<'a>)> {
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(self.take(8)?.try_into().ok()?),
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(self.take(4)?.try_into().ok()?),
            _ => return None,
        };
        Some(((key >> 3) as u32, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (Option<u32>, Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match self.field() {
            Some((f, v)) => Some((Some(f), v)),
            None => {
                self.failed = true;
                Some((None, Value::Bad))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records.

/// `data` framed as one TFRecord.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// The data of each complete, intact record of `bytes`, with the offset just past it. Stops at
/// the first short or corrupt record (a killed writer's torn last record).
pub fn read_records(bytes: &[u8]) -> Vec<(&[u8], usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= 12 {
        let len_bytes = &bytes[at..at + 8];
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap_or_default());
        if crc != masked_crc32c(len_bytes) {
            break;
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
        let Some(end) = usize::try_from(len).ok().and_then(|n| (at + 12).checked_add(n)).filter(|e| e + 4 <= bytes.len()) else {
            break;
        };
        let data = &bytes[at + 12..end];
        if u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap_or_default()) != masked_crc32c(data) {
            break;
        }
        at = end + 4;
        out.push((data, at));
    }
    out
}

/// Every intact event of the event file at `path`.
///
/// # Errors
/// [`EvalError::Io`] naming the path.
pub fn read_events(path: impl AsRef<Path>) -> Result<Vec<Event>, EvalError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    Ok(read_records(&bytes).into_iter().filter_map(|(d, _)| Event::decode(d)).collect())
}

/// The scalars TensorBoard should show for a metrics-log record: every numeric field of a
/// record with a `split` and a `step`, tagged `split/field` (nested objects flattened as
/// `split/field/inner`), except `step` and `epoch`. Records without a split (events such as
/// `resume`) give nothing.
pub fn record_scalars(record: &serde_json::Value) -> Option<(i64, Vec<(String, f32)>)> {
    let split = record.get("split")?.as_str()?;
    let step = i64::try_from(record.get("step")?.as_u64()?).ok()?;
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f32)>) {
        match v {
            serde_json::Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push((prefix.to_string(), x as f32));
                }
            }
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    walk(&format!("{prefix}/{k}"), v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (k, v) in record.as_object()? {
        if !matches!(k.as_str(), "split" | "step" | "epoch") {
            walk(&format!("{split}/{k}"), v, &mut out);
        }
    }
    Some((step, out))
}

// ---------------------------------------------------------------------------------------------
// The writer.

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's name, for event file names (characters other than ASCII letters, digits,
/// `-` and `_` replaced).
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = raw.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// The whetstone event files in `dir`, oldest first (by the seconds in their names).
///
/// # Errors
/// [`EvalError::Io`] naming the folder (a missing folder has none).
pub fn event_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, EvalError> {
    let dir = dir.as_ref();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| io_err(dir, e))?.file_name().to_string_lossy().to_string();
        if name.starts_with(TFEVENTS_PREFIX) && name.ends_with(TFEVENTS_SUFFIX) {
            let secs: u64 = name[TFEVENTS_PREFIX.len()..].split('.').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            files.push((secs, name));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, n)| dir.join(n)).collect())
}

/// Appends events to one TensorBoard event file, each flushed at once (TensorBoard shows a
/// live run, and a killed run keeps every complete record).
#[derive(Debug)]
pub struct TfEventsWriter {
    path: PathBuf,
    file: File,
}

impl TfEventsWriter {
    /// Start a new event file in `dir` (created if needed),
    /// `events.out.tfevents.<secs>.<hostname>.<pid>.whetstone`, with its version header. Older
    /// whetstone event files in `dir` are removed: the folder's curves are this run's, as
    /// [`crate::MetricsLog::create`] truncates `metrics.jsonl`.
    ///
    /// # Errors
    /// [`EvalError::Io`] naming the file or folder.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, EvalError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        for old in event_files(dir)? {
            std::fs::remove_file(&old).map_err(|e| io_err(&old, e))?;
        }
        let wall = now();
        let path = dir.join(format!("{TFEVENTS_PREFIX}{}.{}.{}{TFEVENTS_SUFFIX}", wall as u64, hostname(), std::process::id()));
        let file = File::create(&path).map_err(|e| io_err(&path, e))?;
        let mut w = Self { path, file };
        w.write_event(&Event { wall_time: wall, step: 0, file_version: Some(FILE_VERSION.into()), scalars: Vec::new() })?;
        Ok(w)
    }

    /// Continue the run in `dir` that was resumed from its checkpoint at `step`: every whetstone
    /// event file there keeps only its events up to `step` (a killed run may have logged past
    /// its checkpoint; torn last records go too), and new events are appended to the newest
    /// file. Without one (a run from before event files), a new file is started.
    ///
    /// # Errors
    /// [`EvalError::Io`] naming the file or folder.
    pub fn resume(dir: impl AsRef<Path>, step: u64) -> Result<Self, EvalError> {
        let dir = dir.as_ref();
        let files = event_files(dir)?;
        let Some(newest) = files.last().cloned() else {
            return Self::create(dir);
        };
        for path in &files {
            let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
            let mut kept = Vec::with_capacity(bytes.len());
            for (data, _) in read_records(&bytes) {
                if Event::decode(data).is_none_or(|e| e.step <= step as i64) {
                    kept.extend_from_slice(&frame_record(data));
                }
            }
            if kept.len() != bytes.len() {
                crate::write_atomic(path, &kept).map_err(|e| io_err(path, e))?;
            }
        }
        let file = OpenOptions::new().append(true).open(&newest).map_err(|e| io_err(&newest, e))?;
        Ok(Self { path: newest, file })
    }

    /// Path of the event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `event` as one record and flush it.
    ///
    /// # Errors
    /// [`EvalError::Io`] naming the file.
    pub fn write_event(&mut self, event: &Event) -> Result<(), EvalError> {
        let record = frame_record(&event.encode());
        self.file.write_all(&record).and_then(|_| self.file.flush()).map_err(|e| io_err(&self.path, e))
    }

    /// Append `scalars` at `step`, stamped now (nothing is written for no scalars).
    ///
    /// # Errors
    /// [`EvalError::Io`] naming the file.
    pub fn add_scalars(&mut self, step: i64, scalars: Vec<(String, f32)>) -> Result<(), EvalError> {
        if scalars.is_empty() {
            return Ok(());
        }
        self.write_event(&Event { wall_time: now(), step, file_version: None, scalars })
    }

    /// Append the scalars of a metrics-log record (see [`record_scalars`]).
    ///
    /// # Errors
    /// [`EvalError::Io`] naming the file.
    pub fn add_record(&mut self, record: &serde_json::Value) -> Result<(), EvalError> {
        match record_scalars(record) {
            Some((step, scalars)) => self.add_scalars(step, scalars),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value (RFC 3720, and every CRC catalogue).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // iSCSI test vector: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    /// Records byte for byte as TensorBoard's own writer frames them (produced once with
    /// `tensorboard.summary.writer.record_writer.RecordWriter` and `event_pb2.Event`).
    #[test]
    fn records_match_tensorboards_writer() {
        let header = Event { wall_time: 1.5, step: 0, file_version: Some(FILE_VERSION.into()), scalars: vec![] };
        assert_eq!(frame_record(&header.encode()), hex("1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a322a28646c"));
        let scalars = Event { wall_time: 2.0, step: 7, file_version: None, scalars: vec![("train/loss".into(), 0.25), ("train/lr".into(), 1e-3)] };
        let framed = frame_record(&scalars.encode());
        assert_eq!(framed, hex("31000000000000009d8383e909000000000000004010072a240a110a0a747261696e2f6c6f7373150000803e0a0f0a08747261696e2f6c72156f12833ae4d520cc"));

        // And they read back.
        let mut both = frame_record(&header.encode());
        both.extend_from_slice(&framed);
        let back: Vec<Event> = read_records(&both).into_iter().map(|(d, _)| Event::decode(d).unwrap()).collect();
        assert_eq!(back, vec![header, scalars]);
    }

    #[test]
    fn large_steps_and_negative_steps_round_trip() {
        for step in [1i64, 127, 128, 300, 1 << 40, -1] {
            let e = Event { wall_time: 3.25, step, file_version: None, scalars: vec![("valid/accuracy".into(), 0.5)] };
            assert_eq!(Event::decode(&e.encode()).unwrap(), e);
        }
    }

    #[test]
    fn a_torn_or_corrupt_record_ends_reading() {
        let a = frame_record(&Event { wall_time: 1.0, step: 1, file_version: None, scalars: vec![("t/x".into(), 1.0)] }.encode());
        let b = frame_record(&Event { wall_time: 2.0, step: 2, file_version: None, scalars: vec![("t/x".into(), 2.0)] }.encode());
        let mut bytes = [a.clone(), b.clone()].concat();
        assert_eq!(read_records(&bytes).len(), 2);
        assert_eq!(read_records(&bytes[..bytes.len() - 1]).len(), 1, "torn last record");
        let at = a.len() + 14;
        bytes[at] ^= 1;
        assert_eq!(read_records(&bytes).len(), 1, "corrupt data");
        assert!(read_records(&[]).is_empty());
    }

    #[test]
    fn record_scalars_takes_the_numeric_fields_of_a_split() {
        let (step, s) = record_scalars(&json!({"split": "train", "step": 40, "epoch": 2, "loss": 0.5, "lr": 1e-3, "note": "x", "flag": true})).unwrap();
        assert_eq!(step, 40);
        let mut tags: Vec<_> = s.iter().map(|(t, _)| t.as_str()).collect();
        tags.sort();
        assert_eq!(tags, ["train/loss", "train/lr"]);
        let (_, s) = record_scalars(&json!({"split": "valid", "step": 3, "tasks": {"sst2": {"accuracy": 0.75}}})).unwrap();
        assert_eq!(s, vec![("valid/tasks/sst2/accuracy".to_string(), 0.75)]);
        assert!(record_scalars(&json!({"event": "resume", "step": 3})).is_none());
    }

    #[test]
    fn create_resume_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.out.tfevents.1.other.1"), b"not ours").unwrap();
        let mut w = TfEventsWriter::create(dir.path()).unwrap();
        let name = w.path().file_name().unwrap().to_string_lossy().to_string();
        assert!(name.starts_with(TFEVENTS_PREFIX) && name.ends_with(TFEVENTS_SUFFIX), "{name}");
        for step in 1..=5 {
            w.add_record(&json!({"split": "train", "step": step, "loss": 1.0 / step as f64})).unwrap();
        }
        w.add_record(&json!({"event": "resume", "step": 2})).unwrap();
        drop(w);
        let path = event_files(dir.path()).unwrap().pop().unwrap();
        // A torn record at the end, as a kill mid-write leaves.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        drop(f);
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 6);
        assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
        assert_eq!(events[3].scalars, vec![("train/loss".to_string(), 1.0 / 3.0)]);

        // Resumed from the checkpoint at step 3: steps 4 and 5 go, new ones append.
        let mut w = TfEventsWriter::resume(dir.path(), 3).unwrap();
        assert_eq!(w.path(), path);
        w.add_scalars(4, vec![("train/loss".into(), 9.0)]).unwrap();
        let steps: Vec<i64> = read_events(&path).unwrap().iter().map(|e| e.step).collect();
        assert_eq!(steps, [0, 1, 2, 3, 4]);
        assert_eq!(read_events(&path).unwrap()[4].scalars[0].1, 9.0);
        // The other writer's file is untouched; a fresh start replaces only whetstone's.
        drop(w);
        let w = TfEventsWriter::create(dir.path()).unwrap();
        assert_eq!(event_files(dir.path()).unwrap(), vec![w.path().to_path_buf()]);
        assert_eq!(std::fs::read(dir.path().join("events.out.tfevents.1.other.1")).unwrap(), b"not ours");
        assert_eq!(read_events(w.path()).unwrap().len(), 1);
    }
}
