//! Every repository path the documentation names exists, and every relative link leads
//! somewhere.
//!
//! Scanned: `README.md`, every `docs/*.md` and the comments of `Cargo.toml`.
//! - In Markdown, inline code spans (outside fenced blocks, whose contents are program
//!   output and code) are split into words; a word that starts with one of [`ROOTS`] is a
//!   path and must exist (a trailing `/` asks for a directory). `<name>` and `*` in a path
//!   are placeholders, `{a,b}` alternatives: such a path must match at least one file.
//!   A word without a root that ends like a source file ([`SOURCE_ENDINGS`]: `carrier.rs`,
//!   `sched/worker.rs`) must be the end of some file's path. Other words (`target/compare`,
//!   `us/msg`, `reactor::ops`) are not paths of the repository and are left alone.
//! - Relative Markdown links (`[text](other.md#heading)`) must lead to an existing file, and
//!   a `#fragment` into a Markdown file to one of its headings, as GitHub renders them.
//! - In `Cargo.toml` comments every word is looked at, backticks or not.
//! - The clippy entries that `docs/porting.md` quotes in its `toml` blocks are lines of
//!   `docs/clippy-port.toml`, the file it tells porters to copy.
//!
//! Plain file checks: no runtime API is involved.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The directories whose paths the docs name.
const ROOTS: &[&str] = &[
    "src/",
    "tests/",
    "examples/",
    "benches/",
    "asm/",
    "docs/",
    ".ci/",
];

/// Endings of file names that the docs may name without their directory.
const SOURCE_ENDINGS: &[&str] = &[".rs", ".S", ".c", ".sh", ".md"];

/// Characters that end a word inside a code span or a comment.
const SEPARATORS: &[char] = &['"', '\'', '(', ')', ',', ';', '=', '[', ']', '`'];

