//! When the kernel refuses io_uring (here: a seccomp filter, as Docker's default profile
//! does), a runtime falls back to the epoll backend with one warning saying why, and works;
//! forcing io_uring fails with an error that names io_uring and the cause. Run in a child
//! process, since seccomp filters cannot be removed.

mod support;

use support::{is_child, run_child, stderr};

/// Makes `io_uring_setup` fail with `EPERM` for this process and its future threads.
fn forbid_io_uring() {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    let filter = [
        // Load the syscall number (offset 0 of struct seccomp_data).
        libc::sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: BPF_JMP_JEQ_K,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: valid prctl calls; `program` and `filter` outlive them (the kernel copies).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program),
            0
        );
    }
}

/// Prints warnings to stderr, for the parent to check.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        eprintln!("LOG {}: {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

/// TCP echo, files, sleep and park_timeout, all from green threads of `rt`.
fn exercise(rt: &greenring::Runtime) {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let echoed = rt.block_on(|| {
        let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = greenring::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).unwrap();
            stream.write_all(&buf).unwrap();
        });
        let mut client = greenring::net::TcpStream::connect(addr).unwrap();
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        server.join().unwrap();
        buf
    });
    assert_eq!(&echoed, b"ping");
    let path = std::env::temp_dir().join(format!("greenring-refused-{}", std::process::id()));
    let read_back = rt.block_on(move || {
        greenring::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let data = greenring::fs::read(&path).unwrap();
        greenring::fs::remove_file(&path).unwrap();
        data
    });
    assert_eq!(read_back, vec![7u8; 100_000]);
    let slept = rt.block_on(|| {
        let start = Instant::now();
        greenring::time::sleep(Duration::from_millis(20));
        greenring::thread::park_timeout(Duration::from_millis(20));
        start.elapsed()
    });
    assert!(slept >= Duration::from_millis(20), "{slept:?}");
}

#[test]
fn refused_io_uring_falls_back_to_epoll() {
    const TEST: &str = "refused_io_uring_falls_back_to_epoll";
    if is_child(TEST) {
        // This test is about the automatic choice, whatever the CI pass forces.
        std::env::remove_var("GREENRING_IO_BACKEND");
        log::set_logger(&StderrLogger).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
        forbid_io_uring();

        let rt = greenring::Runtime::builder()
            .worker_threads(2)
            .build()
            .unwrap();
        assert_eq!(rt.io_backend(), greenring::IoBackend::Epoll);
        assert_eq!(rt.metrics().io_backend, Some(greenring::IoBackend::Epoll));
        exercise(&rt);

        // The default runtime falls back too.
        assert_eq!(greenring::spawn(|| 6 * 7).join().unwrap(), 42);

        // Forcing io_uring reports the refusal by name.
        let err = greenring::Runtime::builder()
            .io_backend(greenring::IoBackend::IoUring)
            .build()
            .unwrap_err();
        let message = err.to_string();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::PermissionDenied,
            "{message}"
        );
        assert!(
            message.contains("io_uring") && message.contains("seccomp"),
            "{message}"
        );
        std::env::set_var("GREENRING_IO_BACKEND", "io_uring");
        let err = greenring::Runtime::new().unwrap_err();
        assert!(err.to_string().contains("io_uring"), "{err}");
        std::env::set_var("GREENRING_IO_BACKEND", "kqueue");
        let err = greenring::Runtime::new().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("GREENRING_IO_BACKEND"), "{err}");
        println!("child checks passed");
        return;
    }
    let output = run_child(TEST, &[]);
    let out = String::from_utf8_lossy(&output.stdout);
    let err = stderr(&output);
    assert!(
        output.status.success() && out.contains("child checks passed"),
        "{out}\n{err}"
    );
    // One warning per runtime that fell back (two: `rt` and the default runtime), naming
    // io_uring, the cause and the fallback.
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("LOG WARN")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings
            .iter()
            .all(|w| w.contains("io_uring") && w.contains("seccomp") && w.contains("epoll")),
        "{err}"
    );
}

#[test]
fn the_epoll_backend_can_be_forced() {
    let rt = greenring::Runtime::builder()
        .worker_threads(2)
        .io_backend(greenring::IoBackend::Epoll)
        .build()
        .unwrap();
    assert_eq!(rt.io_backend(), greenring::IoBackend::Epoll);
    exercise(&rt);
}
