//! Ed25519 signatures over batches of result records, and the key files that hold the keys.
//!
//! A tester signs every batch it ships so that the collector (and anyone reading the raw records
//! back) can tell which agent produced it and that nothing changed on the way. The signed message
//! is
//!
//! ```text
//! b"lvt-results-v1\n" || timestamp_ms (decimal ASCII) || b"\n" || nonce (32 lowercase hex) || b"\n" || canonical bytes
//! ```
//!
//! where the canonical bytes are the batch (a JSON array of records) re-serialized compactly with
//! the keys of every object sorted (see [`canonical_bytes`]). Because the signature covers a
//! re-serialization rather than the body as sent, whitespace and key order in transit do not
//! matter. The timestamp and nonce let the collector reject replays; the replay memory itself is
//! the collector's job, this module only offers [`check_timestamp`].
//!
//! The signature travels in HTTP headers ([`BatchSignature::to_headers`]); the public key does not,
//! the collector knows it by its key id. Key files are plain text: `NAME.key` holds the 32 secret
//! bytes in base64 and `NAME.pub` one line `lvt-ed25519 BASE64 key_id=HEX`.
//!
//! Everything here is pure except the key file functions and the random sources
//! ([`generate_keypair`], [`random_nonce`]), so signing and verification test deterministically.

mod canonical;
pub use canonical::is_canonical_json;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _};
use rand::RngCore as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// The first line of every signed message; it names the scheme so that a signature made for
/// something else can never verify as a result batch.
pub const SIGNING_CONTEXT: &[u8] = b"lvt-results-v1\n";

/// Header carrying [`BatchSignature::key_id`].
pub const HEADER_KEY_ID: &str = "Lvt-Key-Id";
/// Header carrying [`BatchSignature::timestamp_ms`] as decimal ASCII.
pub const HEADER_TIMESTAMP: &str = "Lvt-Timestamp";
/// Header carrying [`BatchSignature::nonce`].
pub const HEADER_NONCE: &str = "Lvt-Nonce";
/// Header carrying [`BatchSignature::signature`].
pub const HEADER_SIGNATURE: &str = "Lvt-Signature";

/// The word that starts a public key file line.
pub const PUBLIC_KEY_PREFIX: &str = "lvt-ed25519";

/// Length of a nonce in bytes (it travels as twice as many hex digits).
pub const NONCE_BYTES: usize = 16;

/// Length of a key id in bytes: the first bytes of the SHA-256 of the public key.
const KEY_ID_BYTES: usize = 8;

/// Why a batch signature could not be read or did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// A signature header was absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The timestamp was not a decimal integer.
    #[error("timestamp {0:?} is not a decimal integer of milliseconds")]
    BadTimestamp(String),
    /// The nonce was not 32 lowercase hex digits.
    #[error("nonce {0:?} is not {digits} lowercase hex digits", digits = NONCE_BYTES * 2)]
    BadNonce(String),
    /// The key id was not 16 lowercase hex digits.
    #[error("key id {0:?} is not {digits} lowercase hex digits", digits = KEY_ID_BYTES * 2)]
    BadKeyId(String),
    /// The signature was not base64 of 64 bytes.
    #[error("signature is not base64 of 64 bytes")]
    MalformedSignature,
    /// The signature names a different key than the one it is checked against.
    #[error("signature is by key {stated}, not by the expected key {expected}")]
    KeyMismatch {
        /// The key id the signature states.
        stated: String,
        /// The key id of the key it was checked against.
        expected: String,
    },
    /// The signature does not match the records, timestamp and nonce under this key.
    #[error("signature does not verify")]
    BadSignature,
    /// The timestamp is further from the verifier's clock than the allowed window.
    #[error("timestamp {timestamp_ms} ms is more than {window_ms} ms away from now ({now_ms} ms)")]
    StaleTimestamp {
        /// The signed timestamp, milliseconds since the Unix epoch.
        timestamp_ms: i64,
        /// The verifier's clock, milliseconds since the Unix epoch.
        now_ms: i64,
        /// The allowed distance either way, in milliseconds.
        window_ms: u64,
    },
}

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file does not exist.
    #[error("key file {} does not exist", path.display())]
    Missing {
        /// The path that was looked up.
        path: PathBuf,
    },
    /// A key file to be written already exists; keys are never overwritten.
    #[error("key file {} already exists; not overwriting it", path.display())]
    Exists {
        /// The path that already exists.
        path: PathBuf,
    },
    /// Reading or writing the file failed for another reason.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file was read but its content is not a key of the expected kind.
    #[error("key file {}: {source}", path.display())]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with its content.
        source: KeyFormatError,
    },
}

