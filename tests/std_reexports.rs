//! Every std path a port imports resolves in greenring: the `use` lists below are std's
//! module contents (stable items), with `std` replaced by `greenring`. Compiling this file
//! is most of the test; the bodies check a few of the items behave as std's on green
//! threads and off them.

#![allow(unused_imports)]

use greenring::fs::{
    self, canonicalize, copy, create_dir, create_dir_all, exists, hard_link, metadata, read,
    read_dir, read_link, read_to_string, remove_dir, remove_dir_all, remove_file, rename,
    set_permissions, symlink_metadata, write, DirBuilder, DirEntry, File, FileTimes, FileType,
    Metadata, OpenOptions, Permissions, ReadDir,
};
use greenring::io::{
    self, BufRead, BufReader, BufWriter, Cursor, Empty, Error, ErrorKind, IoSlice, IoSliceMut,
    IsTerminal, LineWriter, Read, Repeat, Seek, SeekFrom, Sink, Stderr, Stdin, Stdout, Write,
};
use greenring::net::{
    self, AddrParseError, Incoming, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4,
    SocketAddrV6, TcpListener, TcpStream, ToSocketAddrs, UdpSocket,
};
use greenring::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use greenring::os::unix::fs::{
    chown, fchown, lchown, symlink, DirBuilderExt, DirEntryExt, FileExt, FileTypeExt, MetadataExt,
    OpenOptionsExt, PermissionsExt,
};
use greenring::os::unix::net::{UnixListener, UnixStream};
use greenring::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use greenring::sync::mpsc::{
    self as mpsc, channel, sync_channel, IntoIter, Iter, Receiver, RecvError, RecvTimeoutError,
    SendError, Sender, SyncSender, TryIter, TryRecvError, TrySendError,
};
use greenring::sync::{
    self, Arc, Barrier, BarrierWaitResult, Condvar, LazyLock, LockResult, Mutex, MutexGuard, Once,
    OnceLock, OnceState, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
    TryLockResult, WaitTimeoutResult, Weak,
};
use greenring::thread::{
    self, available_parallelism, current, panicking, park, park_timeout, scope, sleep, spawn,
    yield_now, AccessError, Builder, JoinHandle, LocalKey, Result, Scope, ScopedJoinHandle, Thread,
    ThreadId,
};
use greenring::time::{
    self, Duration, Instant, SystemTime, SystemTimeError, TryFromFloatSecsError, UNIX_EPOCH,
};

static READY: OnceLock<u32> = OnceLock::new();
static TABLE: LazyLock<Vec<u32>> = LazyLock::new(|| (0..4).collect());
static INIT: Once = Once::new();

/// Code written against std, compiled against greenring by its imports alone.
fn ported() -> thread::Result<u32> {
    let mut counts = [0u32; 4];
    scope(|s| {
        for (slot, value) in counts.iter_mut().zip(TABLE.iter()) {
            s.spawn(move || *slot = *value * 2);
        }
    });
    INIT.call_once(|| {
        READY.get_or_init(|| 5);
    });
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!("not an address".parse::<IpAddr>().is_err());
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(since > Duration::from_secs(1_600_000_000));
    assert!(Duration::try_from_secs_f64(-1.0).is_err());
    assert!(available_parallelism().unwrap().get() >= 1);
    assert!(!panicking());
    let shared = Arc::new(AtomicUsize::new(0));
    let weak: Weak<AtomicUsize> = Arc::downgrade(&shared);
    weak.upgrade().unwrap().fetch_add(1, Ordering::SeqCst);
    let mut lines = BufReader::new(Cursor::new("x\ny\n")).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "x");
    let handle = spawn(move || counts.iter().sum::<u32>() + *READY.get().unwrap());
    handle.join()
}

#[test]
fn ported_code_runs_on_a_green_thread() {
    let rt = greenring::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap();
    assert_eq!(rt.block_on(ported).unwrap(), 12 + 5);
}

#[test]
fn ported_code_runs_on_an_os_thread() {
    assert_eq!(ported().unwrap(), 12 + 5);
}
