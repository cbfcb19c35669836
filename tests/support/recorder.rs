//! A `log` logger that records the runtime's warnings and errors, for tests that check what
//! the monitor reports. One per test binary (a process has one logger).

use std::sync::Mutex;

struct Recorder(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Recorder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = (record.level(), record.args().to_string());
            self.0.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

/// Installs the recorder as the process's logger, for warnings and errors (again is fine).
pub fn install() {
    let _ = log::set_logger(&RECORDER);
    log::set_max_level(log::LevelFilter::Warn);
}

/// Recorded lines at `level` (any level with `None`) that mention every one of `words`.
#[allow(dead_code)] // Not every test binary that includes this file looks by level.
pub fn logged_at(level: Option<log::Level>, words: &[&str]) -> Vec<String> {
    RECORDER
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, _)| level.is_none_or(|level| *l == level))
        .filter(|(_, line)| words.iter().all(|w| line.contains(w)))
        .map(|(_, line)| line.clone())
        .collect()
}

/// Recorded lines, of any level, that mention every one of `words`.
#[allow(dead_code)]
pub fn logged(words: &[&str]) -> Vec<String> {
    logged_at(None, words)
}

/// Forgets what was recorded so far.
#[allow(dead_code)]
pub fn clear() {
    RECORDER.0.lock().unwrap().clear();
}
