//! `--check DIR`: reads back `results.json` with an independent parser and `results.svg`,
//! and verifies that every workload the run selected has a finite median, samples and its
//! named extras for each of its designs, and the direction (`lower_is_better`) of its
//! values; a workload may be absent only if the run declared it skipped for want of the
//! program it needs (the `http_wrk` rows without wrk), and a design only if it needs a cargo
//! feature (greenring-hooks, which a build with the `hooks` feature adds to the external
//! echo rows), checked like the others when present. CI runs it after a quick run.

use std::collections::BTreeMap;
use std::path::Path;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(map) => map.get(key),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// Parses a complete JSON document.
pub fn parse(text: &str) -> Result<Json, String> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value()?;
    parser.space();
    if parser.at != parser.bytes.len() {
        return Err(format!("trailing data at byte {}", parser.at));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.at < self.bytes.len() && self.bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.space();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", byte as char, self.at))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at byte {}", self.at))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.space();
        match self.bytes.get(self.at) {
            None => Err("unexpected end".to_owned()),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(_) => self.number(),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.expect(b'{')?;
        let mut map = BTreeMap::new();
        self.space();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Ok(Json::Object(map));
        }
        loop {
            self.space();
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value()?;
            map.insert(key, value);
            self.space();
            match self.bytes.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Json::Object(map));
                }
                _ => return Err(format!("expected , or }} at byte {}", self.at)),
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.space();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.space();
            match self.bytes.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(format!("expected , or ] at byte {}", self.at)),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err("unterminated string".to_owned());
            };
            self.at += 1;
            match byte {
                b'"' => return Ok(out),
                b'\\' => {
                    let escaped = *self.bytes.get(self.at).ok_or("bad escape")?;
                    self.at += 1;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'u' => {
                            let hex = std::str::from_utf8(
                                self.bytes.get(self.at..self.at + 4).ok_or("bad \\u")?,
                            )
                            .map_err(|e| e.to_string())?;
                            let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            out.push(char::from_u32(code).ok_or("bad \\u code")?);
                            self.at += 4;
                        }
                        _ => return Err(format!("bad escape at byte {}", self.at)),
                    }
                }
                _ => {
                    // Copy one UTF-8 sequence.
                    let start = self.at - 1;
                    let len = match byte {
                        0x00..=0x7F => 1,
                        0xC0..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        _ => 4,
                    };
                    let chunk = self
                        .bytes
                        .get(start..start + len)
                        .ok_or("truncated UTF-8")?;
                    out.push_str(std::str::from_utf8(chunk).map_err(|e| e.to_string())?);
                    self.at = start + len;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.at;
        while self.at < self.bytes.len()
            && matches!(
                self.bytes[self.at],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).map_err(|e| e.to_string())?;
        text.parse::<f64>()
            .map(Json::Number)
            .map_err(|_| format!("bad number {text:?} at byte {start}"))
    }
}

/// Checks a results directory; returns a one-line summary.
pub fn check_dir(dir: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(dir.join("results.json"))
        .map_err(|e| format!("results.json: {e}"))?;
    let counts = check_json(&text)?;
    let svg = std::fs::read_to_string(dir.join("results.svg"))
        .map_err(|e| format!("results.svg: {e}"))?;
    if !svg.starts_with("<svg") || !svg.trim_end().ends_with("</svg>") || !svg.contains("<rect") {
        return Err("results.svg is not a complete SVG chart".to_owned());
    }
    Ok(format!(
        "{}: {} results with numbers, JSON parses, SVG written{}",
        dir.display(),
        counts.results,
        if counts.skipped.is_empty() {
            String::new()
        } else {
            format!(
                "; skipped for a missing program: {}",
                counts.skipped.join(", ")
            )
        }
    ))
}

/// What a valid `results.json` held.
#[derive(Debug, PartialEq)]
pub struct Counts {
    /// (workload, design) results checked.
    pub results: usize,
    /// Workloads the run declared skipped for a missing program.
    pub skipped: Vec<String>,
}

fn names(list: Option<&Json>) -> Option<Vec<String>> {
    list.and_then(Json::as_array).map(|names| {
        names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    })
}

