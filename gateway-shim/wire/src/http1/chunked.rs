//! Sans-IO `Transfer-Encoding: chunked` codec: an incremental decoder that accepts input split
//! at any byte boundary, and the encoder helpers used for streamed responses.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (size, extensions) or trailer line we accept, in bytes.
const MAX_LINE_BYTES: usize = 4096;
/// Most trailer bytes we accept after the last chunk.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// What the decoder produced from the buffered input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, in order.
    Data(Bytes),
    /// The buffer holds no complete item yet; read more and call again.
    NeedMore,
    /// The last chunk and the trailer section were read; the body is complete.
    Done,
}

/// Why a chunked body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("invalid chunk size line")]
    InvalidSize,
    #[error("chunk size does not fit in 64 bits")]
    SizeOverflow,
    #[error("chunk data is not followed by CRLF")]
    MissingDataCrlf,
    #[error("chunk line or trailer section too long")]
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size { value: u64, digits: u32 },
    /// After the size: optional whitespace and `;extensions`, up to CR.
    SizeTail { value: u64 },
    /// Saw CR after the size line; LF must follow.
    SizeLf { value: u64 },
    /// Inside chunk data with this many bytes left.
    Data { remaining: u64 },
    /// Chunk data done; CR must follow.
    DataCr,
    /// Chunk data done and CR seen; LF must follow.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Saw CR ending the final empty line; LF must follow.
    TrailerEndLf,
    /// The body is complete.
    Done,
}

/// Incremental decoder for a chunked request body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    line_bytes: usize,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            line_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Whether the final chunk and trailers were consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing bytes from `buf` and returns the next piece of body data, if any.
    ///
    /// Bytes after the end of the body are left in `buf` (they belong to the next request).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkedError> {
        loop {
            if let State::Data { remaining } = self.state {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let data = buf.split_to(take).freeze();
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                return Ok(Decoded::Data(data));
            }
            if self.state == State::Done {
                return Ok(Decoded::Done);
            }
            let Some(&byte) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            self.step(byte)?;
        }
    }

    /// Advances the framing state machine by one control byte.
    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { value, digits } => {
                self.count_line_byte()?;
                if let Some(digit) = hex_value(byte) {
                    if digits >= 16 {
                        return Err(ChunkedError::SizeOverflow);
                    }
                    State::Size {
                        value: (value << 4) | u64::from(digit),
                        digits: digits + 1,
                    }
                } else if digits == 0 {
                    return Err(ChunkedError::InvalidSize);
                } else {
                    Self::size_tail(value, byte)?
                }
            }
            State::SizeTail { value } => {
                self.count_line_byte()?;
                Self::size_tail(value, byte)?
            }
            State::SizeLf { value } => {
                if byte != b'\n' {
                    return Err(ChunkedError::InvalidSize);
                }
                self.line_bytes = 0;
                if value == 0 {
                    State::TrailerStart
                } else {
                    State::Data { remaining: value }
                }
            }
            State::DataCr => {
                if byte != b'\r' {
                    return Err(ChunkedError::MissingDataCrlf);
                }
                State::DataLf
            }
            State::DataLf => {
                if byte != b'\n' {
                    return Err(ChunkedError::MissingDataCrlf);
                }
                State::Size {
                    value: 0,
                    digits: 0,
                }
            }
            State::TrailerStart => {
                self.count_trailer_byte()?;
                if byte == b'\r' {
                    State::TrailerEndLf
                } else {
                    State::TrailerLine
                }
            }
            State::TrailerLine => {
                self.count_trailer_byte()?;
                if byte == b'\n' {
                    State::TrailerStart
                } else {
                    State::TrailerLine
                }
            }
            State::TrailerEndLf => {
                if byte != b'\n' {
                    return Err(ChunkedError::InvalidSize);
                }
                State::Done
            }
            State::Data { .. } | State::Done => self.state,
        };
        Ok(())
    }

    /// Handles a byte after the size digits: whitespace and extensions are skipped until CR.
    fn size_tail(value: u64, byte: u8) -> Result<State, ChunkedError> {
        match byte {
            b'\r' => Ok(State::SizeLf { value }),
            b'\n' => Err(ChunkedError::InvalidSize),
            _ => Ok(State::SizeTail { value }),
        }
    }

    fn count_line_byte(&mut self) -> Result<(), ChunkedError> {
        self.line_bytes += 1;
        if self.line_bytes > MAX_LINE_BYTES {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }

    fn count_trailer_byte(&mut self) -> Result<(), ChunkedError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Frames `data` as one chunk (`{len:x}\r\n{data}\r\n`). Empty data yields nothing, because an
/// empty chunk would end the body.
pub fn encode_chunk(data: &[u8]) -> Vec<u8> {
    if data.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(data.len() + 20);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The last chunk with an empty trailer section, ending a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes, returning the body and what was left over.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkedError> {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::Done => {
                    let mut leftover = buf.to_vec();
                    leftover.extend_from_slice(&input[fed..]);
                    return Ok((body, leftover));
                }
                Decoded::NeedMore => {
                    if fed >= input.len() {
                        return Err(ChunkedError::InvalidSize);
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    /// One harness: every split size must give the same body and leftover.
    fn check(input: &[u8], body: &[u8], leftover: &[u8]) {
        for step in 1..=input.len() {
            let (got_body, got_leftover) =
                decode_in_steps(input, step).unwrap_or_else(|e| panic!("step {step}: {e}"));
            assert_eq!(got_body, body, "step {step}");
            assert_eq!(got_leftover, leftover, "step {step}");
        }
    }

    #[test]
    fn decodes_across_every_split_point() {
        check(
            b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
            b"hello, world",
            b"GET / HTTP/1.1\r\n",
        );
    }

    #[test]
    fn decodes_uppercase_hex_and_trailers() {
        let mut input = b"1A \r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 26));
        input.extend_from_slice(b"\r\n0\r\nX-Trailer: yes\r\n\r\n");
        check(&input, &[b'x'; 26], b"");
    }

    #[test]
    fn empty_body() {
        check(b"0\r\n\r\n", b"", b"");
    }

    #[test]
    fn roundtrip_with_encoder() {
        let mut wire = encode_chunk(b"abc");
        wire.extend(encode_chunk(b""));
        wire.extend(encode_chunk(&[7u8; 300]));
        wire.extend_from_slice(LAST_CHUNK);
        let mut expected = b"abc".to_vec();
        expected.extend_from_slice(&[7u8; 300]);
        check(&wire, &expected, b"");
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(
            decode_in_steps(b"zz\r\n", 4).unwrap_err(),
            ChunkedError::InvalidSize
        );
        assert_eq!(
            decode_in_steps(b"3\r\nabcX\r\n", 10).unwrap_err(),
            ChunkedError::MissingDataCrlf
        );
        assert_eq!(
            decode_in_steps(b"11111111111111111\r\n", 30).unwrap_err(),
            ChunkedError::SizeOverflow
        );
        assert_eq!(
            decode_in_steps(b"3\nabc", 10).unwrap_err(),
            ChunkedError::InvalidSize
        );
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'e', MAX_LINE_BYTES + 1));
        assert_eq!(
            decode_in_steps(&long, long.len()).unwrap_err(),
            ChunkedError::LineTooLong
        );
    }

    #[test]
    fn large_chunk_is_yielded_as_it_arrives() {
        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"10\r\nabcd"[..]);
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"abcd"))
        );
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::NeedMore);
        assert!(!decoder.is_done());
    }
}