/// One thing wrong in one file.
#[derive(Debug, PartialEq, Eq)]
struct Problem {
    file: String,
    line: usize,
    what: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The documents to scan, relative to the repository root.
fn markdown_files(root: &Path) -> Vec<String> {
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| {
            entry
                .expect("a docs/ entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The text with fenced code blocks blanked out (line breaks kept, so line numbers hold).
fn without_fences(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(marker)) => fence = Some(marker),
            (Some(open), Some(marker)) if open == marker => fence = None,
            (None, None) => {
                out.push_str(line);
                continue;
            }
            _ => {}
        }
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// Inline code spans as (line, contents), and the text with every span blanked out.
fn code_spans(text: &str) -> (Vec<(usize, String)>, String) {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut rest = text.to_owned().into_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
        let start = i + run;
        let close = (start..bytes.len()).find(|&j| {
            bytes[j..].starts_with(&vec![b'`'; run])
                && bytes.get(j + run) != Some(&b'`')
                && (j == 0 || bytes[j - 1] != b'`')
        });
        match close {
            Some(end) => {
                spans.push((line_of(text, start), text[start..end].to_owned()));
                for byte in &mut rest[i..end + run] {
                    if *byte != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end + run;
            }
            None => i = start,
        }
    }
    (
        spans,
        String::from_utf8(rest).expect("blanking keeps UTF-8"),
    )
}

/// Link targets `[text](target)` as (line, target).
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("](") {
        let start = from + found + 2;
        let end = text[start..]
            .find(|c: char| c == ')' || c.is_whitespace())
            .map_or(text.len(), |n| start + n);
        out.push((line_of(text, start), text[start..end].to_owned()));
        from = end;
    }
    out
}

/// `text` split at whitespace and [`SEPARATORS`], except for commas inside `{a,b}`.
fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut depth) = (0, 0usize);
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth > 0 => {}
            c if c.is_whitespace() || SEPARATORS.contains(&c) => {
                out.push(&text[start..at]);
                start = at + c.len_utf8();
                depth = 0;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// The words of `text` that name repository paths, without a trailing `:line:column`.
fn path_words(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .map(|word| word.trim_start_matches("./"))
        .map(|word| word.trim_end_matches(['.', ',', ':', ';', '!', '?']))
        .map(|word| {
            let mut word = word;
            while let Some((head, tail)) = word.rsplit_once(':') {
                if tail.is_empty() || !tail.chars().all(|c| c.is_ascii_digit()) {
                    break;
                }
                word = head;
            }
            word.to_owned()
        })
        .filter(|word| {
            ROOTS.iter().any(|root| word.starts_with(root))
                || (SOURCE_ENDINGS.iter().any(|end| word.ends_with(end))
                    && !word.starts_with("target/")
                    && !word.starts_with('/'))
        })
        .collect()
}

/// Every file of the repository (not `target/` or `.git/`), as a path relative to `root`.
fn repository_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(root.join(&dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let relative = dir.join(entry.file_name());
            if relative == Path::new("target") || relative == Path::new(".git") {
                continue;
            }
            if entry.path().is_dir() {
                dirs.push(relative);
            } else {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// `{a,b}` alternatives spelled out (one level, as the docs use them).
fn alternatives(pattern: &str) -> Vec<String> {
    match (pattern.find('{'), pattern.find('}')) {
        (Some(open), Some(close)) if open < close => pattern[open + 1..close]
            .split(',')
            .flat_map(|choice| {
                alternatives(&format!(
                    "{}{choice}{}",
                    &pattern[..open],
                    &pattern[close + 1..]
                ))
            })
            .collect(),
        _ => vec![pattern.to_owned()],
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (head.len()..=name.len())
                    .any(|at| name.is_char_boundary(at) && matches(tail, &name[at..]))
        }
    }
}

/// Whether some path under `dir` matches the segments of a pattern.
fn glob_exists(dir: &Path, segments: &[&str], want_dir: bool) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return !want_dir || dir.is_dir();
    };
    if !first.contains('*') {
        let next = dir.join(first);
        return next.exists() && glob_exists(&next, rest, want_dir);
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        matches(first, &name.to_string_lossy()) && glob_exists(&entry.path(), rest, want_dir)
    })
}

/// Whether the repository path `path` (perhaps with placeholders) exists under `root`; a
/// path without a root (a file name, `sched/worker.rs`) must end some file's path.
fn path_exists(root: &Path, path: &str) -> bool {
    if !ROOTS.iter().any(|r| path.starts_with(r)) {
        return repository_files(root)
            .iter()
            .any(|file| file == path || file.ends_with(&format!("/{path}")));
    }
    alternatives(path).iter().any(|path| {
        let mut pattern = String::new();
        let mut in_placeholder = false;
        for c in path.chars() {
            match c {
                '<' => in_placeholder = true,
                '>' if in_placeholder => {
                    in_placeholder = false;
                    pattern.push('*');
                }
                _ if in_placeholder => {}
                _ => pattern.push(c),
            }
        }
        let want_dir = pattern.ends_with('/');
        let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        glob_exists(root, &segments, want_dir)
    })
}

/// GitHub's anchors for the headings of a Markdown text.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    without_fences(text)
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            let title = line.trim_start_matches('#').trim();
            let slug: String = title
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect();
            let count = seen.entry(slug.clone()).or_insert(0);
            let anchor = if *count == 0 {
                slug.clone()
            } else {
                format!("{slug}-{count}")
            };
            *count += 1;
            anchor
        })
        .collect()
}

/// Checks one link target of the Markdown file `file` (relative to `root`).
fn check_link(root: &Path, file: &str, text: &str, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, fragment) = match target.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (target, None),
    };
    let (shown, linked_text) = if path.is_empty() {
        (file.to_owned(), Some(text.to_owned()))
    } else {
        let base = Path::new(file).parent().unwrap_or(Path::new(""));
        let resolved = root.join(base).join(path);
        if !resolved.exists() {
            return Some(format!(
                "link `{target}`: no file {}",
                base.join(path).display()
            ));
        }
        let text = path
            .ends_with(".md")
            .then(|| fs::read_to_string(&resolved).ok())
            .flatten();
        (base.join(path).display().to_string(), text)
    };
    match (fragment, linked_text) {
        (Some(fragment), Some(linked)) if !anchors(&linked).iter().any(|a| a == fragment) => Some(
            format!("link `{target}`: no heading #{fragment} in {shown}"),
        ),
        _ => None,
    }
}

