//! Files through the reactor, checked against std.

#[path = "support/tempdir.rs"]
mod tempdir;

use std::io::{self, Read, Seek, SeekFrom, Write};

use greenring::fs::{self, File, OpenOptions};
use greenring::Runtime;

use tempdir::TempDir;

/// A deterministic pseudo-random byte at `offset`.
fn byte_at(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

#[test]
fn write_then_read_at_random_offsets() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let dir = TempDir::new("random");
    let path = dir.0.join("data.bin");
    let len = 4 << 20;
    rt.block_on(move || {
        let contents: Vec<u8> = (0..len as u64).map(byte_at).collect();
        let mut file = File::create(&path).unwrap();
        file.write_all(&contents).unwrap();
        file.sync_all().unwrap();
        assert_eq!(file.metadata().unwrap().len(), len as u64);
        let file = std::sync::Arc::new(File::open(&path).unwrap());
        let readers: Vec<_> = (0..32u64)
            .map(|reader| {
                let file = std::sync::Arc::clone(&file);
                greenring::spawn(move || {
                    let mut state = reader + 1;
                    for _ in 0..200 {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let offset = (state >> 20) % (len as u64 - 4096);
                        let mut buf = [0u8; 4096];
                        let n = file.read_at(&mut buf, offset).unwrap();
                        assert_eq!(n, 4096);
                        assert!(buf
                            .iter()
                            .enumerate()
                            .all(|(i, &b)| b == byte_at(offset + i as u64)));
                    }
                })
            })
            .collect();
        for reader in readers {
            reader.join().unwrap();
        }
    });
}

#[test]
fn sequential_reads_writes_seek_and_append() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let dir = TempDir::new("seq");
    let path = dir.0.join("log.txt");
    rt.block_on(move || {
        fs::write(&path, "first line\n").unwrap();
        let mut log = OpenOptions::new().append(true).open(&path).unwrap();
        log.write_all(b"second line\n").unwrap();
        log.sync_data().unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "first line\nsecond line\n"
        );

        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.seek(SeekFrom::Start(6)).unwrap();
        let mut word = [0u8; 4];
        file.read_exact(&mut word).unwrap();
        assert_eq!(&word, b"line");
        assert_eq!(file.stream_position().unwrap(), 10);
        file.write_at(b"LINE", 6).unwrap();
        assert_eq!(
            file.stream_position().unwrap(),
            10,
            "write_at leaves the position"
        );
        file.set_len(10).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first LINE");
        assert_eq!(fs::metadata(&path).unwrap().len(), 10);
        fs::remove_file(&path).unwrap();
        assert_eq!(
            fs::remove_file(&path).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    });
}

#[test]
fn errors_match_std() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let dir = TempDir::new("errors");
    let root = dir.0.clone();
    rt.block_on(move || {
        let missing = root.join("missing");
        let kind = |result: io::Result<File>| result.unwrap_err().kind();
        assert_eq!(kind(File::open(&missing)), io::ErrorKind::NotFound);
        assert_eq!(
            kind(File::open(&missing)),
            std::fs::File::open(&missing).unwrap_err().kind()
        );
        // A directory opened for writing: the same error as std's.
        let ours = kind(File::create(&root));
        let std = std::fs::File::create(&root).unwrap_err().kind();
        assert_eq!(ours, std);
        assert_eq!(ours, io::ErrorKind::IsADirectory);
        // Contradictory options, as std.
        assert_eq!(
            kind(OpenOptions::new().open(&missing)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(OpenOptions::new().read(true).truncate(true).open(&missing)),
            io::ErrorKind::InvalidInput
        );
        let exists = root.join("exists");
        fs::write(&exists, "x").unwrap();
        assert_eq!(
            kind(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&exists)
            ),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(kind(File::open("bad\0path")), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn create_dir_all_nests() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let dir = TempDir::new("dirs");
    let nested = dir.0.join("a/b/c");
    rt.block_on(move || {
        fs::create_dir_all(&nested).unwrap();
        fs::create_dir_all(&nested).unwrap();
        assert!(nested.is_dir());
        fs::write(nested.join("f"), "x").unwrap();
        let err = fs::create_dir_all(nested.join("f/g")).unwrap_err();
        assert_eq!(
            err.kind(),
            std::fs::create_dir_all(nested.join("f/g"))
                .unwrap_err()
                .kind()
        );
    });
}

#[test]
fn the_same_api_from_a_plain_os_thread() {
    let dir = TempDir::new("os");
    let path = dir.0.join("plain.txt");
    fs::write(&path, "plain").unwrap();
    let file = File::open(&path).unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(file.read_at(&mut buf, 0).unwrap(), 5);
    assert_eq!(&buf, b"plain");
    fs::create_dir_all(dir.0.join("x/y")).unwrap();
    fs::remove_file(&path).unwrap();
}
