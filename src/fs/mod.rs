//! Files, shaped like [`std::fs`], whose reads, writes, syncs and opens park only the
//! calling green thread.
//!
//! On a green thread `open`, `read`, `write`, `read_at`, `write_at`, `sync_all`,
//! `sync_data`, `set_len`, `remove_file` and `create_dir_all` run as io_uring ops on the
//! caller's own buffers (on the epoll backend, as their system calls on the blocking pool);
//! off green threads they are the std calls. Writes of up to [`INLINE_WRITE_MAX`]
//! bytes are the plain system call on green threads too: a buffered write is a copy into
//! the page cache, and io_uring cannot do it without blocking on ext4, so it hands it to a
//! kernel worker thread (measured here: 70 us per 29-byte append through io_uring, 2 us
//! with `write`). A write that does block (dirty-page throttling, `O_DIRECT`) holds the
//! worker; past 10 ms the monitor moves the worker's threads that have not started to other
//! workers and reports the stall.
//! Seeking is std's call everywhere (an `lseek` does not wait for the device).
//!
//! # Metadata
//!
//! A `stat` walks the path and may wait for the disk (a cold inode cache) or the server
//! (NFS), so on a green thread [`metadata`], [`symlink_metadata`] and [`File::metadata`]
//! run std's own call on the blocking pool, on both backends, and return std's
//! [`Metadata`]. io_uring's `IORING_OP_STATX` fills a `statx` buffer, and std's
//! `Metadata` (like its `FileType`) cannot be built from one; a `Metadata` of greenring's
//! own would differ from the one [`DirEntry::metadata`] returns and from what every crate
//! that takes a `&std::fs::Metadata` expects, so porting would stop being an import change.
//! It would not be faster either: the kernel always hands `IORING_OP_STATX` to its own
//! worker threads (io-wq), a hop like the pool's. Where only the existence or the type of
//! a file is needed ([`exists`], and the checks inside [`create_dir_all`]) greenring
//! issues `statx` itself: `IORING_OP_STATX` on io_uring, the blocking pool on epoll.
//! [`read`] sizes its buffer with a plain `statx` of the file it just opened (whose inode
//! is in memory), as std does.
//!
//! [`File::set_len`] is `IORING_OP_FTRUNCATE` where the kernel has it (Linux 6.9; each
//! ring probes its opcodes once, with `io_uring_register_probe`, when it is set up), and
//! std's call on the blocking pool otherwise and on epoll.
//!
//! # Kernel requirements
//!
//! The io_uring backend needs Linux 5.18 (its rings are set up with
//! `IORING_SETUP_SUBMIT_ALL`), and every opcode this module relies on is older:
//! `IORING_OP_OPENAT`, `READ`, `WRITE` and `STATX` (5.6), `FSYNC` (5.1), `UNLINKAT`
//! (5.11) and `MKDIRAT` (5.15). The one newer opcode, `IORING_OP_FTRUNCATE` (6.9), is
//! used only where the probe finds it.
//!
//! # Directories, links, copies and locks
//!
//! Calls that walk or change the directory tree ([`read_dir`], [`rename`], [`copy`],
//! [`remove_dir`], [`remove_dir_all`], [`canonicalize`], [`hard_link`], [`read_link`],
//! [`set_permissions`], [`DirBuilder::create`]) and the waiting [`File::lock`] and
//! [`File::lock_shared`] run on the blocking pool (see [`crate::spawn_blocking`]) when
//! called on a green thread, which waits parked meanwhile; off green threads they are the
//! std calls. [`create_dir`] is an io_uring op like [`create_dir_all`]. The calls that set
//! attributes of an open file ([`File::set_permissions`], [`File::set_times`],
//! [`File::set_modified`]) and the non-waiting [`File::try_lock`] and [`File::unlock`] are
//! std's (or the plain system call) everywhere: they change an inode already in memory.
//!
//! A wait on the blocking pool is not a cancellation point: the pool thread works on the
//! caller's buffers and paths, so a green thread in [`File::lock`] waits for the lock even
//! while its runtime shuts down.
//!
//! # The file position
//!
//! `read(2)` and `write(2)` hold the open file's position lock, so threads sharing a file
//! each read or write their own bytes. io_uring ops at "the current position" do not take
//! that lock: two in flight at once would read the same bytes, or write over each other.
//! So every [`File`] handle, and its `try_clone`s, share a position lock of their own;
//! reads, writes and seeks at the position take it, look the position up, run the op at
//! that explicit offset, and move the position past what they transferred. (Files without
//! a position, such as pipes, run at "the current position" as before.) A handle made
//! elsewhere for the same open file (a `dup`, an fd passed to a child) does not share the
//! lock.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("greenring-doc-fs-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("hello.txt");
//! greenring::spawn(move || -> std::io::Result<()> {
//!     greenring::fs::write(&path, b"hello, file")?;
//!     assert_eq!(greenring::fs::read_to_string(&path)?, "hello, file");
//!     greenring::fs::remove_file(&path)
//! })
//! .join()
//! .unwrap()?;
//! # std::fs::remove_dir(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::driver as ops;

mod dir;
mod file;
mod lock;
mod open;
mod path;

pub use self::dir::{read_dir, DirBuilder, ReadDir};
pub use self::file::File;
pub use self::lock::TryLockError;
pub use self::open::OpenOptions;
pub use self::path::{
    canonicalize, copy, create_dir, create_dir_all, exists, hard_link, metadata, read, read_link,
    read_to_string, remove_dir, remove_dir_all, remove_file, rename, set_permissions,
    symlink_metadata, write,
};

/// std's, re-exported so every `std::fs` path resolves here. A [`DirEntry`]'s `metadata`
/// is a plain `statx` and its `file_type` usually needs no system call at all.
pub use std::fs::{DirEntry, FileTimes, FileType, Metadata, Permissions};

/// Writes up to this many bytes are made with a plain `write`/`pwrite` (see the module
/// documentation); larger ones go through io_uring.
pub const INLINE_WRITE_MAX: usize = 64 * 1024;

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// `path` as a C string.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| invalid("file name contained an unexpected NUL byte"))
}

/// Runs `f` on the blocking pool while the calling green thread waits parked; off green
/// threads (and while unwinding, when a green thread blocks its OS thread anyway) it is a
/// plain call.
pub(crate) fn blocking<R: Send>(f: impl FnOnce() -> io::Result<R> + Send) -> io::Result<R> {
    if crate::thread::is_green() && !std::thread::panicking() {
        crate::driver::pool::offload(f)
    } else {
        f()
    }
}