/// Everything wrong in the Markdown document `text`, named `file` (relative to `root`).
fn check_markdown(root: &Path, file: &str, text: &str) -> Vec<Problem> {
    let prose = without_fences(text);
    let (spans, outside_code) = code_spans(&prose);
    let mut problems: Vec<Problem> = spans
        .iter()
        .flat_map(|(line, span)| path_words(span).into_iter().map(move |p| (*line, p)))
        .filter(|(_, path)| !path_exists(root, path))
        .map(|(line, path)| Problem {
            file: file.to_owned(),
            line,
            what: format!("`{path}` does not exist"),
        })
        .collect();
    problems.extend(
        links(&outside_code)
            .into_iter()
            .filter_map(|(line, target)| {
                check_link(root, file, text, &target).map(|what| Problem {
                    file: file.to_owned(),
                    line,
                    what,
                })
            }),
    );
    problems
}

/// The comment of a TOML line: from the first `#` outside a string.
fn toml_comment(line: &str) -> Option<&str> {
    let mut quote: Option<char> = None;
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), c) if c == open => quote = None,
            (None, '#') => return Some(&line[at + 1..]),
            _ => {}
        }
    }
    None
}

/// Everything wrong in the comments of the TOML file `text`, named `file`.
fn check_toml_comments(root: &Path, file: &str, text: &str) -> Vec<Problem> {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| toml_comment(line).map(|comment| (n + 1, comment)))
        .flat_map(|(line, comment)| path_words(comment).into_iter().map(move |p| (line, p)))
        .filter(|(_, path)| !path_exists(root, path))
        .map(|(line, path)| Problem {
            file: file.to_owned(),
            line,
            what: format!("`{path}` does not exist"),
        })
        .collect()
}

/// The lines of `toml` fenced blocks in `text` that are clippy entries (`{ path = ... }`).
fn quoted_clippy_entries(text: &str) -> Vec<&str> {
    let mut in_toml = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("```") {
            in_toml = !in_toml && line == "```toml";
        } else if in_toml && line.starts_with("{ path =") {
            out.push(line);
        }
    }
    out
}

fn report(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {}:{}: {}\n", p.file, p.line, p.what))
        .collect()
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = repo();
    let mut problems = Vec::new();
    let mut named = 0;
    for file in markdown_files(&root) {
        let text = fs::read_to_string(root.join(&file)).expect("a readable document");
        problems.extend(check_markdown(&root, &file, &text));
        let (spans, _) = code_spans(&without_fences(&text));
        named += spans
            .iter()
            .map(|(_, span)| path_words(span).len())
            .sum::<usize>();
    }
    // The docs name dozens of paths: a scan that finds few has stopped seeing them.
    assert!(named >= 20, "only {named} paths found in the docs");
    let cargo = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml is readable");
    problems.extend(check_toml_comments(&root, "Cargo.toml", &cargo));
    assert!(
        problems.is_empty(),
        "the docs name paths or links that do not exist:\n{}",
        report(&problems)
    );
}

#[test]
fn a_wrong_path_or_link_is_named_with_its_line() {
    let text =
        "# Title\n\nSee `src/lib.rs` and\n`src/no_such_module.rs`, [here](#no-such-title),\n\
                [there](missing.md) and [title](#title).\n";
    let problems = check_markdown(&repo(), "README.md", text);
    let found: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.what.as_str())).collect();
    assert_eq!(
        found,
        [
            (4, "`src/no_such_module.rs` does not exist"),
            (
                4,
                "link `#no-such-title`: no heading #no-such-title in README.md"
            ),
            (5, "link `missing.md`: no file missing.md"),
        ]
    );
}