/// What is wrong with the text of a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFormatError {
    /// The text holds no key at all.
    #[error("no key in the text")]
    Empty,
    /// A public key line does not start with `lvt-ed25519`.
    #[error("expected a line starting with `{PUBLIC_KEY_PREFIX}`, found {found:?}")]
    WrongPrefix {
        /// The first word found instead.
        found: String,
    },
    /// The key is not valid standard base64.
    #[error("the key is not valid base64")]
    BadBase64,
    /// The key decodes to the wrong number of bytes.
    #[error("the key is {actual} bytes long, expected {expected}")]
    WrongLength {
        /// The length an ed25519 key has.
        expected: usize,
        /// The decoded length.
        actual: usize,
    },
    /// The 32 bytes are not a valid ed25519 public key (not a curve point).
    #[error("the bytes are not a valid ed25519 public key")]
    InvalidPublicKey,
    /// The `key_id=` stated on the public key line is not the id of the key on that line.
    #[error("the line states key_id={stated} but the key's id is {computed}")]
    KeyIdMismatch {
        /// The id written in the file.
        stated: String,
        /// The id computed from the key.
        computed: String,
    },
    /// A public key line has words this format does not know.
    #[error("unexpected word {0:?} on the public key line")]
    UnexpectedWord(String),
}

/// The signature of one batch, with everything a verifier needs besides the public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSignature {
    /// Lowercase hex of the first 8 bytes of the SHA-256 of the 32 public key bytes.
    pub key_id: String,
    /// The public key, base64 (standard alphabet, padded) of 32 bytes. Not sent in headers: the
    /// collector knows agent keys by id, so after [`BatchSignature::from_headers`] this is empty.
    pub public_key: String,
    /// Milliseconds since the Unix epoch at which the batch was signed.
    pub timestamp_ms: i64,
    /// 16 random bytes as 32 lowercase hex digits; never reused by a signer.
    pub nonce: String,
    /// The 64-byte ed25519 signature, base64 (standard alphabet, padded).
    pub signature: String,
}

impl BatchSignature {
    /// The HTTP headers that carry this signature, in a fixed order.
    pub fn to_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (HEADER_KEY_ID, self.key_id.clone()),
            (HEADER_TIMESTAMP, self.timestamp_ms.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }

    /// Reads a signature from headers; `header` looks one up by name (HTTP header names are
    /// case-insensitive, so a lookup in an `http::HeaderMap` is the natural closure).
    ///
    /// The fields are checked for form here (hex lengths, base64 of 64 bytes) so that a
    /// malformed request is told apart from one whose signature simply does not verify.
    /// [`BatchSignature::public_key`] is left empty.
    pub fn from_headers(header: impl Fn(&str) -> Option<String>) -> Result<Self, SignError> {
        let read = |name: &'static str| {
            header(name)
                .map(|value| value.trim().to_owned())
                .ok_or(SignError::MissingHeader(name))
        };
        let key_id = read(HEADER_KEY_ID)?;
        if !is_lower_hex(&key_id, KEY_ID_BYTES * 2) {
            return Err(SignError::BadKeyId(key_id));
        }
        let timestamp_text = read(HEADER_TIMESTAMP)?;
        let timestamp_ms = parse_timestamp(&timestamp_text)?;
        let nonce = read(HEADER_NONCE)?;
        if !is_lower_hex(&nonce, NONCE_BYTES * 2) {
            return Err(SignError::BadNonce(nonce));
        }
        let signature = read(HEADER_SIGNATURE)?;
        decode_signature(&signature)?;
        Ok(Self {
            key_id,
            public_key: String::new(),
            timestamp_ms,
            nonce,
            signature,
        })
    }
}