/// Checks the text of a `results.json`: every workload the run selected is there with a
/// finite median, samples and its named extras for each of its designs, unless the run
/// declared it skipped for want of the program it needs.
pub fn check_json(text: &str) -> Result<Counts, String> {
    let json = parse(text).map_err(|e| format!("results.json does not parse: {e}"))?;
    let config = json.get("config");
    let only = names(config.and_then(|c| c.get("only")));
    let skipped = names(config.and_then(|c| c.get("skipped"))).unwrap_or_default();
    let workloads = json
        .get("workloads")
        .and_then(Json::as_array)
        .ok_or("no workloads array")?;
    let mut counts = Counts {
        results: 0,
        skipped: Vec::new(),
    };
    for expected in crate::WORKLOADS {
        if only
            .as_ref()
            .is_some_and(|names| !names.iter().any(|n| n == expected.name))
        {
            continue;
        }
        let found = workloads
            .iter()
            .find(|w| w.get("name").and_then(Json::as_str) == Some(expected.name));
        if skipped.iter().any(|n| n == expected.name) {
            match (expected.needs, found) {
                (Some(_), None) => {
                    counts.skipped.push(expected.name.to_owned());
                    continue;
                }
                (None, _) => {
                    return Err(format!(
                        "{} is declared skipped but needs no program",
                        expected.name
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(format!("{} is both skipped and present", expected.name))
                }
            }
        }
        let workload = found.ok_or_else(|| format!("workload {} missing", expected.name))?;
        if workload.get("lower_is_better") != Some(&Json::Bool(!expected.higher_is_better)) {
            return Err(format!(
                "{}: lower_is_better missing or wrong",
                expected.name
            ));
        }
        let results = workload
            .get("results")
            .and_then(Json::as_array)
            .ok_or_else(|| format!("{}: no results", expected.name))?;
        for imp in expected.impls {
            let what = format!("{}/{}", expected.name, imp.name());
            let found = results
                .iter()
                .find(|r| r.get("impl").and_then(Json::as_str) == Some(imp.name()));
            let result = match (found, imp.feature()) {
                (Some(result), _) => result,
                // A design that needs a cargo feature is absent from a run built without it.
                (None, Some(_)) => continue,
                (None, None) => {
                    return Err(format!("{}: no result for {}", expected.name, imp.name()))
                }
            };
            let median = result
                .get("median")
                .and_then(Json::as_f64)
                .ok_or_else(|| format!("{what}: no median"))?;
            if !median.is_finite() || median < 0.0 || (expected.higher_is_better && median == 0.0) {
                return Err(format!("{what}: median {median} is not a measurement"));
            }
            let samples = result
                .get("samples")
                .and_then(Json::as_array)
                .ok_or_else(|| format!("{what}: no samples"))?;
            if samples.is_empty() || samples.iter().any(|s| s.as_f64().is_none()) {
                return Err(format!("{what}: samples missing or not numbers"));
            }
            for name in expected.extras {
                let value = result
                    .get("extra")
                    .and_then(|e| e.get(name))
                    .and_then(Json::as_f64);
                if !value.is_some_and(|v| v.is_finite() && v >= 0.0) {
                    return Err(format!("{what}: extra {name} missing or not a measurement"));
                }
            }
            counts.results += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::Impl;

    #[test]
    fn parses_what_it_should() {
        let json = parse(r#"{"a": [1, -2.5e3, true, null], "b": "x\"\u00e9y"}"#).unwrap();
        assert_eq!(json.get("b").and_then(Json::as_str), Some("x\"éy"));
        assert_eq!(
            json.get("a").and_then(Json::as_array).map(<[Json]>::len),
            Some(4)
        );
        assert!(parse("{\"a\": }").is_err());
        assert!(parse("[1, 2").is_err());
        assert!(parse("{} x").is_err());
    }

    /// A results.json for `selected` workloads (all their designs, every extra set to 1.0),
    /// declaring `skipped` skipped.
    fn results(selected: &[&str], skipped: &[&str], drop_extra: Option<&str>) -> String {
        results_of(selected, skipped, drop_extra, |_| true)
    }

    /// As [`results`], with the designs `with` accepts only.
    fn results_of(
        selected: &[&str],
        skipped: &[&str],
        drop_extra: Option<&str>,
        with: impl Fn(Impl) -> bool,
    ) -> String {
        let quoted = |names: &[&str]| {
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let workloads: Vec<String> = crate::WORKLOADS
            .iter()
            .filter(|w| selected.contains(&w.name) && !skipped.contains(&w.name))
            .map(|w| {
                let results: Vec<String> = w
                    .impls
                    .iter()
                    .filter(|imp| with(**imp))
                    .map(|imp| {
                        let extra: Vec<String> = w
                            .extras
                            .iter()
                            .filter(|n| Some(**n) != drop_extra)
                            .map(|n| format!("{n:?}: 1.0"))
                            .collect();
                        format!(
                            "{{\"impl\": {:?}, \"median\": 2.5, \"samples\": [2.5], \"extra\": {{{}}}}}",
                            imp.name(),
                            extra.join(", ")
                        )
                    })
                    .collect();
                format!(
                    "{{\"name\": {:?}, \"lower_is_better\": {}, \"results\": [{}]}}",
                    w.name,
                    !w.higher_is_better,
                    results.join(", ")
                )
            })
            .collect();
        format!(
            "{{\"config\": {{\"only\": [{}], \"skipped\": [{}]}}, \"workloads\": [{}]}}",
            quoted(selected),
            quoted(skipped),
            workloads.join(", ")
        )
    }

    const EXTERNAL: &[&str] = &[
        "tcp_echo",
        "tcp_echo_external",
        "tcp_echo_external_1k",
        "http_wrk",
        "http_wrk_close",
    ];
    const NEED_WRK: &[&str] = &["http_wrk", "http_wrk_close"];

    #[test]
    fn accepts_complete_results() {
        // Three designs a row, and greenring-hooks in the two external echo rows.
        let counts = check_json(&results(EXTERNAL, &[], None)).unwrap();
        assert_eq!(counts.results, 17);
        assert!(counts.skipped.is_empty());
    }

    #[test]
    fn accepts_results_without_a_feature_design_and_checks_it_when_present() {
        let without = results_of(EXTERNAL, &[], None, |imp| imp != Impl::GreenringHooks);
        assert_eq!(check_json(&without).unwrap().results, 15);
        // Present, it must be as complete as the others.
        let hooks_only_short = results(&["tcp_echo_external"], &[], None).replace(
            "{\"impl\": \"greenring-hooks\", \"median\": 2.5",
            "{\"impl\": \"greenring-hooks\", \"median\": 0",
        );
        let err = check_json(&hooks_only_short).unwrap_err();
        assert!(err.contains("tcp_echo_external/greenring-hooks"), "{err}");
        // The designs every build runs stay required.
        let no_tokio = results_of(EXTERNAL, &[], None, |imp| imp != Impl::Tokio);
        assert!(check_json(&no_tokio)
            .unwrap_err()
            .contains("no result for tokio"));
    }

    #[test]
    fn requires_the_named_extras() {
        let err = check_json(&results(EXTERNAL, &[], Some("cpu_us_per_msg"))).unwrap_err();
        assert!(err.contains("cpu_us_per_msg"), "{err}");
        let err = check_json(&results(EXTERNAL, &[], Some("p99_us"))).unwrap_err();
        assert!(err.contains("p99_us"), "{err}");
    }

    #[test]
    fn accepts_a_declared_skip_only_for_a_missing_program() {
        let counts = check_json(&results(EXTERNAL, NEED_WRK, None)).unwrap();
        assert_eq!(counts.results, 11);
        assert_eq!(counts.skipped, NEED_WRK);
        // Both absent, declared as `skipped`: the error names the first undeclared one.
        let error_declaring = |skipped: &str| {
            let json = results(EXTERNAL, NEED_WRK, None).replace(
                "\"skipped\": [\"http_wrk\", \"http_wrk_close\"]",
                &format!("\"skipped\": [{skipped}]"),
            );
            check_json(&json).unwrap_err()
        };
        assert!(error_declaring("").contains("http_wrk missing"));
        assert!(error_declaring("\"http_wrk\"").contains("http_wrk_close missing"));
        // A workload that needs no program cannot be skipped.
        assert!(check_json(&results(EXTERNAL, &["tcp_echo_external"], None)).is_err());
    }

    #[test]
    fn accepts_the_fan_out_and_live_thread_rows() {
        const ROWS: &[&str] = &["fan_out_10k", "fan_out_100k", "live_threads"];
        // std runs the small fan-out only.
        assert_eq!(check_json(&results(ROWS, &[], None)).unwrap().results, 7);
        let err = check_json(&results(ROWS, &[], Some("rss_bytes"))).unwrap_err();
        assert!(
            err.contains("live_threads") && err.contains("rss_bytes"),
            "{err}"
        );
    }

    #[test]
    fn checks_the_direction_of_rates() {
        let flipped = results(&["http_wrk"], &[], None)
            .replace("\"lower_is_better\": false", "\"lower_is_better\": true");
        assert!(check_json(&flipped)
            .unwrap_err()
            .contains("lower_is_better"));
    }
}
