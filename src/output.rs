//! The one way Countersign writes a file: results, summaries, exports, anchors, checkpoints, cards.
//!
//! Every output goes through [`create`] (streamed) or [`write`] (whole), which
//!
//! - refuses a destination that is the audit database, its `-wal`, `-shm` or `-journal` file, or any
//!   other name for one of them (a hard link or a symlink: compared by device and inode, not by path,
//!   so `ln audit.sqlite3 results.csv` does not get past it);
//! - writes to a temporary file in the destination's folder and renames it over the destination only
//!   when everything was written and synced, so a full disk or a crash leaves the old file (or
//!   nothing), never half a file; and because a rename replaces the *name*, a destination that shares
//!   an inode with something else never writes into that something else.
//!
//! Commands that know the database pass [`Protected::database`]; `cli::run` also registers the
//! database in force for the whole process ([`protect_for_process`]), so writers that do not know it
//! (synthetic data, the screenshot marker) are checked against it too.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why an output file was not written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "{path} is {what}; Countersign never writes over it (choose another output file): writing there \
         would destroy committed audit records"
    )]
    Protected { path: PathBuf, what: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl OutputError {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> OutputError + '_ {
        move |source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the write failed because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, OutputError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull)
    }
}

/// Files an output must never replace, by name and by identity (device, inode).
#[derive(Clone, Debug, Default)]
pub struct Protected {
    /// (resolved path, what it is) for each protected name, existing or not.
    names: Vec<(PathBuf, String)>,
    /// (device, inode, what it is) for each protected file that exists.
    ids: Vec<(u64, u64, String)>,
}

/// The suffixes of the files SQLite keeps beside a database.
const DB_SIDE_FILES: [&str; 4] = ["", "-wal", "-shm", "-journal"];

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Where a path points, for comparing paths that may not exist yet: the canonical parent folder
/// joined with the file name.
fn resolved(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Some(c);
    }
    let name = p.file_name()?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(parent).ok()?.join(name))
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl Protected {
    /// Nothing is protected (for tools that never open a database).
    pub fn none() -> Self {
        Self::default()
    }

    /// The audit database and the files SQLite keeps beside it.
    pub fn database(db: &Path) -> Self {
        let mut p = Self::default();
        for suffix in DB_SIDE_FILES {
            let what = if suffix.is_empty() {
                "the audit database".to_string()
            } else {
                format!("the audit database's {suffix} file")
            };
            p.add(&with_suffix(db, suffix), &what);
        }
        p
    }

    /// Protects one more file (the batch's manifest, say).
    pub fn add(&mut self, path: &Path, what: &str) -> &mut Self {
        if let Some(r) = resolved(path) {
            self.names.push((r, what.to_string()));
        }
        if let Some((dev, ino)) = std::fs::metadata(path).ok().as_ref().and_then(file_id) {
            self.ids.push((dev, ino, what.to_string()));
        }
        self
    }

    /// Refuses `out` when it names, links to or is a protected file.
    pub fn check(&self, out: &Path) -> Result<(), OutputError> {
        let refuse = |what: &str, how: &str| {
            Err(OutputError::Protected {
                path: out.to_path_buf(),
                what: format!("{what}{how}"),
            })
        };
        if let Some(r) = resolved(out)
            && let Some((_, what)) = self.names.iter().find(|(n, _)| *n == r)
        {
            return refuse(what, "");
        }
        // Follows symlinks: a link to the database is the database.
        for meta in [std::fs::metadata(out), std::fs::symlink_metadata(out)]
            .into_iter()
            .flatten()
        {
            if let Some((dev, ino)) = file_id(&meta)
                && let Some((_, _, what)) = self.ids.iter().find(|(d, i, _)| (*d, *i) == (dev, ino))
            {
                return refuse(what, " (another name for the same file: a link)");
            }
        }
        Ok(())
    }
}

/// An output being written: a temporary file beside the destination, renamed over it by
/// [`OutputFile::commit`]. Dropped without a commit, it leaves the destination as it was.
pub struct OutputFile {
    dest: PathBuf,
    tmp: BufWriter<tempfile::NamedTempFile>,
}

impl std::fmt::Debug for OutputFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputFile")
            .field("dest", &self.dest)
            .finish()
    }
}

/// The files protected for the whole process (the database in force), set once by `cli::run`.
static PROCESS: std::sync::OnceLock<Protected> = std::sync::OnceLock::new();