/// The canonical bytes of a JSON value: compact, the keys of every object sorted by their UTF-8
/// bytes, strings and numbers printed as serde_json prints them.
///
/// serde_json escapes only `"`, `\` and control characters (short forms `\b \f \n \r \t`, others
/// as `\u00XX` lowercase) and writes all other characters as raw UTF-8; integers are printed in
/// decimal and floats in their shortest round-trip form, always with a `.` or an exponent
/// (`2000.0`, `0.1`, `1e-7`).
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    // A `Value` has only string keys and no custom Serialize impls, so writing it cannot fail.
    if maps_are_sorted() {
        // Maps already iterate in key order: plain compact serialization is canonical, and the
        // deep copy (most of a signature check's cost on a large batch) is spared.
        serde_json::to_vec(value).unwrap_or_default()
    } else {
        serde_json::to_vec(&crate::sort_keys(value.clone())).unwrap_or_default()
    }
}

/// Whether `serde_json` keeps object keys sorted (its default `BTreeMap` maps) rather than in
/// insertion order (the `preserve_order` feature, which any crate of a build may switch on).
/// Checked once, at run time, because feature unification decides it, not this crate.
fn maps_are_sorted() -> bool {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut map = serde_json::Map::new();
        map.insert("b".to_owned(), Value::Null);
        map.insert("a".to_owned(), Value::Null);
        map.keys().next().is_some_and(|first| first == "a")
    })
}

/// The exact bytes that are signed for `records` at `timestamp_ms` with the hex `nonce`.
pub fn signed_message(records: &Value, timestamp_ms: i64, nonce: &str) -> Vec<u8> {
    canonical_signed_message(&canonical_bytes(records), timestamp_ms, nonce)
}

