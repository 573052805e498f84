//! The local data cache: where named datasets and models live once fetched, and how to tell
//! whether one is already there.
//!
//! Finding data in the cache needs no network, no subprocess and no checksum code: a marker
//! file written after a verified fetch records the digest. Downloading is the `fetch` feature
//! (on by default, [`crate::fetch()`]); without it, [`obtain`] only finds what is cached.
//!
//! Extracted files are not trusted blindly on later use: beside the marker, a record
//! ([`RECORD_FILE`]) holds each extracted file's size, modification time and sha256. Every
//! use compares size and mtime (one `stat` per file); a file whose size or mtime changed is
//! re-hashed, and refused, naming the file and how to refetch it, when its hash differs too.
//! [`verify_cached`] re-hashes everything (`whetstone data --verify`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::manifest::DatasetEntry;

/// Name of the marker file, inside `<cache>/<package>-<version>/`, holding the verified sha256.
pub const MARKER_FILE: &str = ".verified-sha256";

/// Name of the record, beside [`MARKER_FILE`], of every extracted file's size, modification
/// time and sha256 (JSON).
pub const RECORD_FILE: &str = ".verified-files.json";

/// What the record says of one extracted file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileRecord {
    /// Size in bytes.
    size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 when the platform has none).
    mtime_ns: u64,
    /// Lowercase hex sha256 of the content.
    sha256: String,
}

/// The record: relative path (with `/`) to what was extracted there.
type Record = BTreeMap<String, FileRecord>;

/// The data cache: `$WHETSTONE_DATA` if set, else `~/.cache/whetstone/data`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WHETSTONE_DATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache").join("whetstone").join("data")
}

/// The directory one package version is extracted into.
pub fn package_dir(entry: &DatasetEntry, cache: &Path) -> PathBuf {
    cache.join(format!("{}-{}", entry.package, entry.version))
}

/// `entry`'s data under `cache` if it is there already (every file, and a marker with the
/// manifest's sha256): the data file for a table, the folder for a model.
pub fn cached(entry: &DatasetEntry, cache: &Path) -> Result<Option<PathBuf>> {
    let dir = package_dir(entry, cache);
    let members = members(entry)?;
    let result_path = dir.join(safe_relative(&entry.name, &entry.path)?);
    let all_there = members.iter().all(|m| if is_pattern(m) { m.parent().is_some_and(|d| dir.join(d).is_dir()) } else { dir.join(m).is_file() });
    if !(all_there && marker_matches(&dir.join(MARKER_FILE), &entry.sha256)) {
        return Ok(None);
    }
    check_record(entry, &dir, &members)?;
    Ok(Some(result_path))
}

/// The error for a cached file that is no longer what was extracted: it names the file, the
/// dataset and the two ways to fix it.
fn changed(entry: &DatasetEntry, dir: &Path, file: &Path, what: String) -> DataError {
    DataError::Io {
        path: file.to_path_buf(),
        error: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{what}; the cached dataset `{name}` cannot be trusted: fetch it again with `whetstone data {name} --refetch` (or delete {dir})",
                name = entry.name,
                dir = dir.display()
            ),
        ),
    }
}

/// Size and modification time (ns since the epoch) of `path`.
fn stat(path: &Path) -> Result<(u64, u64)> {
    let meta = fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Ok((meta.len(), mtime))
}

/// The sha256 of `path`, or `None` in a build without the `fetch` feature (no hashing code).
fn hash(path: &Path) -> Result<Option<String>> {
    #[cfg(feature = "fetch")]
    {
        crate::fetch::sha256_hex(path).map(Some)
    }
    #[cfg(not(feature = "fetch"))]
    {
        let _ = path;
        Ok(None)
    }
}

