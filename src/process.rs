//! Child processes shaped like [`std::process`]: waiting for a child and reading or writing
//! its pipes park only the calling green thread.
//!
//! [`Command`] is std's builder (it wraps a [`std::process::Command`]), and spawning is
//! std's `spawn` (a `fork`/`exec` that returns once the program is running). What can wait
//! for long goes through the worker's reactor:
//!
//! - **Waiting** ([`Child::wait`], [`Command::status`], [`Command::output`]) opens a pidfd
//!   for the child (`pidfd_open(2)`, Linux 5.3) and waits for it to become readable, which
//!   it does when the child exits (`IORING_OP_POLL_ADD` on io_uring, the worker's epoll
//!   set otherwise); the exit status is then reaped with std's `wait`, which no longer
//!   blocks. Where `pidfd_open` is refused (older kernels, seccomp filters), the wait runs
//!   on the blocking pool instead.
//! - **Pipes** ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`]) stay in blocking mode,
//!   as std leaves them, so they can still be handed to another process as its standard
//!   input or output ([`Stdio::from`]). On io_uring a read or write is an
//!   `IORING_OP_READ`/`WRITE` on the pipe; on epoll it waits for readiness with a zero
//!   `poll` first and writes at most `PIPE_BUF` bytes at a time, so the call that follows
//!   does not block. (Setting `O_NONBLOCK` would also reach any process the pipe end is
//!   later handed to, which expects a blocking pipe.)
//!
//! Off green threads everything is std's.
//!
//! ```
//! use greenring::process::Command;
//!
//! let output = Command::new("echo").arg("hello").output()?;
//! assert!(output.status.success());
//! assert_eq!(output.stdout, b"hello\n");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

pub use std::process::{abort, exit, id, ExitCode, ExitStatus, Output, Stdio, Termination};

use crate::driver as ops;
use crate::reactor::Socket;

/// A process builder, like [`std::process::Command`] (the same methods), whose `status`,
/// `output` and children's waits park only the calling green thread.
///
/// ```
/// use std::io::{Read, Write};
/// use greenring::process::{Command, Stdio};
///
/// let mut child = Command::new("cat")
///     .stdin(Stdio::piped())
///     .stdout(Stdio::piped())
///     .spawn()?;
/// child.stdin.take().unwrap().write_all(b"through cat")?; // dropped: cat sees the end
/// let mut echoed = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut echoed)?;
/// assert_eq!(echoed, "through cat");
/// assert!(child.wait()?.success());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Command {
    inner: std::process::Command,
    /// Which streams the caller configured: `output` captures (or nulls) only the others.
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
}

impl Command {
    /// A command that runs `program` (looked up in `PATH` unless it holds a `/`), with no
    /// arguments, the parent's environment and working directory, and, for `spawn` and
    /// `status`, the parent's standard streams.
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds one argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Sets the child's standard input.
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Sets the child's standard output.
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// Sets the child's standard error.
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Starts the child (std's `spawn`: it returns once the program runs, or failed to).
    ///
    /// # Errors
    ///
    /// As std's (`NotFound` for a missing program, ...).
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.inner.spawn().map(Child::from)
    }

    /// Runs the child to its end and returns its exit status and what it wrote to its
    /// standard output and error. Unless set, stdin is null and stdout and stderr are
    /// captured, as std's `output`; both are read at once, so a child that fills one pipe
    /// while we read the other cannot stall.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn output(&mut self) -> io::Result<Output> {
        let unset = (!self.stdin_set, !self.stdout_set, !self.stderr_set);
        if unset.0 {
            self.inner.stdin(Stdio::null());
        }
        if unset.1 {
            self.inner.stdout(Stdio::piped());
        }
        if unset.2 {
            self.inner.stderr(Stdio::piped());
        }
        let child = self.inner.spawn();
        // Back to what `spawn` does with unset streams.
        if unset.0 {
            self.inner.stdin(Stdio::inherit());
        }
        if unset.1 {
            self.inner.stdout(Stdio::inherit());
        }
        if unset.2 {
            self.inner.stderr(Stdio::inherit());
        }
        Child::from(child?).wait_with_output()
    }

    /// Runs the child to its end (with the parent's standard streams unless set) and
    /// returns its exit status.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }

    /// The program, as given to [`Command::new`].
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// The arguments (without the program).
    pub fn get_args(&self) -> std::process::CommandArgs<'_> {
        self.inner.get_args()
    }

    /// The environment changes (`None`: removed).
    pub fn get_envs(&self) -> std::process::CommandEnvs<'_> {
        self.inner.get_envs()
    }

    /// The working directory, if set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.inner.get_current_dir()
    }

    /// The std command inside, for what only std's has (`CommandExt`: `uid`,
    /// `process_group`, `pre_exec`...).
    ///
    /// ```
    /// use std::os::unix::process::CommandExt;
    ///
    /// let mut command = greenring::process::Command::new("true");
    /// command.as_std_mut().process_group(0);
    /// assert!(command.status()?.success());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }
}

impl From<std::process::Command> for Command {
    /// Wraps a std command. Its standard streams count as unset: [`Command::output`]
    /// captures stdout and stderr and nulls stdin.
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
        }
    }
}