/// [`signed_message`] of the records whose canonical bytes are `canonical`.
pub fn canonical_signed_message(canonical: &[u8], timestamp_ms: i64, nonce: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + 64 + canonical.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(timestamp_ms.to_string().as_bytes());
    message.push(b'\n');
    message.extend_from_slice(nonce.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(canonical);
    message
}

/// The key id of a public key: lowercase hex of the first 8 bytes of SHA-256 over its 32 bytes.
pub fn key_id(public: &VerifyingKey) -> String {
    let digest = Sha256::digest(public.as_bytes());
    hex::encode(&digest[..KEY_ID_BYTES])
}

/// The public key in the base64 form used by [`BatchSignature::public_key`] and key files.
pub fn public_key_base64(public: &VerifyingKey) -> String {
    BASE64.encode(public.as_bytes())
}

/// Signs a batch of records (a JSON array) at `timestamp_ms` with a fresh `nonce`.
///
/// The caller supplies time and nonce so that signing is deterministic in tests; production code
/// passes the wall clock and [`random_nonce`].
pub fn sign_batch(
    key: &SigningKey,
    records: &Value,
    timestamp_ms: i64,
    nonce: [u8; NONCE_BYTES],
) -> BatchSignature {
    let nonce = hex::encode(nonce);
    let message = signed_message(records, timestamp_ms, &nonce);
    let signature = key.sign(&message);
    let public = key.verifying_key();
    BatchSignature {
        key_id: key_id(&public),
        public_key: public_key_base64(&public),
        timestamp_ms,
        nonce,
        signature: BASE64.encode(signature.to_bytes()),
    }
}

/// Checks that `sig` is a signature by `public` over `records` with its timestamp and nonce.
///
/// The key id must be the id of `public`, and a non-empty `public_key` must be `public`, so that
/// a batch is never accepted under a key other than the one it names. Verification is strict
/// (`verify_strict`): weak keys and non-canonical signatures are rejected. Freshness of the
/// timestamp and uniqueness of the nonce are checked separately ([`check_timestamp`]).
pub fn verify_batch(
    public: &VerifyingKey,
    records: &Value,
    sig: &BatchSignature,
) -> Result<(), SignError> {
    verify_canonical_batch(public, &canonical_bytes(records), sig)
}

/// [`verify_batch`] of the records whose canonical bytes are `canonical` (for a verifier that
/// has them already, see [`is_canonical_json`]).
pub fn verify_canonical_batch(
    public: &VerifyingKey,
    canonical: &[u8],
    sig: &BatchSignature,
) -> Result<(), SignError> {
    let expected = key_id(public);
    if sig.key_id != expected {
        return Err(SignError::KeyMismatch {
            stated: sig.key_id.clone(),
            expected,
        });
    }
    if !sig.public_key.is_empty() && sig.public_key != public_key_base64(public) {
        return Err(SignError::KeyMismatch {
            stated: sig.public_key.clone(),
            expected: public_key_base64(public),
        });
    }
    if !is_lower_hex(&sig.nonce, NONCE_BYTES * 2) {
        return Err(SignError::BadNonce(sig.nonce.clone()));
    }
    let signature = decode_signature(&sig.signature)?;
    let message = canonical_signed_message(canonical, sig.timestamp_ms, &sig.nonce);
    public
        .verify_strict(&message, &signature)
        .map_err(|_| SignError::BadSignature)
}

/// Accepts `timestamp_ms` when it is at most `window_ms` away from `now_ms`, either way.
pub fn check_timestamp(timestamp_ms: i64, now_ms: i64, window_ms: u64) -> Result<(), SignError> {
    if timestamp_ms.abs_diff(now_ms) <= window_ms {
        Ok(())
    } else {
        Err(SignError::StaleTimestamp {
            timestamp_ms,
            now_ms,
            window_ms,
        })
    }
}

/// A fresh random nonce from the thread-local CSPRNG (ChaCha seeded from the operating system).
pub fn random_nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    nonce
}

/// A fresh key pair from the thread-local CSPRNG (ChaCha seeded from the operating system).
pub fn generate_keypair() -> (SigningKey, VerifyingKey) {
    let mut secret = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
    rand::rng().fill_bytes(&mut secret);
    let key = SigningKey::from_bytes(&secret);
    let public = key.verifying_key();
    (key, public)
}

/// Generates a key pair and writes it as `NAME.key` and `NAME.pub`; returns both paths.
///
/// When `dir_or_prefix` is an existing directory the files are `lvt.key` and `lvt.pub` inside
/// it; otherwise it is a path prefix and `.key`/`.pub` are appended to it (`keys/agent1` gives
/// `keys/agent1.key`). Existing files are never overwritten.
pub fn write_keypair(dir_or_prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let (key, _) = generate_keypair();
    write_keypair_from(&key, dir_or_prefix)
}

/// Writes the given key as `NAME.key` and `NAME.pub` (see [`write_keypair`] for the names).
///
/// The secret file holds the base64 of the 32 secret bytes and a newline, and is created with
/// mode 0600 on unix so that it is never readable by others, not even briefly. The public file
/// holds one line `lvt-ed25519 BASE64 key_id=HEX`.
pub fn write_keypair_from(
    key: &SigningKey,
    dir_or_prefix: &Path,
) -> Result<(PathBuf, PathBuf), KeyError> {
    let (secret_path, public_path) = keypair_paths(dir_or_prefix);
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let secret_text = format!("{}\n", BASE64.encode(key.to_bytes()));
    write_new_file(&secret_path, secret_text.as_bytes(), 0o600)?;
    let public_text = public_key_line(&key.verifying_key());
    write_new_file(&public_path, public_text.as_bytes(), 0o644)?;
    Ok((secret_path, public_path))
}