#[test]
fn words_that_are_not_repository_paths_are_left_alone() {
    let text = "Units `us/msg`, `I/O`, `target/compare`, `reactor::ops`, `--out results/`,\n\
                `RUSTFLAGS=\"--cfg loom\" cargo test`, `io_uring`; prose src/not_code.rs;\n\n\
                ```text\n      at ./src/not/checked.rs:297:27\n```\n";
    assert_eq!(check_markdown(&repo(), "README.md", text), []);
}

#[test]
fn line_numbers_directories_and_placeholders_are_understood() {
    let root = repo();
    for path in path_words("`./src/lib.rs:12:5`, (asm/<arch>.S) docs/*.md; src/{lib,time}.rs.") {
        assert!(path_exists(&root, &path), "{path}");
    }
    for missing in [
        "asm/<arch>.rs",
        "src/lib.rs/",
        "docs/*.txt",
        "src/{lib,nope}/",
    ] {
        assert!(!path_exists(&root, missing), "{missing}");
    }
}

#[test]
fn toml_comments_are_scanned_and_strings_are_not() {
    let text = "name = \"src/in_a_string.rs # not a comment\"\n# see src/missing.rs and `asm/`\n";
    let problems = check_toml_comments(&repo(), "Cargo.toml", text);
    assert_eq!(
        problems,
        [Problem {
            file: "Cargo.toml".to_owned(),
            line: 2,
            what: "`src/missing.rs` does not exist".to_owned(),
        }]
    );
}

#[test]
fn links_resolve_from_the_linking_file_and_reach_headings() {
    let root = repo();
    let heading_of_readme = anchors(&fs::read_to_string(root.join("README.md")).unwrap());
    assert!(heading_of_readme.iter().any(|a| a == "soundness"));
    assert_eq!(
        anchors("# A `code` title, (with) punctuation\n## Twice\n## Twice\n"),
        ["a-code-title-with-punctuation", "twice", "twice-1"]
    );
    assert_eq!(
        check_link(&root, "docs/x.md", "", "../README.md#soundness"),
        None
    );
    assert!(check_link(&root, "docs/x.md", "", "README.md").is_some());
    assert_eq!(
        check_link(&root, "README.md", "", "https://example.com/src/nope.rs"),
        None
    );
}

#[test]
fn file_names_without_their_directory_must_end_a_path() {
    let root = repo();
    for path in path_words("`carrier.rs`, `sched/worker.rs`, `README.md`") {
        assert!(path_exists(&root, &path), "{path}");
    }
    assert_eq!(
        path_words("`target/criterion/new/estimates.rs` and `/usr/lib/x.c`"),
        [""; 0]
    );
    for missing in ["epoll_ops.rs", "reactor/worker.rs", "orker.rs"] {
        assert!(!path_exists(&root, missing), "{missing}");
    }
}

#[test]
fn the_clippy_entries_the_port_guide_quotes_are_in_its_file() {
    let root = repo();
    let guide = fs::read_to_string(root.join("docs/porting.md")).expect("the port guide");
    let file =
        fs::read_to_string(root.join("docs/clippy-port.toml")).expect("the clippy configuration");
    let entries: Vec<&str> = file.lines().map(str::trim).collect();
    let quoted = quoted_clippy_entries(&guide);
    assert!(quoted.len() >= 3, "only {} entries quoted", quoted.len());
    let missing: Vec<&&str> = quoted.iter().filter(|q| !entries.contains(q)).collect();
    assert!(
        missing.is_empty(),
        "docs/porting.md quotes entries docs/clippy-port.toml does not have: {missing:#?}"
    );
    let text =
        "```toml\n{ path = \"a\" },\n```\n```rust\n{ path = \"b\" },\n```\n{ path = \"c\" }\n";
    assert_eq!(quoted_clippy_entries(text), ["{ path = \"a\" },"]);
}
