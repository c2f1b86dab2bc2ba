//! Chunked transfer coding (RFC 9112 §7.1), decoded the same way for
//! request bodies from clients and response bodies from upstreams, and the
//! chunk-size lines written on both sides.
//!
//! Every line is bounded, and so is the trailer section, so a peer cannot
//! make the decoder buffer without end. Trailers are read and discarded:
//! the gateway re-frames every body it forwards.

use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk-size or trailer line accepted.
pub const MAX_LINE: usize = 4096;
/// The most bytes of trailer fields accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is within the chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes to go.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk; this many trailer bytes seen so far.
    Trailers(usize),
}

/// What decoding produced from the buffer.
#[derive(Debug)]
pub enum Decoded {
    Data(Bytes),
    /// The buffer holds no complete next step; read more.
    NeedMore,
    /// The body ended (the trailers, if any, were consumed).
    End,
}

/// Why a chunked body is malformed (a stable text for logs and errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChunkError(pub &'static str);

/// Takes one line (without its line ending) from the front of `buf`, if
/// complete.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, ChunkError> {
    match memchr::memchr(b'\n', buf) {
        Some(i) if i <= MAX_LINE => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Ok(Some(line))
        }
        Some(_) => Err(ChunkError("a chunk line is too long")),
        None if buf.len() > MAX_LINE => Err(ChunkError("a chunk line is too long")),
        None => Ok(None),
    }
}

/// The size of a chunk-size line: hex digits, optionally followed by
/// whitespace and `;extensions`. Nothing else is accepted (no sign, no
/// `0x`, no leading whitespace).
fn chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.split(|b| *b == b';').next().unwrap_or(&[]);
    let digits = match digits.iter().rposition(|b| *b != b' ' && *b != b'\t') {
        Some(last) => digits.get(..=last).unwrap_or(&[]),
        None => &[],
    };
    if digits.is_empty() || digits.len() > 15 {
        return Err(ChunkError("invalid chunk size"));
    }
    let mut n: u64 = 0;
    for d in digits {
        let v = char::from(*d)
            .to_digit(16)
            .ok_or(ChunkError("invalid chunk size"))?;
        n = n * 16 + u64::from(v);
    }
    Ok(n)
}

/// Decodes what `buf` holds of a chunked body, consuming it.
pub fn decode(buf: &mut BytesMut, chunk: &mut Chunk) -> Result<Decoded, ChunkError> {
    loop {
        match *chunk {
            Chunk::Size => {
                let Some(line) = take_line(buf)? else {
                    return Ok(Decoded::NeedMore);
                };
                let n = chunk_size(&line)?;
                *chunk = if n == 0 {
                    Chunk::Trailers(0)
                } else {
                    Chunk::Data(n)
                };
            }
            Chunk::Data(n) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(take).freeze();
                let left = n - take as u64;
                *chunk = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
                return Ok(Decoded::Data(data));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    // A bare LF is tolerated, as in chunk-size lines.
                    if buf.first() == Some(&b'\n') {
                        buf.advance(1);
                        *chunk = Chunk::Size;
                        continue;
                    }
                    return Ok(Decoded::NeedMore);
                }
                match buf.get(..2) {
                    Some(b"\r\n") => buf.advance(2),
                    Some([b'\n', _]) => buf.advance(1),
                    _ => return Err(ChunkError("a chunk is not followed by CRLF")),
                }
                *chunk = Chunk::Size;
            }
            Chunk::Trailers(seen) => {
                let Some(line) = take_line(buf)? else {
                    return Ok(Decoded::NeedMore);
                };
                if line.is_empty() {
                    return Ok(Decoded::End);
                }
                let seen = seen + line.len() + 2;
                if seen > MAX_TRAILERS {
                    return Err(ChunkError("the trailer section is too large"));
                }
                *chunk = Chunk::Trailers(seen);
            }
        }
    }
}

/// Appends the chunk-size line for `len` bytes of data.
pub fn push_size_line(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b"0123456789abcdef".get(n % 16).copied().unwrap_or(b'0');
        }
        n /= 16;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or(b"0"));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<u8>, ChunkError> {
        let mut buf = BytesMut::from(input);
        let mut chunk = Chunk::Size;
        let mut out = Vec::new();
        loop {
            match decode(&mut buf, &mut chunk)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok(out),
                Decoded::NeedMore => return Err(ChunkError("incomplete")),
            }
        }
    }

    #[test]
    fn chunks_extensions_and_trailers() {
        let out = decode_all(b"5;ext=1\r\nhello\r\n6 ;x\r\n world\r\n0\r\nTrailer: x\r\n\r\n");
        assert_eq!(out.unwrap(), b"hello world");
        assert_eq!(decode_all(b"3\nabc\n0\n\n").unwrap(), b"abc");
    }

    #[test]
    fn split_at_every_byte_boundary_gives_the_same_result() {
        let full = b"3\r\nabc\r\n0\r\n\r\n";
        for split in 1..full.len() {
            let mut buf = BytesMut::from(&full[..split]);
            let mut chunk = Chunk::Size;
            let mut out = Vec::new();
            let mut rest = &full[split..];
            loop {
                match decode(&mut buf, &mut chunk).unwrap() {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::End => break,
                    Decoded::NeedMore => {
                        assert!(!rest.is_empty(), "split {split}");
                        buf.extend_from_slice(&rest[..1]);
                        rest = &rest[1..];
                    }
                }
            }
            assert_eq!(out, b"abc", "split {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for raw in [
            &b"zz\r\n"[..],
            b"3\r\nabcXY",
            b"ffffffffffffffffff\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n",
            b"+3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b"\r\n",
        ] {
            assert!(
                matches!(decode_all(raw), Err(e) if e.0 != "incomplete"),
                "{raw:?}"
            );
        }
        let long = [b'1'; MAX_LINE + 1];
        assert!(decode(&mut BytesMut::from(&long[..]), &mut Chunk::Size).is_err());
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..1000 {
            trailers.extend_from_slice(b"X-Trailer: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(decode_all(&trailers).is_err());
    }

    #[test]
    fn chunk_sizes_are_hex() {
        for (n, text) in [(0, "0"), (10, "a"), (255, "ff"), (4096, "1000")] {
            let mut out = Vec::new();
            push_size_line(&mut out, n);
            assert_eq!(out, format!("{text}\r\n").as_bytes());
        }
    }
}
