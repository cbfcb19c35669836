//! When the kernel refuses io_uring (here: a seccomp filter, as Docker's default profile
//! does), building a runtime fails with an error that names io_uring and the cause, and
//! nothing else breaks. Run in a child process, since seccomp filters cannot be removed.

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

#[test]
fn refused_io_uring_is_reported_by_name() {
    const TEST: &str = "refused_io_uring_is_reported_by_name";
    if is_child(TEST) {
        forbid_io_uring();
        let err = greenring::Runtime::new().unwrap_err();
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

        let payload = std::panic::catch_unwind(|| greenring::spawn(|| ())).unwrap_err();
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            text.contains("default runtime could not start") && text.contains("io_uring"),
            "{text}"
        );

        // Off green threads the std-shaped APIs still work.
        let listener = greenring::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = greenring::net::TcpStream::connect(addr).unwrap();
        greenring::time::sleep(std::time::Duration::from_millis(1));
        println!("child checks passed");
        return;
    }
    let output = run_child(TEST, &[]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && out.contains("child checks passed"),
        "{out}\n{}",
        stderr(&output)
    );
}
