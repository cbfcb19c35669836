//! The free functions on paths, std's list (`read`, `write`, `metadata`, `exists`,
//! `remove_file`, `create_dir_all`, `rename`, `copy`, ...). Where io_uring has an op for
//! the call (`openat` and the file's reads and writes, `unlinkat`, `mkdirat`, `statx`), a
//! green thread runs that op; the rest are std's call on the blocking pool, through
//! `blocking`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{blocking, c_path, ops, File, Metadata, Permissions};

/// Reads a whole file, like [`std::fs::read`].
///
/// # Errors
///
/// As std's.
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    // A plain `statx` of the file just opened, whose inode is in memory.
    let size = file.inner.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size);
    (&file).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a whole file as UTF-8, like [`std::fs::read_to_string`].
///
/// # Errors
///
/// As std's; `InvalidData` if the contents are not UTF-8.
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Writes a whole file, creating or truncating it, like [`std::fs::write`].
///
/// # Errors
///
/// As std's.
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    File::create(path)?.write_all(contents.as_ref())
}

/// Metadata of the file at `path`, following symlinks (std's `stat`); on a green thread,
/// std's call on the blocking pool (see the module documentation).
///
/// # Errors
///
/// As std's.
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::metadata(path))
}

/// Removes a file, like [`std::fs::remove_file`].
///
/// # Errors
///
/// As std's.
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    if !crate::driver::parks() {
        return std::fs::remove_file(path);
    }
    ops::unlink(&c_path(path)?).expect("checked: on a green thread")
}

/// Creates a directory and all missing parents, like [`std::fs::create_dir_all`].
///
/// # Errors
///
/// As std's.
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    if !crate::driver::parks() {
        return std::fs::create_dir_all(path);
    }
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    match ops::mkdir(&c_path(path)?).expect("checked: on a green thread") {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(_) if is_dir(path) => return Ok(()),
        Err(err) => return Err(err),
    }
    match path.parent() {
        Some(parent) => create_dir_all(parent)?,
        None => return Err(io::Error::other("failed to create whole tree")),
    }
    match ops::mkdir(&c_path(path)?).expect("checked: on a green thread") {
        Ok(()) => Ok(()),
        Err(_) if is_dir(path) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Metadata of `path` itself, not following a final symlink (std's `lstat`); on a green
/// thread, std's call on the blocking pool.
///
/// # Errors
///
/// As std's.
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::symlink_metadata(path))
}

/// `Ok(true)` if `path` names an existing file (following symlinks), `Ok(false)` if it
/// does not, like [`std::fs::exists`].
///
/// # Errors
///
/// When existence cannot be told (a `PermissionDenied` on a parent, say).
pub fn exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    match stat_mode(path.as_ref()) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

/// The file type bits (`S_IFMT`) of the file at `path`, following symlinks: a `statx` op
/// on a green thread (`IORING_OP_STATX`, or on the blocking pool on epoll), std's
/// `metadata` elsewhere.
fn stat_mode(path: &Path) -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt as _;
    if !crate::thread::is_green() {
        return std::fs::metadata(path).map(|m| m.mode() & libc::S_IFMT);
    }
    let c_path = c_path(path)?;
    match ops::statx(
        libc::AT_FDCWD,
        &c_path,
        libc::AT_STATX_SYNC_AS_STAT,
        libc::STATX_TYPE,
    ) {
        Some(result) => result.map(|statx| u32::from(statx.stx_mode) & libc::S_IFMT),
        None => std::fs::metadata(path).map(|m| m.mode() & libc::S_IFMT),
    }
}

/// Whether `path` names a directory (following symlinks), as `Path::is_dir`, without
/// blocking the worker.
fn is_dir(path: &Path) -> bool {
    matches!(stat_mode(path), Ok(libc::S_IFDIR))
}

/// Creates a directory (mode 0o777 less the umask), like [`std::fs::create_dir`]; its
/// parent must exist.
///
/// # Errors
///
/// As std's: `AlreadyExists`, `NotFound` for a missing parent, ...
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    if !crate::thread::is_green() {
        return std::fs::create_dir(path);
    }
    ops::mkdir(&c_path(path)?).unwrap_or_else(|| std::fs::create_dir(path))
}

/// Removes an empty directory, like [`std::fs::remove_dir`].
///
/// # Errors
///
/// As std's.
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_dir(path))
}

/// Removes a directory and everything in it, like [`std::fs::remove_dir_all`] (whose
/// symlink-race protections it keeps: it is std's, run on the blocking pool).
///
/// # Errors
///
/// As std's.
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_dir_all(path))
}

/// Renames a file or directory, replacing `to` if it exists, like [`std::fs::rename`].
///
/// # Errors
///
/// As std's.
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::rename(from, to))
}

/// Copies a file's contents and permissions, like [`std::fs::copy`] (in the kernel, with
/// `copy_file_range`, where it can); returns the number of bytes copied.
///
/// # Errors
///
/// As std's.
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::copy(from, to))
}

/// The absolute path with every symlink, `.` and `..` resolved, like
/// [`std::fs::canonicalize`].
///
/// # Errors
///
/// As std's (`NotFound` when the path does not exist).
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    blocking(|| std::fs::canonicalize(path))
}

/// Makes `link` a new hard link to `original`, like [`std::fs::hard_link`].
///
/// # Errors
///
/// As std's.
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    blocking(|| std::fs::hard_link(original, link))
}

/// The target of a symlink, like [`std::fs::read_link`].
///
/// # Errors
///
/// As std's (`InvalidInput` when `path` is not a symlink).
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    blocking(|| std::fs::read_link(path))
}

/// Changes the permissions of the file at `path` (following symlinks), like
/// [`std::fs::set_permissions`].
///
/// # Errors
///
/// As std's.
pub fn set_permissions<P: AsRef<Path>>(path: P, permissions: Permissions) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::set_permissions(path, permissions))
}
