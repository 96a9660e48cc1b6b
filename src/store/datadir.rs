//! The data directory's layout and file permissions: it is created mode
//! 0700, and every secret in it is written atomically with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Paths of everything the appliance keeps in its data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory (mode 0700) if it is missing.
    pub fn open(root: &Path) -> std::io::Result<DataDir> {
        fs::create_dir_all(root)?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
        Ok(DataDir { root: root.to_owned() })
    }

    /// The directory itself.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The sled database.
    pub(crate) fn database(&self) -> PathBuf {
        self.root.join("db")
    }
    /// The hash-chained audit log.
    pub(crate) fn audit_log(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }
    /// The local admin socket.
    pub(crate) fn admin_socket(&self) -> PathBuf {
        self.root.join("admin.sock")
    }
    /// A file in the directory.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// Writes `contents` to `path` with mode 0600, atomically (temp file, fsync,
/// rename), so a crash never leaves half a key behind.
pub(crate) fn write_secret(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_atomic(path, contents, 0o600)
}

/// Writes a public file (certificates) atomically with mode 0644.
pub(crate) fn write_public(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_atomic(path, contents, 0o644)
}

/// The temporary file is created exclusively (`O_EXCL`, never following a
/// link) under an unpredictable name beside `path`, then renamed over it.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads a file if it exists.
pub(crate) fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_private_and_directory_is_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&tmp.path().join("d")).unwrap();
        let key = dir.file("k.pem");
        write_secret(&key, b"secret").unwrap();
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(dir.root()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(read_optional(&key).unwrap().unwrap(), b"secret");
        assert!(read_optional(&dir.file("none")).unwrap().is_none());
    }

    #[test]
    fn a_planted_link_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&tmp.path().join("d")).unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"untouched").unwrap();
        // The name the old code wrote through.
        std::os::unix::fs::symlink(&victim, dir.file("k.tmp")).unwrap();
        write_secret(&dir.file("k.pem"), b"secret").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(fs::read(dir.file("k.pem")).unwrap(), b"secret");
        let left: Vec<_> = fs::read_dir(dir.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "only the secret and the planted link: {left:?}");
    }
}
