//! Reads and writes at the file position through a shared `&File`, from several green
//! threads at once: each byte is read once and written once, as with std's `read(2)` and
//! `write(2)`, which serialise on the file position.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use greenring::fs::{File, OpenOptions};
use greenring::Runtime;

const THREADS: usize = 4;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("greenring-fs-position-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

/// 8 MiB of consecutive little-endian `u32`s: every 4 bytes say where they are.
fn counting_bytes() -> Vec<u8> {
    (0..(8u32 << 20) / 4).flat_map(u32::to_le_bytes).collect()
}

#[test]
fn reads_at_the_position_through_a_shared_file_read_each_byte_once() {
    let path = scratch("reads");
    let contents = counting_bytes();
    std::fs::write(&path, &contents).unwrap();
    let rt = runtime();
    let file = Arc::new(File::open(&path).unwrap());
    let readers: Vec<_> = (0..THREADS)
        .map(|_| {
            let file = Arc::clone(&file);
            rt.spawn(move || {
                let mut chunks = Vec::new();
                loop {
                    let mut chunk = vec![0; 64 * 1024];
                    let n = (&*file).read(&mut chunk).unwrap();
                    if n == 0 {
                        return chunks;
                    }
                    chunk.truncate(n);
                    chunks.push(chunk);
                }
            })
        })
        .collect();
    let mut chunks: Vec<Vec<u8>> = readers
        .into_iter()
        .flat_map(|reader| reader.join().unwrap())
        .collect();
    let total: usize = chunks.iter().map(Vec::len).sum();
    assert_eq!(total, contents.len(), "read exactly the file, once");
    chunks.sort_by_key(|chunk| u32::from_le_bytes(chunk[..4].try_into().unwrap()));
    assert!(
        chunks.concat() == contents,
        "the chunks reassemble the file"
    );
    std::fs::remove_file(&path).unwrap();
}

/// `THREADS` green threads each write 16 blocks of `block` bytes at the position of one
/// shared file, each block filled with its own tag; returns the file's bytes.
fn write_tagged_blocks(file: File, path: &std::path::Path, block: usize) -> Vec<u8> {
    let rt = runtime();
    let file = Arc::new(file);
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let file = Arc::clone(&file);
            rt.spawn(move || {
                for i in 0..16 {
                    let tag = (thread * 16 + i) as u8;
                    (&*file).write_all(&vec![tag; block]).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    std::fs::read(path).unwrap()
}

/// Every block is whole and present once.
fn assert_blocks_whole(bytes: &[u8], block: usize) {
    assert_eq!(
        bytes.len(),
        THREADS * 16 * block,
        "no write overwrote another"
    );
    let mut tags: Vec<u8> = bytes
        .chunks(block)
        .map(|chunk| {
            assert!(chunk.iter().all(|b| *b == chunk[0]), "a block is whole");
            chunk[0]
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, (0..(THREADS * 16) as u8).collect::<Vec<_>>());
}

#[test]
fn writes_at_the_position_through_a_shared_file_overwrite_nothing() {
    let block = 256 * 1024;
    let path = scratch("writes");
    let file = File::create(&path).unwrap();
    assert_blocks_whole(&write_tagged_blocks(file, &path, block), block);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn appends_through_a_shared_file_overwrite_nothing() {
    for block in [4 * 1024, 256 * 1024] {
        let path = scratch(&format!("appends-{block}"));
        std::fs::write(&path, b"").unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        assert_blocks_whole(&write_tagged_blocks(file, &path, block), block);
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn the_position_follows_reads_writes_and_seeks() {
    let path = scratch("follows");
    let rt = runtime();
    let path_in = path.clone();
    rt.spawn(move || {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path_in)
            .unwrap();
        file.write_all(&[1; 100 * 1024]).unwrap();
        assert_eq!(file.stream_position().unwrap(), 100 * 1024);
        file.seek(SeekFrom::Start(10)).unwrap();
        let mut buf = [0; 20];
        file.read_exact(&mut buf).unwrap();
        assert_eq!(file.stream_position().unwrap(), 30);
        let clone = file.try_clone().unwrap();
        (&clone).read_exact(&mut buf).unwrap();
        assert_eq!(
            file.stream_position().unwrap(),
            50,
            "clones share the position"
        );
    })
    .join()
    .unwrap();
    std::fs::remove_file(&path).unwrap();
}

/// Offsets past `i64::MAX` fit no `off_t`, and `u64::MAX` is io_uring's "current position":
/// `read_at` and `write_at` there fail with std's `EINVAL` on every backend, on green
/// threads and OS threads alike, and neither the file nor its position changes.
#[test]
fn read_at_and_write_at_past_i64_max_fail_with_einval_and_touch_nothing() {
    let path = scratch("huge-offsets");
    let contents: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    for rt in [
        Runtime::builder()
            .worker_threads(1)
            .io_backend(greenring::IoBackend::IoUring)
            .build(),
        Runtime::builder()
            .worker_threads(1)
            .io_backend(greenring::IoBackend::Epoll)
            .build(),
    ]
    .into_iter()
    .flatten()
    {
        let backend = rt.io_backend();
        std::fs::write(&path, &contents).unwrap();
        let check = {
            let path = path.clone();
            let contents = contents.clone();
            move |on: &str| {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .unwrap();
                (&file).seek(SeekFrom::Start(16)).unwrap();
                let big = vec![0xEEu8; 100 * 1024];
                let small = [0xEEu8; 16];
                let mut buf = [0u8; 16];
                for offset in [u64::MAX, u64::MAX - 1, i64::MAX as u64 + 1] {
                    let read = file.read_at(&mut buf, offset).unwrap_err();
                    assert_eq!(
                        read.raw_os_error(),
                        Some(libc::EINVAL),
                        "{on} read_at {offset}"
                    );
                    for data in [&big[..], &small[..]] {
                        let wrote = file.write_at(data, offset).unwrap_err();
                        assert_eq!(
                            wrote.raw_os_error(),
                            Some(libc::EINVAL),
                            "{on} write_at {offset} of {} bytes",
                            data.len()
                        );
                    }
                }
                assert_eq!(
                    (&file).stream_position().unwrap(),
                    16,
                    "{on}: position moved"
                );
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    contents,
                    "{on}: file changed"
                );
            }
        };
        let green = check.clone();
        rt.block_on(move || green(&format!("green thread on {backend}")));
        check(&format!("OS thread ({backend} runtime alive)"));
    }
    std::fs::remove_file(&path).unwrap();
}
