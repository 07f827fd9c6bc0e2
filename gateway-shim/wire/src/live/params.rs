//! ai-runner's canonical params JSON and `last_params_hash`: what a runner reports after it
//! applied the params a gateway sent, so that a tester can tell which params are in effect.

use serde_json::Value;

/// Serialises JSON exactly like Python's `json.dumps(value, sort_keys=True)`: object keys sorted
/// recursively by code point, `", "` and `": "` separators, non-ASCII escaped as `\uXXXX`, and
/// floats written the way Python's `repr` writes them.
///
/// ai-runner computes `last_params_hash` as the hex MD5 of exactly this text, so a tester that
/// hashes the params it sent with this function gets the hash a real runner reports (the
/// compact, whitespace-free form would not match real runners, which is why it is not used).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Hex MD5 of [`canonical_json`], ai-runner's `last_params_hash`.
pub fn params_hash(params: &Value) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(canonical_json(params).as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&python_float_repr(f));
            } else {
                // serde_json numbers are always one of the three above unless the
                // arbitrary_precision feature is on; its own text is the best fallback then.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_python_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_string(key, out);
                out.push_str(": ");
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// A JSON string as Python's `json.dumps` writes it with `ensure_ascii=True`.
fn write_python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest round-trip digits, in fixed notation when the decimal
/// exponent is between -4 and 16, otherwise as `d.ddde+XX`.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Position of the decimal point relative to the digit string: value = 0.DIGITS * 10^decpt.
    let decpt = exp + 1;
    if (-4 < decpt) && (decpt <= 16) {
        let mut text = String::from(sign);
        if decpt <= 0 {
            text.push_str("0.");
            for _ in 0..(-decpt) {
                text.push('0');
            }
            text.push_str(&digits);
        } else {
            let point = decpt as usize;
            if digits.len() <= point {
                text.push_str(&digits);
                for _ in digits.len()..point {
                    text.push('0');
                }
                text.push_str(".0");
            } else {
                text.push_str(&digits[..point]);
                text.push('.');
                text.push_str(&digits[point..]);
            }
        }
        text
    } else {
        let mut text = String::from(sign);
        text.push_str(&digits[..1]);
        if digits.len() > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        text.push_str(&format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_matches_python_json_dumps_sort_keys() {
        // Expected strings are what CPython 3's json.dumps(v, sort_keys=True) prints.
        let cases = [
            (
                json!({"b": 1, "a": [1, 2.5, "x"]}),
                r#"{"a": [1, 2.5, "x"], "b": 1}"#,
            ),
            (
                json!({"z": {"y": null, "x": true}}),
                r#"{"z": {"x": true, "y": null}}"#,
            ),
            (json!({}), "{}"),
            (json!([]), "[]"),
            (json!("é\"\\\n\u{1}"), r#""\u00e9\"\\\n\u0001""#),
            (json!("😀"), r#""\ud83d\ude00""#),
            (json!(1.0), "1.0"),
            (json!(-0.5), "-0.5"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1e16), "1e+16"),
            (json!(1.5e16), "1.5e+16"),
            (json!(1e15), "1000000000000000.0"),
            (json!(123.456), "123.456"),
            (json!(-7), "-7"),
            (json!(u64::MAX), "18446744073709551615"),
        ];
        for (value, expected) in cases {
            assert_eq!(canonical_json(&value), expected, "{value}");
        }
    }

    #[test]
    fn params_hash_is_md5_of_canonical_text() {
        // md5('{"prompt": "a cat"}') computed with Python's hashlib.
        let hash = params_hash(&json!({"prompt": "a cat"}));
        assert_eq!(hash.len(), 32);
        use md5::{Digest, Md5};
        assert_eq!(
            hash,
            hex::encode(Md5::digest(br#"{"prompt": "a cat"}"#)),
            "hash covers the Python-style text"
        );
        assert_eq!(
            params_hash(&json!({"b": 1, "a": 2})),
            params_hash(&json!({"a": 2, "b": 1}))
        );
    }
}
