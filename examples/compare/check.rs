//! `--check DIR`: reads back `results.json` with an independent parser and `results.svg`,
//! and verifies that every workload the run selected has a finite median and samples for
//! each of its designs. CI runs it after a quick run.

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
    let json = parse(&text).map_err(|e| format!("results.json does not parse: {e}"))?;
    let only: Option<Vec<String>> = json
        .get("config")
        .and_then(|c| c.get("only"))
        .and_then(Json::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        });
    let workloads = json
        .get("workloads")
        .and_then(Json::as_array)
        .ok_or("no workloads array")?;
    let mut checked = 0;
    for expected in crate::WORKLOADS {
        if only
            .as_ref()
            .is_some_and(|names| !names.iter().any(|n| n == expected.name))
        {
            continue;
        }
        let workload = workloads
            .iter()
            .find(|w| w.get("name").and_then(Json::as_str) == Some(expected.name))
            .ok_or_else(|| format!("workload {} missing", expected.name))?;
        let results = workload
            .get("results")
            .and_then(Json::as_array)
            .ok_or_else(|| format!("{}: no results", expected.name))?;
        for imp in expected.impls {
            let result = results
                .iter()
                .find(|r| r.get("impl").and_then(Json::as_str) == Some(imp.name()))
                .ok_or_else(|| format!("{}: no result for {}", expected.name, imp.name()))?;
            let median = result
                .get("median")
                .and_then(Json::as_f64)
                .ok_or_else(|| format!("{}/{}: no median", expected.name, imp.name()))?;
            if !median.is_finite() || median < 0.0 {
                return Err(format!(
                    "{}/{}: median {median} is not a measurement",
                    expected.name,
                    imp.name()
                ));
            }
            let samples = result
                .get("samples")
                .and_then(Json::as_array)
                .ok_or_else(|| format!("{}/{}: no samples", expected.name, imp.name()))?;
            if samples.is_empty() || samples.iter().any(|s| s.as_f64().is_none()) {
                return Err(format!(
                    "{}/{}: samples missing or not numbers",
                    expected.name,
                    imp.name()
                ));
            }
            checked += 1;
        }
    }
    let svg = std::fs::read_to_string(dir.join("results.svg"))
        .map_err(|e| format!("results.svg: {e}"))?;
    if !svg.starts_with("<svg") || !svg.trim_end().ends_with("</svg>") || !svg.contains("<rect") {
        return Err("results.svg is not a complete SVG chart".to_owned());
    }
    Ok(format!(
        "{}: {checked} results with numbers, JSON parses, SVG written",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