/// A running or exited child process, like [`std::process::Child`]: its pipes and `wait`
/// park only the calling green thread.
///
/// As with std, a `Child` that is dropped is neither killed nor waited for.
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    /// The child's pidfd, opened at the first wait that has to wait.
    pidfd: Option<OwnedFd>,
    /// The writing end of the child's standard input, when piped.
    pub stdin: Option<ChildStdin>,
    /// The reading end of the child's standard output, when piped.
    pub stdout: Option<ChildStdout>,
    /// The reading end of the child's standard error, when piped.
    pub stderr: Option<ChildStderr>,
}

impl From<std::process::Child> for Child {
    fn from(mut inner: std::process::Child) -> Child {
        Child {
            stdin: inner.stdin.take().map(|inner| ChildStdin { inner }),
            stdout: inner.stdout.take().map(|inner| ChildStdout { inner }),
            stderr: inner.stderr.take().map(|inner| ChildStderr { inner }),
            inner,
            pidfd: None,
        }
    }
}

/// `pidfd_open(2)` (close-on-exec).
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

impl Child {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Sends `SIGKILL` to the child (it still has to be waited for).
    ///
    /// # Errors
    ///
    /// As std's (none once the child was reaped).
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// The exit status if the child has exited, without waiting.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Waits for the child to exit and returns its status, parking only the calling green
    /// thread. Closes the child's stdin first (as std), so a child reading it sees the end.
    ///
    /// # Errors
    ///
    /// As std's; `ECANCELED` when the runtime shuts down meanwhile.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if !crate::thread::is_green() || std::thread::panicking() {
            return self.inner.wait();
        }
        if let Some(status) = self.inner.try_wait()? {
            return Ok(status);
        }
        if self.pidfd.is_none() {
            // The pid stays ours until it is reaped, so the pidfd names this child.
            match pidfd_open(self.inner.id()) {
                Ok(fd) => self.pidfd = Some(fd),
                Err(_) => {
                    let inner = &mut self.inner;
                    return crate::driver::pool::offload(move || inner.wait());
                }
            }
        }
        let fd = self.pidfd.as_ref().expect("opened above").as_raw_fd();
        if let Some(ready) = ops::poll_readable(fd) {
            ready?;
        }
        // Exited: reaping it does not block.
        self.inner.wait()
    }

    /// Waits for the child to exit while reading all of its stdout and stderr (those that
    /// are piped), at once: stderr in a green thread of its own. Closes stdin first.
    ///
    /// # Errors
    ///
    /// As std's.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = (self.stdout.take(), self.stderr.take());
        if !crate::thread::is_green() || std::thread::panicking() {
            // std reads both pipes with poll(2) on this OS thread.
            self.inner.stdout = stdout.map(|pipe| pipe.inner);
            self.inner.stderr = stderr.map(|pipe| pipe.inner);
            return self.inner.wait_with_output();
        }
        let err_reader = match stderr {
            Some(mut pipe) => Some(crate::thread::Builder::new().spawn(move || {
                let mut err = Vec::new();
                pipe.read_to_end(&mut err).map(|_| err)
            })?),
            None => None,
        };
        let mut out = Vec::new();
        let read_out = match stdout {
            Some(mut pipe) => pipe.read_to_end(&mut out).map(drop),
            None => Ok(()),
        };
        let err = match err_reader {
            Some(reader) => reader
                .join()
                .unwrap_or_else(|payload| std::panic::resume_unwind(payload))?,
            None => Vec::new(),
        };
        read_out?;
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }
}

/// Implements the fd traits and conversions of a pipe end.
macro_rules! pipe_common {
    ($ty:ident) => {
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }

        impl IntoRawFd for $ty {
            fn into_raw_fd(self) -> RawFd {
                self.inner.into_raw_fd()
            }
        }

        impl From<$ty> for OwnedFd {
            fn from(pipe: $ty) -> OwnedFd {
                pipe.inner.into()
            }
        }

        impl From<$ty> for Stdio {
            /// The pipe end as another child's standard stream (still in blocking mode,
            /// as that child expects).
            fn from(pipe: $ty) -> Stdio {
                pipe.inner.into()
            }
        }

        impl From<std::process::$ty> for $ty {
            fn from(inner: std::process::$ty) -> $ty {
                $ty { inner }
            }
        }

        impl From<$ty> for std::process::$ty {
            fn from(pipe: $ty) -> std::process::$ty {
                pipe.inner
            }
        }
    };
}

/// The writing end of a child's standard input, like [`std::process::ChildStdin`]: a
/// write parks the green thread while the pipe is full.
#[derive(Debug)]
pub struct ChildStdin {
    inner: std::process::ChildStdin,
}

/// The reading end of a child's standard output, like [`std::process::ChildStdout`]: a
/// read parks the green thread until the child writes or exits.
#[derive(Debug)]
pub struct ChildStdout {
    inner: std::process::ChildStdout,
}

/// The reading end of a child's standard error, like [`std::process::ChildStderr`]: a
/// read parks the green thread until the child writes or exits.
#[derive(Debug)]
pub struct ChildStderr {
    inner: std::process::ChildStderr,
}

pipe_common!(ChildStdin);
pipe_common!(ChildStdout);
pipe_common!(ChildStderr);

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match ops::stream_write(Socket::fd(self.as_raw_fd()), buf) {
            Some(result) => result,
            None => (&self.inner).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match ops::stream_read(Socket::fd(self.as_raw_fd()), buf) {
            Some(result) => result,
            None => self.inner.read(buf),
        }
    }
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match ops::stream_read(Socket::fd(self.as_raw_fd()), buf) {
            Some(result) => result,
            None => self.inner.read(buf),
        }
    }
}
