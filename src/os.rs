//! Platform-specific extensions, shaped like [`std::os`]: the paths ported Unix code
//! imports (`os::unix::fs::FileExt`, `os::fd::AsRawFd`, ...) resolve here too.
//!
//! ```
//! use greenring::os::unix::fs::{FileExt, PermissionsExt};
//!
//! # let path = std::env::temp_dir().join(format!("greenring-doc-os-{}", std::process::id()));
//! let file = greenring::fs::File::create(&path)?;
//! file.write_all_at(b"data", 0)?;
//! file.set_permissions(greenring::fs::Permissions::from_mode(0o600))?;
//! assert_eq!(file.metadata()?.permissions().mode() & 0o777, 0o600);
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```

/// File descriptors: std's [`std::os::fd`], re-exported.
pub mod fd {
    pub use std::os::fd::*;
}

/// Unix extensions, shaped like [`std::os::unix`].
pub mod unix {
    /// File descriptors: std's [`std::os::unix::io`], re-exported.
    pub mod io {
        pub use std::os::unix::io::*;
    }

    /// Unix domain sockets: greenring's [`UnixListener`](crate::net::UnixListener) and
    /// [`UnixStream`](crate::net::UnixStream), with std's address type.
    pub mod net {
        pub use crate::net::{UnixListener, UnixStream};
        pub use std::os::unix::net::SocketAddr;
    }

    /// Unix file extensions, shaped like [`std::os::unix::fs`].
    ///
    /// The traits are std's. [`FileExt`](std::os::unix::fs::FileExt) and
    /// [`OpenOptionsExt`](std::os::unix::fs::OpenOptionsExt) are implemented for
    /// greenring's [`File`](crate::fs::File) and [`OpenOptions`](crate::fs::OpenOptions),
    /// and [`DirBuilderExt`](std::os::unix::fs::DirBuilderExt) for its
    /// [`DirBuilder`](crate::fs::DirBuilder); the others work on std's
    /// [`Metadata`](crate::fs::Metadata), [`Permissions`](crate::fs::Permissions),
    /// [`FileType`](crate::fs::FileType) and [`DirEntry`](crate::fs::DirEntry), which
    /// greenring re-exports. [`symlink`](self::fs::symlink), [`chown`](self::fs::chown)
    /// and [`lchown`](self::fs::lchown) run on the blocking pool on a green thread, like
    /// greenring's other path calls.
    pub mod fs {
        use std::io;
        use std::path::Path;

        pub use std::os::unix::fs::{
            fchown, DirBuilderExt, DirEntryExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt,
            PermissionsExt,
        };

        /// Makes `link` a symlink to `original`, like [`std::os::unix::fs::symlink`].
        ///
        /// # Errors
        ///
        /// As std's.
        pub fn symlink<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
            let (original, link) = (original.as_ref(), link.as_ref());
            crate::fs::blocking(|| std::os::unix::fs::symlink(original, link))
        }

        /// Changes the owner and group of the file at `path` (following symlinks), like
        /// [`std::os::unix::fs::chown`].
        ///
        /// # Errors
        ///
        /// As std's.
        pub fn chown<P: AsRef<Path>>(
            path: P,
            uid: Option<u32>,
            gid: Option<u32>,
        ) -> io::Result<()> {
            let path = path.as_ref();
            crate::fs::blocking(|| std::os::unix::fs::chown(path, uid, gid))
        }

        /// Changes the owner and group of `path` itself (not following a final symlink),
        /// like [`std::os::unix::fs::lchown`].
        ///
        /// # Errors
        ///
        /// As std's.
        pub fn lchown<P: AsRef<Path>>(
            path: P,
            uid: Option<u32>,
            gid: Option<u32>,
        ) -> io::Result<()> {
            let path = path.as_ref();
            crate::fs::blocking(|| std::os::unix::fs::lchown(path, uid, gid))
        }
    }
}