/// The public key file line for `public`, newline included.
pub fn public_key_line(public: &VerifyingKey) -> String {
    format!(
        "{PUBLIC_KEY_PREFIX} {} key_id={}\n",
        public_key_base64(public),
        key_id(public)
    )
}

/// Reads a secret key file written by [`write_keypair`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read_key_file(path)?;
    parse_signing_key(&text).map_err(|source| KeyError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Reads a public key file written by [`write_keypair`].
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read_key_file(path)?;
    parse_verifying_key(&text).map_err(|source| KeyError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Parses the text of a secret key file: base64 of 32 bytes, surrounding whitespace ignored.
pub fn parse_signing_key(text: &str) -> Result<SigningKey, KeyFormatError> {
    let encoded = text.trim();
    if encoded.is_empty() {
        return Err(KeyFormatError::Empty);
    }
    let bytes = decode_key_bytes(encoded)?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Parses a public key line `lvt-ed25519 BASE64 [key_id=HEX]`; when the key id is present it
/// must match the key, which catches a line whose key was edited by hand.
pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey, KeyFormatError> {
    let mut words = text.split_whitespace();
    let prefix = words.next().ok_or(KeyFormatError::Empty)?;
    if prefix != PUBLIC_KEY_PREFIX {
        return Err(KeyFormatError::WrongPrefix {
            found: prefix.to_owned(),
        });
    }
    let encoded = words.next().ok_or(KeyFormatError::Empty)?;
    let bytes = decode_key_bytes(encoded)?;
    let public = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyFormatError::InvalidPublicKey)?;
    for word in words {
        match word.strip_prefix("key_id=") {
            Some(stated) => {
                let computed = key_id(&public);
                if stated != computed {
                    return Err(KeyFormatError::KeyIdMismatch {
                        stated: stated.to_owned(),
                        computed,
                    });
                }
            }
            None => return Err(KeyFormatError::UnexpectedWord(word.to_owned())),
        }
    }
    Ok(public)
}

/// The secret and public file paths for `dir_or_prefix` (see [`write_keypair`]).
pub fn keypair_paths(dir_or_prefix: &Path) -> (PathBuf, PathBuf) {
    let prefix = if dir_or_prefix.is_dir() {
        dir_or_prefix.join("lvt")
    } else {
        dir_or_prefix.to_owned()
    };
    let with_suffix = |suffix: &str| {
        let mut name = prefix.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    (with_suffix(".key"), with_suffix(".pub"))
}

fn decode_key_bytes(encoded: &str) -> Result<[u8; 32], KeyFormatError> {
    let bytes = BASE64
        .decode(encoded)
        .map_err(|_| KeyFormatError::BadBase64)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyFormatError::WrongLength {
        expected: 32,
        actual: bytes.len(),
    })
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => KeyError::Missing {
            path: path.to_owned(),
        },
        _ => KeyError::Io {
            path: path.to_owned(),
            source,
        },
    })
}

/// Creates `path` (failing if it exists) with `mode` on unix and writes `contents` to it.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let io_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.to_owned(),
        },
        _ => KeyError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(contents).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

fn parse_timestamp(text: &str) -> Result<i64, SignError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignError::BadTimestamp(text.to_owned()));
    }
    text.parse()
        .map_err(|_| SignError::BadTimestamp(text.to_owned()))
}

fn decode_signature(encoded: &str) -> Result<Signature, SignError> {
    let bytes = BASE64
        .decode(encoded)
        .map_err(|_| SignError::MalformedSignature)?;
    let bytes =
        <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| SignError::MalformedSignature)?;
    Ok(Signature::from_bytes(&bytes))
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests;
