//! Checks made before and while a table is read, so that wrong data fails loudly at load
//! time instead of training silently: the path is a file that fits in memory, the bytes are
//! UTF-8 (with the likely encoding named when not), header names are unique, text and label
//! come from different columns, and the training data has at least two classes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::table::{RawExample, TableSpec};

/// Reading a table holds the file's bytes and the parsed strings at once: about this many
/// times the file's size.
pub const MEMORY_FACTOR: u64 = 2;

/// The path must be an existing regular file; returns its size in bytes.
pub fn check_file(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if meta.is_dir() {
        return Err(DataError::IsDirectory { path: path.to_path_buf() });
    }
    Ok(meta.len())
}

/// Available memory in bytes (`MemAvailable` of `/proc/meminfo`); `None` where unknown (not
/// Linux, or an old kernel).
pub fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&info)
}

fn parse_mem_available(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let n: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        Some("kB") | Some("KB") => 1024,
        Some("mB") | Some("MB") => 1024 * 1024,
        None => 1,
        _ => 1024,
    };
    n.checked_mul(unit)
}

/// A file of `size` bytes must fit, [`MEMORY_FACTOR`] times, in `available` bytes (no check
/// when `available` is unknown).
pub fn check_memory(path: &Path, size: u64, available: Option<u64>) -> Result<()> {
    match available {
        Some(avail) if size.saturating_mul(MEMORY_FACTOR) > avail => Err(DataError::TooLarge {
            file: path.to_path_buf(),
            size: human_bytes(size),
            available: human_bytes(avail),
        }),
        _ => Ok(()),
    }
}

/// `1536` → `"1.5 KiB"`.
pub fn human_bytes(n: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Fails on a file that is UTF-16 (by byte-order mark, or by the NUL bytes every other byte
/// that ASCII text in UTF-16 has) before any parser sees it.
pub fn check_not_utf16(path: &Path, bytes: &[u8]) -> Result<()> {
    let utf16 = |which: &str| DataError::InvalidUtf8 {
        file: path.to_path_buf(),
        line: 1,
        column: "(whole file)".to_string(),
        hint: format!(
            "the file looks like {which}; convert it with `iconv -f UTF-16 -t UTF-8 {} > converted.csv`",
            path.display()
        ),
    };
    if bytes.starts_with(b"\xFF\xFE") {
        return Err(utf16("UTF-16 little-endian (byte-order mark FF FE)"));
    }
    if bytes.starts_with(b"\xFE\xFF") {
        return Err(utf16("UTF-16 big-endian (byte-order mark FE FF)"));
    }
    let head = &bytes[..bytes.len().min(4096)];
    if head.len() >= 4 {
        let nul_at = |parity: usize| head.iter().skip(parity).step_by(2).filter(|&&b| b == 0).count();
        let half = head.len() / 2;
        if nul_at(1) * 10 >= half * 4 && nul_at(0) * 10 < half {
            return Err(utf16("UTF-16 little-endian (a NUL after every other byte)"));
        }
        if nul_at(0) * 10 >= half * 4 && nul_at(1) * 10 < half {
            return Err(utf16("UTF-16 big-endian (a NUL before every other byte)"));
        }
    }
    Ok(())
}

/// What undecodable bytes probably are and how to convert the file.
pub fn encoding_hint(path: &Path, bad: &[u8]) -> String {
    let (name, iconv) = if bad.iter().any(|&b| (0x80..=0x9F).contains(&b)) {
        ("Windows-1252", "WINDOWS-1252")
    } else if bad.contains(&0) {
        ("UTF-16 (NUL bytes inside the text)", "UTF-16")
    } else {
        ("Latin-1 (ISO-8859-1)", "LATIN1")
    };
    format!(
        "the file looks like {name}; convert it with `iconv -f {iconv} -t UTF-8 {} > converted{}`",
        path.display(),
        path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default()
    )
}

/// Header names must be unique: a lookup by name would otherwise silently take the first.
pub fn check_header(path: &Path, columns: &[String]) -> Result<()> {
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in columns.iter().enumerate() {
        if let Some(&f) = first.get(c.as_str()) {
            return Err(DataError::DuplicateColumn {
                file: path.to_path_buf(),
                name: c.clone(),
                first: f + 1,
                second: i + 1,
            });
        }
        first.insert(c, i);
    }
    Ok(())
}

/// Text and label must be different columns.
pub fn check_spec(spec: &TableSpec) -> Result<()> {
    if spec.text_col == spec.label_col {
        return Err(DataError::SameColumn {
            file: spec.path.clone(),
            column: spec.text_col.clone(),
        });
    }
    Ok(())
}

/// Training data must hold at least two classes.
pub fn check_classes(source_name: &str, column: &str, rows: &[RawExample]) -> Result<()> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.label.as_str()).or_default() += 1;
    }
    if counts.len() >= 2 {
        return Ok(());
    }
    let found = match counts.iter().next() {
        Some((label, n)) => format!("only one class, `{label}` ({n} examples)"),
        None => "no labelled examples".to_string(),
    };
    Err(DataError::TooFewClasses {
        source_name: source_name.to_string(),
        column: column.to_string(),
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_parsed() {
        let info = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(parse_mem_available(info), Some(8_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn file_larger_than_memory_is_refused_before_reading() {
        let p = Path::new("big.csv");
        let err = check_memory(p, 3 << 30, Some(4 << 30)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::TooLarge { .. }), "{err:?}");
        assert!(msg.contains("big.csv") && msg.contains("3.0 GiB") && msg.contains("4.0 GiB"), "{msg}");
        check_memory(p, 1 << 30, Some(4 << 30)).unwrap();
        check_memory(p, u64::MAX, None).unwrap();
    }

    #[test]
    fn utf16_is_recognised() {
        let p = Path::new("d.csv");
        let le: Vec<u8> = "text,label\nhi,1\n".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let msg = check_not_utf16(p, &le).unwrap_err().to_string();
        assert!(msg.contains("UTF-16 little-endian") && msg.contains("iconv -f UTF-16 -t UTF-8"), "{msg}");
        let be: Vec<u8> = [0xFE, 0xFF].into_iter().chain("t,l\n".encode_utf16().flat_map(|u| u.to_be_bytes())).collect();
        assert!(check_not_utf16(p, &be).unwrap_err().to_string().contains("big-endian"));
        check_not_utf16(p, b"text,label\nhi,1\n").unwrap();
        check_not_utf16(p, b"a\0b").unwrap();
    }
}
