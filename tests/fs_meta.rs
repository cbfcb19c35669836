//! Metadata, existence checks and `set_len` of `greenring::fs`: the same answers as std,
//! off green threads and on green threads of an io_uring (or whatever
//! `GREENRING_IO_BACKEND` asks for) and an epoll runtime.

#[path = "support/watchdog.rs"]
mod watchdog;

#[path = "support/tempdir.rs"]
mod tempdir;

#[path = "support/everywhere.rs"]
mod everywhere;

use std::io::{self, Read, Seek, SeekFrom, Write};

use greenring::fs::{self, File, Metadata, OpenOptions};
use greenring::os::unix::fs::{symlink, MetadataExt};

use everywhere::everywhere;

/// `ours` and `std`'s describe the same file the same way.
fn assert_same(ours: &Metadata, std: &std::fs::Metadata) {
    assert_eq!(ours.len(), std.len());
    assert_eq!(ours.is_dir(), std.is_dir());
    assert_eq!(ours.is_file(), std.is_file());
    assert_eq!(ours.is_symlink(), std.is_symlink());
    assert_eq!(ours.file_type(), std.file_type());
    assert_eq!(ours.permissions(), std.permissions());
    assert_eq!(ours.modified().unwrap(), std.modified().unwrap());
    assert_eq!(ours.ino(), std.ino());
    assert_eq!(ours.dev(), std.dev());
    assert_eq!(ours.mode(), std.mode());
    assert_eq!(ours.nlink(), std.nlink());
}

#[test]
fn metadata_of_files_dirs_and_symlinks_is_std_s() {
    everywhere("same", 1, |dir| {
        let file = dir.join("file");
        fs::write(&file, b"twelve bytes").unwrap();
        let sub = dir.join("sub");
        fs::create_dir(&sub).unwrap();
        let link = dir.join("link");
        symlink(&file, &link).unwrap();
        let dir_link = dir.join("dir-link");
        symlink(&sub, &dir_link).unwrap();

        for path in [&file, &sub, &link, &dir_link] {
            assert_same(
                &fs::metadata(path).unwrap(),
                &std::fs::metadata(path).unwrap(),
            );
            assert_same(
                &fs::symlink_metadata(path).unwrap(),
                &std::fs::symlink_metadata(path).unwrap(),
            );
            assert!(fs::exists(path).unwrap());
        }
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(meta.len(), 12);
        assert!(meta.is_file());
        assert!(fs::metadata(&sub).unwrap().is_dir());
        assert!(fs::metadata(&link).unwrap().is_file());
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(fs::symlink_metadata(&dir_link).unwrap().is_symlink());

        let opened = File::open(&file).unwrap();
        assert_same(
            &opened.metadata().unwrap(),
            &std::fs::File::open(&file).unwrap().metadata().unwrap(),
        );
        let opened = File::open(&sub).unwrap();
        assert!(opened.metadata().unwrap().is_dir());
    });
}

#[test]
fn metadata_of_a_missing_path_is_not_found() {
    everywhere("missing", 1, |dir| {
        let missing = dir.join("missing");
        let err = fs::metadata(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = fs::symlink_metadata(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!fs::exists(&missing).unwrap());
        assert!(!fs::exists(dir.join("missing/child")).unwrap());

        // A dangling symlink exists itself, but `metadata` and `exists` follow it.
        let dangling = dir.join("dangling");
        symlink(&missing, &dangling).unwrap();
        assert!(fs::symlink_metadata(&dangling).unwrap().is_symlink());
        let err = fs::metadata(&dangling).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!fs::exists(&dangling).unwrap());

        // What std cannot tell, `exists` cannot either: a file used as a directory.
        let file = dir.join("file");
        fs::write(&file, b"").unwrap();
        let ours = fs::exists(file.join("child")).unwrap_err();
        let std = std::fs::exists(file.join("child")).unwrap_err();
        assert_eq!(ours.raw_os_error(), std.raw_os_error());
        assert_eq!(ours.raw_os_error(), Some(libc::ENOTDIR));
        let err = fs::metadata("bad\0path").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = fs::exists("bad\0path").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn create_dir_all_accepts_an_existing_directory_and_refuses_a_file() {
    everywhere("create-all", 1, |dir| {
        let sub = dir.join("a/b");
        fs::create_dir_all(&sub).unwrap();
        fs::create_dir_all(&sub).unwrap();
        assert!(fs::metadata(&sub).unwrap().is_dir());
        let file = dir.join("a/file");
        fs::write(&file, b"").unwrap();
        let err = fs::create_dir_all(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    });
}

#[test]
fn set_len_shrinks_and_grows_a_file() {
    everywhere("set-len", 1, |dir| {
        let path = dir.join("file");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.write_all(b"hello, world").unwrap();

        file.set_len(5).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 5);
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        // The position stays where the write left it, as with std.
        assert_eq!(file.stream_position().unwrap(), 12);

        file.set_len(10_000).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 10_000);
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert_eq!(&bytes[..5], b"hello");
        assert!(bytes[5..].iter().all(|&b| b == 0));
        assert_eq!(bytes.len(), 10_000);

        file.set_len(0).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);

        // A file opened for reading cannot be truncated: the same error as std's.
        let ours = File::open(&path).unwrap().set_len(1).unwrap_err();
        let std = std::fs::File::open(&path).unwrap().set_len(1).unwrap_err();
        assert_eq!(ours.raw_os_error(), std.raw_os_error());
        // Past i64::MAX std refuses the length itself.
        let file = File::create(&path).unwrap();
        let ours = file.set_len(u64::MAX).unwrap_err();
        assert_eq!(ours.kind(), io::ErrorKind::InvalidInput);
    });
}
