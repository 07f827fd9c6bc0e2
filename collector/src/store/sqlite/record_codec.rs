//! The compressed form in which the SQLite store keeps result records.
//!
//! A record's canonical JSON is about 1.5 KB, most of it field names that every record repeats,
//! and writing those bytes (into the WAL, then again at checkpoint) was the largest single cost
//! of ingest. Each record is therefore stored as an LZ4 block compressed against a fixed
//! dictionary of two typical records (`record_dictionary_v1.json`: a direct and a network
//! session, canonical JSON), which brings a typical record to about a tenth of its size and
//! costs about a microsecond each way. Decompression gives back exactly the canonical bytes that
//! were signed.
//!
//! Layout of a stored blob: the format byte [`FORMAT_LZ4_DICTIONARY_V1`], the uncompressed length
//! as a little-endian `u32`, then the LZ4 block. The dictionary is part of the format: changing
//! its bytes would make every stored blob decode to garbage, so it is frozen (a test pins its
//! SHA-256) and a better dictionary needs a new format byte. Records that an older collector
//! stored as text are read as they are.

use rusqlite::types::ValueRef;

use crate::store::StoreError;

/// The dictionary of format 1. Frozen: see the module documentation.
const DICTIONARY_V1: &[u8] = include_bytes!("record_dictionary_v1.json");

/// The first byte of every blob this module writes.
const FORMAT_LZ4_DICTIONARY_V1: u8 = 1;

/// The largest record a blob may claim to hold: well above the 5 MB request body limit, so a
/// corrupt length cannot make a reader allocate without bound.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// Compresses a record's canonical JSON into its stored blob.
pub fn encode(record_json: &str) -> Vec<u8> {
    let bytes = record_json.as_bytes();
    // A record longer than u32::MAX bytes cannot pass the body limit; saturating keeps the
    // function total, and `decode` would refuse such a blob rather than misread it.
    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let block = lz4_flex::block::compress_with_dict(bytes, DICTIONARY_V1);
    let mut blob = Vec::with_capacity(5 + block.len());
    blob.push(FORMAT_LZ4_DICTIONARY_V1);
    blob.extend_from_slice(&length.to_le_bytes());
    blob.extend_from_slice(&block);
    blob
}

/// Decompresses a stored blob back into the record's canonical JSON.
pub fn decode(blob: &[u8]) -> Result<String, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt(format!("stored record: {detail}"));
    let (&format, rest) = blob
        .split_first()
        .ok_or_else(|| corrupt("the blob is empty".to_owned()))?;
    if format != FORMAT_LZ4_DICTIONARY_V1 {
        return Err(corrupt(format!("unknown format {format}")));
    }
    let (length, block) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("the blob ends inside its length".to_owned()))?;
    let length = usize::try_from(u32::from_le_bytes(*length)).unwrap_or(usize::MAX);
    if length > MAX_RECORD_BYTES {
        return Err(corrupt(format!("it claims {length} bytes")));
    }
    let mut out = vec![0; length];
    let written = lz4_flex::block::decompress_into_with_dict(block, &mut out, DICTIONARY_V1)
        .map_err(|error| corrupt(error.to_string()))?;
    if written != length {
        return Err(corrupt(format!(
            "it decompresses to {written} bytes, not the {length} it claims"
        )));
    }
    String::from_utf8(out).map_err(|error| corrupt(error.to_string()))
}

/// The record JSON of a `record_json` column value: a blob written by [`encode`], or text stored
/// by a collector before layout version 5.
pub fn stored_text(value: ValueRef<'_>) -> Result<String, StoreError> {
    match value {
        ValueRef::Blob(blob) => decode(blob),
        ValueRef::Text(text) => String::from_utf8(text.to_vec())
            .map_err(|error| StoreError::Corrupt(format!("stored record: {error}"))),
        other => Err(StoreError::Corrupt(format!(
            "stored record has type {}",
            other.data_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::*;

    #[test]
    fn the_dictionary_is_frozen() {
        // Every stored blob of format 1 depends on these exact bytes.
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY_V1)),
            "0f98af01ea97a66fde6906f0af27274efcbab4b1ebd3cba7987bcea5051c355d"
        );
    }

    #[test]
    fn records_round_trip_exactly_and_shrink() {
        let dictionary = std::str::from_utf8(DICTIONARY_V1).expect("utf-8");
        let network = dictionary.lines().nth(1).expect("two records");
        let edited = network
            .replace("passed", "failed")
            .replace("127.0.0.1", "orch.example.org");
        for record in [
            network,
            edited.as_str(),
            "",
            "{}",
            "é\u{1}\"",
            &"x".repeat(100_000),
        ] {
            let blob = encode(record);
            assert_eq!(decode(&blob).expect("decodes"), record);
            assert_eq!(stored_text(ValueRef::Blob(&blob)).expect("decodes"), record);
        }
        let blob = encode(&edited);
        assert!(
            blob.len() * 5 < edited.len(),
            "{} bytes from {}",
            blob.len(),
            edited.len()
        );
    }

    #[test]
    fn text_from_older_layouts_reads_as_it_is() {
        assert_eq!(
            stored_text(ValueRef::Text(b"{\"a\":1}")).expect("text"),
            "{\"a\":1}"
        );
        assert!(stored_text(ValueRef::Integer(1)).is_err());
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        let blob = encode("{\"session_id\":\"s1\",\"session_id_again\":\"s1\"}");
        let mut wrong_length = blob.clone();
        wrong_length[1] = wrong_length[1].wrapping_sub(3);
        let mut huge = blob.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut unknown = blob.clone();
        unknown[0] = 9;
        for damaged in [
            &[][..],
            &blob[..3],
            &blob[..blob.len() - 2],
            &wrong_length,
            &huge,
            &unknown,
        ] {
            let error = decode(damaged).expect_err("damaged");
            assert!(
                matches!(&error, StoreError::Corrupt(detail) if detail.starts_with("stored record")),
                "{error}"
            );
        }
    }
}
