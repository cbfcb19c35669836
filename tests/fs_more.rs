//! The directory, link, copy, permission, lock and positional calls of `greenring::fs`,
//! each checked off green threads and on green threads of an io_uring (or whatever
//! `GREENRING_IO_BACKEND` asks for) and an epoll runtime. Every test runs under a watchdog:
//! a call that blocked its worker would deadlock the lock test instead of passing.

#[path = "support/watchdog.rs"]
mod watchdog;

#[path = "support/tempdir.rs"]
mod tempdir;

#[path = "support/everywhere.rs"]
mod everywhere;

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, SystemTime};

use greenring::fs::{self, DirBuilder, File, FileTimes, OpenOptions, Permissions, TryLockError};
use greenring::os::unix::fs::{symlink, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};

use everywhere::everywhere;

#[test]
fn directories_are_created_listed_and_removed() {
    everywhere("dirs", 2, |dir| {
        let sub = dir.join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(fs::exists(&sub).unwrap());
        let err = fs::create_dir(&sub).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = fs::create_dir(dir.join("missing/child")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        // More entries than one read-ahead batch.
        let mut expected = BTreeSet::new();
        for i in 0..150 {
            let name = format!("file-{i:03}");
            fs::write(sub.join(&name), i.to_string()).unwrap();
            expected.insert(name);
        }
        DirBuilder::new()
            .recursive(true)
            .create(sub.join("nested/deeper"))
            .unwrap();
        expected.insert("nested".to_owned());
        let mut seen = BTreeSet::new();
        for entry in fs::read_dir(&sub).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            assert_eq!(entry.path(), sub.join(&name));
            assert_eq!(entry.file_type().unwrap().is_dir(), name == "nested");
            assert!(seen.insert(name), "no entry twice");
        }
        assert_eq!(seen, expected);
        let err = fs::read_dir(dir.join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        let err = DirBuilder::new().create(sub.join("nested")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        fs::remove_dir(sub.join("nested/deeper")).unwrap();
        assert!(fs::remove_dir(&sub).is_err(), "not empty");
        fs::remove_dir_all(&sub).unwrap();
        assert!(!fs::exists(&sub).unwrap());
    });
}

#[test]
fn rename_copy_and_links() {
    everywhere("links", 2, |dir| {
        let a = dir.join("a.txt");
        let b = dir.join("b.txt");
        fs::write(&a, "contents").unwrap();
        fs::rename(&a, &b).unwrap();
        assert!(!fs::exists(&a).unwrap());
        assert_eq!(fs::read_to_string(&b).unwrap(), "contents");

        fs::set_permissions(&b, Permissions::from_mode(0o640)).unwrap();
        let copied = dir.join("copy.txt");
        assert_eq!(fs::copy(&b, &copied).unwrap(), 8);
        assert_eq!(fs::read_to_string(&copied).unwrap(), "contents");
        let mode = fs::metadata(&copied).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "copy keeps the permissions");

        let hard = dir.join("hard.txt");
        fs::hard_link(&b, &hard).unwrap();
        assert_eq!(fs::metadata(&b).unwrap().nlink(), 2);
        assert_eq!(
            fs::metadata(&hard).unwrap().ino(),
            fs::metadata(&b).unwrap().ino()
        );

        let soft = dir.join("soft.txt");
        symlink("b.txt", &soft).unwrap();
        assert_eq!(fs::read_link(&soft).unwrap(), Path::new("b.txt"));
        assert!(fs::symlink_metadata(&soft)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::metadata(&soft).unwrap().is_file());
        assert_eq!(
            fs::canonicalize(&soft).unwrap(),
            fs::canonicalize(dir).unwrap().join("b.txt")
        );
        let err = fs::read_link(&b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        // O_NOFOLLOW through custom_flags refuses the symlink.
        let err = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&soft)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        // And through std's extension trait, whose `mode` ported code calls.
        let mut options = OpenOptions::new();
        OpenOptionsExt::mode(options.write(true).create_new(true), 0o600);
        let file = options.open(dir.join("private")).unwrap();
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    });
}

#[test]
fn create_new_permissions_and_times() {
    everywhere("attrs", 2, |dir| {
        let path = dir.join("new.txt");
        let file = File::create_new(&path).unwrap();
        let err = File::create_new(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);

        file.set_permissions(Permissions::from_mode(0o604)).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o604
        );

        let accessed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        file.set_times(
            FileTimes::new()
                .set_accessed(accessed)
                .set_modified(modified),
        )
        .unwrap();
        let metadata = file.metadata().unwrap();
        assert_eq!(metadata.accessed().unwrap(), accessed);
        assert_eq!(metadata.modified().unwrap(), modified);
        let later = modified + Duration::from_secs(60);
        file.set_modified(later).unwrap();
        assert_eq!(file.metadata().unwrap().modified().unwrap(), later);
    });
}

#[test]
fn positional_reads_and_writes_all_at() {
    everywhere("at", 2, |dir| {
        let path = dir.join("data.bin");
        let file = File::create_new(&path).unwrap();
        // Larger than an inline write, so the io_uring path runs on green threads.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all_at(&big, 10).unwrap();
        file.write_all_at(b"head", 0).unwrap();
        let mut back = vec![0; big.len()];
        file.read_exact_at(&mut back, 10).unwrap();
        assert_eq!(back, big);
        let mut head = [0; 4];
        file.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(&head, b"head");
        let err = file
            .read_exact_at(&mut head, big.len() as u64 + 8)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // The file position did not move.
        let mut first = [0; 4];
        (&file).read_exact(&mut first).unwrap();
        assert_eq!(&first, b"head");
    });
}

#[test]
fn advisory_locks() {
    // One worker: a `lock` that blocked the worker would keep the holder from unlocking.
    everywhere("locks", 1, |dir| {
        let path = dir.join("lock");
        let holder = File::create(&path).unwrap();
        let other = File::open(&path).unwrap();
        holder.lock().unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            other.try_lock_shared(),
            Err(TryLockError::WouldBlock)
        ));
        let as_io: io::Error = other.try_lock().unwrap_err().into();
        assert_eq!(as_io.kind(), io::ErrorKind::WouldBlock);
        // A clone shares the open file, and with it the lock.
        holder.try_clone().unwrap().try_lock().unwrap();

        let unlocker = greenring::spawn(move || {
            greenring::time::sleep(Duration::from_millis(50));
            holder.unlock().unwrap();
            holder
        });
        other.lock_shared().unwrap(); // waits for the unlock
        let holder = unlocker.join().unwrap();
        assert!(matches!(holder.try_lock(), Err(TryLockError::WouldBlock)));
        holder.try_lock_shared().unwrap();
        other.unlock().unwrap();
        holder.unlock().unwrap();
        other.try_lock().unwrap();
    });
}