/// The files `members` name under `dir` (patterns expanded against the folder's contents),
/// as `/`-separated relative paths, sorted.
fn member_files(dir: &Path, members: &[PathBuf]) -> Result<Vec<String>> {
    let slash = |p: &Path| p.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
    let mut out = Vec::new();
    for m in members {
        if !is_pattern(m) {
            out.push(slash(m));
            continue;
        }
        let folder = m.parent().unwrap_or(Path::new(""));
        let pattern = m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let abs = dir.join(folder);
        for e in fs::read_dir(&abs).map_err(|e| DataError::io(&abs, e))? {
            let e = e.map_err(|e| DataError::io(&abs, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_file() && wildcard_match(&pattern, &name) {
                out.push(slash(&folder.join(&name)));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Record size, mtime and sha256 of the extracted `files` under `dir` in [`RECORD_FILE`]
/// (atomically). Called right after extraction, and once for a cache extracted before records
/// existed.
pub(crate) fn write_record(dir: &Path, files: &[String]) -> Result<()> {
    // Entries sharing a package (rotten-tomatoes and imdb) share its record: merge.
    let mut record: Record = fs::read_to_string(dir.join(RECORD_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    for f in files {
        let path = dir.join(f);
        let (size, mtime_ns) = stat(&path)?;
        let Some(sha256) = hash(&path)? else { return Ok(()) };
        record.insert(f.clone(), FileRecord { size, mtime_ns, sha256 });
    }
    save_record(dir, &record)
}

fn save_record(dir: &Path, record: &Record) -> Result<()> {
    let path = dir.join(RECORD_FILE);
    let text = serde_json::to_string_pretty(record).map_err(|e| DataError::InvalidArgument(format!("{}: {e}", path.display())))?;
    whetstone_eval::write_atomic(&path, text.as_bytes()).map_err(|e| DataError::io(&path, e))
}

/// The record of `dir`, `None` when there is none yet.
fn load_record(entry: &DatasetEntry, dir: &Path) -> Result<Option<Record>> {
    let path = dir.join(RECORD_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| changed(entry, dir, &path, format!("the record of the extracted files is unreadable ({e})"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DataError::io(&path, e)),
    }
}

/// The cheap check on every use: each recorded file exists with its recorded size and mtime,
/// or (re-hashed) its recorded sha256, and no unrecorded file matches a pattern member. A cache
/// extracted before records existed gets its record now (its files were trusted until now).
fn check_record(entry: &DatasetEntry, dir: &Path, members: &[PathBuf]) -> Result<()> {
    let files = member_files(dir, members)?;
    let Some(mut record) = load_record(entry, dir)? else {
        // Best effort (a read-only cache stays usable, unchecked as before records existed).
        let _ = write_record(dir, &files);
        return Ok(());
    };
    let unrecorded: Vec<String> = files.iter().filter(|f| !record.contains_key(*f)).cloned().collect();
    if !unrecorded.is_empty() {
        // A named member of another entry of the same package, extracted before records
        // existed, is recorded now; a file that only a pattern matches was not extracted.
        let named: Vec<String> = members.iter().filter(|m| !is_pattern(m)).map(|m| m.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")).collect();
        if let Some(extra) = unrecorded.iter().find(|f| !named.contains(f)) {
            return Err(changed(entry, dir, &dir.join(extra), "this file was not extracted from the verified package".into()));
        }
        let _ = write_record(dir, &unrecorded);
        record = load_record(entry, dir)?.unwrap_or(record);
    }
    let mut touched = false;
    for (name, rec) in record.iter_mut() {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(changed(entry, dir, &path, "this extracted file is missing".into()));
        }
        let (size, mtime_ns) = stat(&path)?;
        if size == rec.size && mtime_ns == rec.mtime_ns {
            continue;
        }
        match hash(&path)? {
            Some(h) if h == rec.sha256 => {
                // Same content, new mtime (copied, touched): remember it so the next use is cheap.
                rec.size = size;
                rec.mtime_ns = mtime_ns;
                touched = true;
            }
            Some(h) => return Err(changed(entry, dir, &path, format!("changed since it was extracted (sha256 {h}, recorded {})", rec.sha256))),
            None => return Err(changed(entry, dir, &path, format!("size or modification time changed since it was extracted ({size} bytes, recorded {}), and this build (without the `fetch` feature) cannot re-hash it", rec.size))),
        }
    }
    if touched {
        // Best effort: a read-only cache is still usable, only re-hashed next time.
        let _ = save_record(dir, &record);
    }
    Ok(())
}

/// What [`verify_cached`] found for a dataset whose data is in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The data file (a table) or folder (a model or corpus).
    pub path: PathBuf,
    /// How many extracted files were re-hashed.
    pub files: usize,
}

/// Re-hash every extracted file of `entry` under `cache` against its record (the full check
/// of `whetstone data --verify`). `Ok(None)` when the dataset is not in the cache; an error
/// naming the first file that changed. Needs the `fetch` feature (the hashing code).
pub fn verify_cached(entry: &DatasetEntry, cache: &Path) -> Result<Option<Verified>> {
    let Some(path) = cached(entry, cache)? else { return Ok(None) };
    let dir = package_dir(entry, cache);
    let record = load_record(entry, &dir)?.unwrap_or_default();
    for (name, rec) in &record {
        let file = dir.join(name);
        match hash(&file)? {
            Some(h) if h == rec.sha256 => {}
            Some(h) => return Err(changed(entry, &dir, &file, format!("changed since it was extracted (sha256 {h}, recorded {})", rec.sha256))),
            None => return Err(DataError::InvalidArgument("verifying the cache needs whetstone-data's `fetch` feature (the hashing code)".into())),
        }
    }
    Ok(Some(Verified { path, files: record.len() }))
}

/// `*`-only glob matching of one file name.
pub(crate) fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == name;
    }
    if name.len() < first.len() + last.len() || !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// `entry`'s data under `cache`: fetched on first use when whetstone-data is built with its
/// `fetch` feature (the default), else found in the cache or an error that says how to
/// fetch it.
pub fn obtain(entry: &DatasetEntry, cache: &Path) -> Result<PathBuf> {
    #[cfg(feature = "fetch")]
    {
        crate::fetch::fetch(entry, cache)
    }
    #[cfg(not(feature = "fetch"))]
    {
        cached(entry, cache)?.ok_or_else(|| DataError::NotCached { name: entry.name.clone(), cache: cache.to_path_buf() })
    }
}

/// The archive members to extract, as paths relative to the archive root (and to the package
/// directory they are extracted into).
pub(crate) fn members(entry: &DatasetEntry) -> Result<Vec<PathBuf>> {
    let base = safe_relative(&entry.name, &entry.path)?;
    match &entry.files {
        None => Ok(vec![base]),
        Some(files) => files
            .iter()
            .map(|f| safe_relative(&entry.name, f).map(|f| base.join(f)))
            .collect(),
    }
}

/// Whether a member path is a pattern (`*` in its file name, e.g. `*.txt`).
pub(crate) fn is_pattern(member: &Path) -> bool {
    member.file_name().is_some_and(|n| n.to_string_lossy().contains('*'))
}

/// Whether the marker exists and records `sha256`.
fn marker_matches(marker: &Path, sha256: &str) -> bool {
    fs::read_to_string(marker)
        .map(|s| s.trim().eq_ignore_ascii_case(sha256.trim()))
        .unwrap_or(false)
}

/// A manifest path (`path` or one of `files`) as a relative path that cannot escape the
/// package directory.
pub(crate) fn safe_relative(name: &str, path: &str) -> Result<PathBuf> {
    let rel = PathBuf::from(path);
    let ok = !path.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(rel)
    } else {
        Err(DataError::Manifest {
            message: format!(
                "dataset `{name}`: path `{path}` must be relative and stay inside the package"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn entry() -> DatasetEntry {
        Manifest::builtin().unwrap().get("sms-spam").unwrap().clone()
    }

    #[test]
    fn cached_data_needs_every_file_and_a_marker_with_the_manifest_digest() {
        let entry = entry();
        let cache = tempfile::tempdir().unwrap();
        assert_eq!(cached(&entry, cache.path()).unwrap(), None);
        let dir = package_dir(&entry, cache.path());
        let target = dir.join(&entry.path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(&target, "ham\thi\n").unwrap();
        assert_eq!(cached(&entry, cache.path()).unwrap(), None, "no marker yet");
        fs::write(dir.join(MARKER_FILE), "deadbeef\n").unwrap();
        assert_eq!(cached(&entry, cache.path()).unwrap(), None, "a marker for another digest");
        fs::write(dir.join(MARKER_FILE), format!("{}\n", entry.sha256)).unwrap();
        assert_eq!(cached(&entry, cache.path()).unwrap(), Some(target.clone()));
        // Found in the cache: no download, with or without the `fetch` feature.
        assert_eq!(obtain(&entry, cache.path()).unwrap(), target);
    }

    #[cfg(not(feature = "fetch"))]
    #[test]
    fn without_the_fetch_feature_missing_data_says_how_to_fetch_it() {
        let cache = tempfile::tempdir().unwrap();
        let e = obtain(&entry(), cache.path()).unwrap_err();
        assert!(matches!(e, DataError::NotCached { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("whetstone data sms-spam") && msg.contains("`fetch` feature"), "{msg}");
    }
}