/// Protects these files from every output of this process (first call wins).
pub fn protect_for_process(p: Protected) {
    let _ = PROCESS.set(p);
}

/// Refuses `out` when it is protected by `protected` or for the whole process.
pub fn check(out: &Path, protected: &Protected) -> Result<(), OutputError> {
    protected.check(out)?;
    if let Some(p) = PROCESS.get() {
        p.check(out)?;
    }
    Ok(())
}

/// Starts writing `out` (creating its folder if needed) after checking it against `protected` and
/// the process's protected files.
pub fn create(out: &Path, protected: &Protected) -> Result<OutputFile, OutputError> {
    check(out, protected)?;
    if std::fs::metadata(out).is_ok_and(|m| m.is_dir()) {
        return Err(OutputError::Io {
            path: out.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a folder; give a file name",
            ),
        });
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(OutputError::io(&dir))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(OutputError::io(out))?;
    Ok(OutputFile {
        dest: out.to_path_buf(),
        tmp: BufWriter::with_capacity(1 << 16, tmp),
    })
}

impl OutputFile {
    /// The destination.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flushes, syncs and renames the temporary file over the destination.
    pub fn commit(self) -> Result<(), OutputError> {
        let dest = self.dest;
        let tmp = self.tmp.into_inner().map_err(|e| OutputError::Io {
            path: dest.clone(),
            source: e.into_error(),
        })?;
        tmp.as_file().sync_all().map_err(OutputError::io(&dest))?;
        tmp.persist(&dest).map_err(|e| OutputError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// [`OutputFile::commit`] without the sync, for bulk outputs that can be made again (synthetic
    /// data): still never half a file under the destination's name, but not durable on power loss.
    pub fn commit_unsynced(self) -> Result<(), OutputError> {
        let dest = self.dest;
        let tmp = self.tmp.into_inner().map_err(|e| OutputError::Io {
            path: dest.clone(),
            source: e.into_error(),
        })?;
        tmp.persist(&dest).map_err(|e| OutputError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.flush()
    }
}

/// Writes a whole file through [`create`] and [`OutputFile::commit`].
pub fn write(out: &Path, protected: &Protected, bytes: &[u8]) -> Result<(), OutputError> {
    let mut f = create(out, protected)?;
    f.write_all(bytes).map_err(OutputError::io(out))?;
    f.commit()
}

/// Writes a whole file through [`create`] and [`OutputFile::commit_unsynced`] (bulk, remakeable
/// outputs).
pub fn write_unsynced(out: &Path, protected: &Protected, bytes: &[u8]) -> Result<(), OutputError> {
    let mut f = create(out, protected)?;
    f.write_all(bytes).map_err(OutputError::io(out))?;
    f.commit_unsynced()
}

/// Encodes an image as PNG in memory and writes it with [`write_unsynced`].
pub fn write_png(
    out: &Path,
    protected: &Protected,
    img: &image::GrayImage,
) -> Result<(), OutputError> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| OutputError::Io {
            path: out.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    write_unsynced(out, protected, bytes.get_ref())
}

impl From<OutputError> for std::io::Error {
    fn from(e: OutputError) -> Self {
        match e {
            OutputError::Io { source, .. } => source,
            e @ OutputError::Protected { .. } => {
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_database_its_side_files_and_links_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("audit.sqlite3");
        std::fs::write(&db, b"db").unwrap();
        let link = dir.path().join("results.csv");
        std::fs::hard_link(&db, &link).unwrap();
        let p = Protected::database(&db);
        for bad in [
            db.clone(),
            with_suffix(&db, "-wal"),
            with_suffix(&db, "-shm"),
            link.clone(),
        ] {
            let e = write(&bad, &p, b"x").unwrap_err();
            assert!(matches!(e, OutputError::Protected { .. }), "{bad:?}: {e}");
        }
        assert_eq!(std::fs::read(&db).unwrap(), b"db");
        let ok = dir.path().join("other.csv");
        write(&ok, &p, b"fine").unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"fine");
    }

    #[test]
    fn an_uncommitted_output_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.csv");
        std::fs::write(&out, b"old").unwrap();
        {
            let mut f = create(&out, &Protected::none()).unwrap();
            f.write_all(b"new, half").unwrap();
        }
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "the temporary file is removed");
    }
}
