//! The crate's modules call down: every `crate::` path in `src/` names a module of a lower
//! layer than its own, or one of the few arrows up listed here (each with its reason). A new
//! arrow up fails this test, naming the file and the module it reaches; the layering is
//! described in `docs/architecture.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer, bottom up. Modules of one layer may use
/// each other only if listed in a lower position.
const LAYERS: &[(&str, u32)] = &[
    // Leaves: no greenring imports (or only of other leaves).
    ("arch", 0),
    ("loom", 0),
    ("report", 0),
    ("stats", 0),
    ("timeout", 0),
    ("sys", 0),
    ("context", 1),
    ("stack", 1),
    // A green thread's record, the current-task cell, blocking points, wait records.
    ("task", 2),
    ("overflow", 3),
    // The kernel's I/O interfaces: ring, epoll, completion slots, timer records.
    ("reactor", 3),
    // Workers, queues, idle protocol, monitor, timer heaps, the dump's walk.
    ("sched", 4),
    // Ops and the one driver that runs them; timed waits; the blocking pool.
    ("driver", 5),
    // The std-shaped API, bottom up.
    ("time", 6),
    ("hooks", 6),
    ("thread", 7),
    ("blocking", 8),
    ("sync", 9),
    ("local", 9),
    ("bridge", 9),
    ("fs", 10),
    ("io", 10),
    ("net", 10),
    ("process", 10),
    ("os", 11),
    ("dump", 11),
    ("metrics", 11),
    ("panic_message", 11),
    ("runtime", 12),
    ("bench_support", 13),
    ("lib", 14),
];

/// Crate-root re-exports that stand for a module.
const ROOT_NAMES: &[(&str, &str)] = &[
    ("spawn_blocking", "blocking"),
    ("yield_now", "thread"),
    ("spawn", "thread"),
    ("green_local", "local"),
    ("Runtime", "runtime"),
    ("JoinHandle", "thread"),
];

/// The arrows up the API's own shape asks for, as (file, module reached).
const ALLOWED_UP: &[(&str, &str)] = &[
    // `thread::Builder::spawn` spawns on the current runtime, starting the default one on
    // first use, and `spawn_on` takes a `&Runtime`; `Runtime::spawn` returns the thread's
    // `JoinHandle`.
    ("src/thread/builder.rs", "runtime"),
    // `thread::scope` spawns on the current runtime too, as `thread::spawn` does.
    ("src/thread/scope.rs", "runtime"),
    // `Scope::spawn_blocking` runs a borrowing closure as a blocking-pool job.
    ("src/thread/scope.rs", "blocking"),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without comments and without its unit tests (which may use
/// anything).
fn code_of(text: &str) -> String {
    let end = ["#[cfg(test)]\nmod tests", "#[cfg(all(test"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min()
        .unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `code` names as `crate::<module>`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let name = ROOT_NAMES
            .iter()
            .find(|(root, _)| *root == name)
            .map_or(name.clone(), |(_, module)| (*module).to_owned());
        found.insert(name);
        rest = after;
    }
    found
}

#[test]
fn every_module_calls_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut ups = Vec::new();
    let mut unknown = Vec::new();
    let mut arrows = 0;
    for file in &files {
        let from = module_of(&root, file);
        let Some(from_layer) = layer(&from) else {
            unknown.push(format!("{}: module `{from}` has no layer", file.display()));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for to in crate_paths(&code) {
            if to == from {
                continue;
            }
            let Some(to_layer) = layer(&to) else {
                continue; // a crate-root item that is not a module (a macro, a type)
            };
            arrows += 1;
            let shown = format!("src/{}", file.strip_prefix(&root).unwrap().display());
            if to_layer > from_layer && !ALLOWED_UP.contains(&(shown.as_str(), to.as_str())) {
                ups.push(format!(
                    "{shown} (layer {from_layer}) -> {to} (layer {to_layer})"
                ));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "give these a layer:\n{}",
        unknown.join("\n")
    );
    assert!(
        arrows > 50,
        "the scan found only {arrows} arrows: is it broken?"
    );
    assert!(
        ups.is_empty(),
        "arrows up (call down instead, or list the arrow with its reason):\n{}",
        ups.join("\n")
    );
}

#[test]
fn the_scan_sees_crate_paths_and_skips_comments_and_tests() {
    let code = code_of(
        "use crate::task::Task;\n// crate::runtime::Runtime\nfn f() { crate::spawn(|| ()); }\n\
         #[cfg(test)]\nmod tests { use crate::dump; }\n",
    );
    let found = crate_paths(&code);
    assert!(found.contains("task"));
    assert!(
        found.contains("thread"),
        "crate::spawn is the thread module's"
    );
    assert!(!found.contains("runtime"), "comments are skipped");
    assert!(!found.contains("dump"), "unit tests are skipped");
}
