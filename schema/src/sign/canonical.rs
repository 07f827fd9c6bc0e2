//! Recognising JSON text that is already in canonical form, so that a verifier can take the
//! signed bytes straight from the body instead of parsing every record into a `Value` and
//! writing it out again.
//!
//! Canonical means exactly what [`super::canonical_bytes`] writes for the value the text holds:
//! `serde_json`'s compact output of a `Value` whose object keys are sorted. So the text has no
//! whitespace; object keys are strictly increasing (no duplicates); strings escape only what
//! `serde_json` escapes, the way it escapes it; integers have no sign but `-` and no leading
//! zero, and fit the 64-bit integer `serde_json` would read them into; every other number is
//! exactly what `serde_json` prints for its `f64`. The check errs on the safe side: text it
//! refuses is merely taken the slow way (parsed and written out again), never rejected.

/// serde_json refuses nesting deeper than this; deeper text is left to the slow path.
const MAX_DEPTH: u32 = 128;

/// Whether `text`, valid JSON, is byte for byte the canonical form of the value it holds.
///
/// `text` should already have been checked to be JSON (as `serde_json` does when it reads a
/// body into `RawValue`s); invalid text is refused, but the refusal is not an error report.
pub fn is_canonical_json(text: &[u8]) -> bool {
    let mut reader = Reader {
        text,
        at: 0,
        scratch: Vec::new(),
    };
    reader.value(0) && reader.at == text.len()
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
    /// Where a float is written out again to be compared.
    scratch: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: u32) -> bool {
        if depth >= MAX_DEPTH {
            return false;
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn object(&mut self, depth: u32) -> bool {
        self.at += 1; // '{'
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<&'a [u8]> = None;
        loop {
            let Some(key) = self.string() else {
                return false;
            };
            // An escaped key would have to be compared decoded; such keys are left to the slow
            // path. Unescaped UTF-8 compares bytewise exactly as `String`s order in a BTreeMap.
            if key.contains(&b'\\') || previous.is_some_and(|before| before >= key) {
                return false;
            }
            previous = Some(key);
            if !self.eat(b':') || !self.value(depth + 1) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn array(&mut self, depth: u32) -> bool {
        self.at += 1; // '['
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth + 1) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A string as `serde_json` writes it; returns its raw content between the quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        loop {
            let byte = self.peek()?;
            self.at += 1;
            match byte {
                b'"' => return Some(&self.text[start..self.at - 1]),
                b'\\' => {
                    let escape = self.peek()?;
                    self.at += 1;
                    match escape {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            // serde_json writes \u00XX (lowercase hex) only for the control
                            // characters that have no short escape.
                            let digits = self.text.get(self.at..self.at + 4)?;
                            self.at += 4;
                            let code = match digits {
                                [b'0', b'0', high @ (b'0' | b'1'), low] => {
                                    let low = match low {
                                        b'0'..=b'9' => low - b'0',
                                        b'a'..=b'f' => low - b'a' + 10,
                                        _ => return None,
                                    };
                                    (high - b'0') * 16 + low
                                }
                                _ => return None,
                            };
                            if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1f => return None,
                _ => {}
            }
        }
    }

    fn number(&mut self) -> bool {
        let start = self.at;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let Ok(token) = std::str::from_utf8(&self.text[start..self.at]) else {
            return false;
        };
        if !token.contains(['.', 'e', 'E']) {
            // An integer: serde_json reads it into a u64 or an i64 and prints it back plainly.
            let digits = token.strip_prefix('-').unwrap_or(token);
            let plain = digits == "0" || (!digits.is_empty() && !digits.starts_with('0'));
            let fits = if token.starts_with('-') {
                digits != "0" && token.parse::<i64>().is_ok()
            } else {
                token.parse::<u64>().is_ok()
            };
            return plain && fits;
        }
        // Anything else is an f64 (float_roundtrip parses it exactly as `str::parse`), printed
        // back in serde_json's own shortest round-trip form.
        match token.parse::<f64>() {
            Ok(float) if float.is_finite() => {
                self.scratch.clear();
                serde_json::to_writer(&mut self.scratch, &float).is_ok()
                    && self.scratch == token.as_bytes()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn canonical(value: &Value) -> Vec<u8> {
        super::super::canonical_bytes(value)
    }

    #[test]
    fn what_canonical_bytes_writes_is_recognised() {
        let values = [
            json!(null),
            json!([]),
            json!({}),
            json!({"b": 1, "a": [true, false, null], "c": {"z": -3, "y": 0}}),
            json!({"text": "quote \" backslash \\ slash / tab \t newline \n bell \u{7} del \u{7f}"}),
            json!({"unicode": "café ☕ 𝄞", "é": 1, "e": 2, "z": 3}),
            json!([
                0.1,
                1.0,
                -0.0,
                1.5e-7,
                1e20,
                12345.678,
                f64::MAX,
                f64::MIN_POSITIVE,
                2.5e300
            ]),
            json!([u64::MAX, i64::MIN, 0, -1, 42]),
            json!({"": "empty key", "a\u{0}": 1}),
        ];
        for value in &values {
            let text = canonical(value);
            let ok = is_canonical_json(&text);
            let text = String::from_utf8_lossy(&text);
            // Keys with escapes are left to the slow path on purpose.
            if text.contains("\"a\\u0000\"") {
                assert!(!ok, "{text}");
            } else {
                assert!(ok, "{text}");
            }
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "{\"a\": 1}",            // whitespace
            " {}",                   // leading whitespace
            "{\"b\":1,\"a\":2}",     // unsorted keys
            "{\"a\":1,\"a\":2}",     // duplicate keys
            "[1 ,2]",                // whitespace in an array
            "\"\\/\"",               // an escape serde_json does not write
            "\"\\u0041\"",           // an escape of a printable character
            "\"\\u000a\"",           // \n written long
            "\"\\u001F\"",           // uppercase hex
            "01",                    // a leading zero
            "-0",                    // negative zero as an integer
            "1E5",                   // exponent spelling
            "1e2",                   // 100.0 as serde_json prints it
            "1.50",                  // a trailing zero
            "18446744073709551616",  // beyond u64: serde_json reads it as f64
            "-9223372036854775809",  // beyond i64
            "truex",                 // trailing bytes
            "[1,2",                  // unterminated
            "{\"a\":}",              // no value
            "\"raw \u{1} control\"", // an unescaped control character
        ] {
            assert!(!is_canonical_json(text.as_bytes()), "{text}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!is_canonical_json(deep.as_bytes()));
    }

    /// Seeded random values: what canonical_bytes writes is always recognised, and the same
    /// text with its objects written in reverse key order is refused when that changes it.
    #[test]
    fn random_values_round_trip() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        fn build(depth: u32, next: &mut dyn FnMut() -> u64) -> Value {
            let pick = next() % if depth > 3 { 5 } else { 7 };
            match pick {
                0 => Value::Null,
                1 => Value::Bool(next().is_multiple_of(2)),
                2 => json!(next() as i64 >> (next() % 63)),
                3 => {
                    let bits = next();
                    let float = f64::from_bits(bits);
                    if float.is_finite() {
                        json!(float)
                    } else {
                        json!(0.25)
                    }
                }
                4 => {
                    let chars = ['a', 'Z', '"', '\\', '\n', '\u{1}', 'é', '☕', '/', ' '];
                    let len = next() % 8;
                    Value::String(
                        (0..len)
                            .map(|_| chars[usize::try_from(next() % 10).unwrap_or(0)])
                            .collect(),
                    )
                }
                5 => Value::Array((0..next() % 4).map(|_| build(depth + 1, next)).collect()),
                _ => Value::Object(
                    (0..next() % 5)
                        .map(|i| (format!("k{}{i}", next() % 3), build(depth + 1, next)))
                        .collect(),
                ),
            }
        }
        for _ in 0..2_000 {
            let value = build(0, &mut next);
            let text = canonical(&value);
            assert!(
                is_canonical_json(&text),
                "{}",
                String::from_utf8_lossy(&text)
            );
            let pretty = serde_json::to_vec_pretty(&value).expect("pretty");
            if pretty != text {
                assert!(!is_canonical_json(&pretty));
            }
        }
    }
}
