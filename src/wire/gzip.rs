//! `Content-Encoding: gzip` bodies.
//!
//! A gzip stream is one or more members, one after the other (RFC 1952
//! section 2.2; `cat a.gz b.gz` is valid gzip). Every member is decoded, and
//! anything after the last one that is not another member is refused rather
//! than ignored, so a client never hears 2xx for data that was not stored.
//!
//! Members are decoded one at a time by one `flate2` decoder, reset between
//! them (as `MultiGzDecoder` does), so the answer can tell "junk after the
//! stream" from "broken gzip". Output is read in bounded chunks and refused
//! as soon as it passes the limit: a gzip bomb never gets its memory.

use std::io::Read;

use flate2::bufread::GzDecoder;

/// The first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompressed bytes read at a time.
const CHUNK: usize = 64 * 1024;

/// Why a gzip body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    /// Not gzip, or a member is corrupt or cut short.
    #[error("body: not valid gzip: {0}")]
    Invalid(String),
    /// Bytes after the last member that do not start another member.
    #[error(
        "body: {0} bytes after the end of the gzip stream are not another gzip member; \
         send only the gzip stream"
    )]
    TrailingBytes(usize),
    /// The output passed the limit.
    #[error("body: larger than {limit} bytes once decompressed")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// Decodes every member of the gzip stream `body`, refusing output past
/// `limit` bytes (without allocating it) and bytes after the stream that are
/// not another member.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GzipError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut chunk = vec![0u8; CHUNK];
    let mut decoder = GzDecoder::new(body);
    loop {
        read_member(&mut decoder, &mut chunk, &mut out, limit)?;
        let rest: &[u8] = decoder.get_ref();
        if rest.is_empty() {
            return Ok(out);
        }
        if !rest.starts_with(&GZIP_MAGIC) {
            return Err(GzipError::TrailingBytes(rest.len()));
        }
        decoder.reset(rest);
    }
}

/// Appends one member's output to `out`, keeping `out` within `limit`.
fn read_member(
    decoder: &mut GzDecoder<&[u8]>,
    chunk: &mut [u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), GzipError> {
    loop {
        let n = match decoder.read(chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(GzipError::Invalid(e.to_string())),
        };
        let len = out.len() + n;
        if len > limit {
            return Err(GzipError::TooLarge { limit });
        }
        if len > out.capacity() {
            // Grow by doubling, but never past the limit.
            let target = out.capacity().saturating_mul(2).clamp(len, limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("write to a Vec");
        e.finish().expect("finish a Vec")
    }

    #[test]
    fn one_member_round_trips() {
        assert_eq!(gunzip(&gzip(b"hello"), 100), Ok(b"hello".to_vec()));
        assert_eq!(gunzip(&gzip(b""), 100), Ok(Vec::new()));
    }

    #[test]
    fn every_member_is_decoded() {
        let mut body = gzip(b"first,");
        body.extend(gzip(b"second,"));
        body.extend(gzip(b""));
        body.extend(gzip(b"third"));
        assert_eq!(gunzip(&body, 100), Ok(b"first,second,third".to_vec()));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut body = gzip(b"data");
        body.extend_from_slice(b"junk");
        let e = gunzip(&body, 100).expect_err("junk after the stream");
        assert_eq!(e, GzipError::TrailingBytes(4));
        assert!(
            e.to_string().contains("after the end of the gzip stream"),
            "{e}"
        );

        let mut padded = gzip(b"data");
        padded.extend_from_slice(&[0; 16]);
        assert_eq!(gunzip(&padded, 100), Err(GzipError::TrailingBytes(16)));

        // Looks like a second member, but is cut short.
        let mut cut = gzip(b"data");
        cut.extend_from_slice(&gzip(b"more")[..12]);
        assert!(matches!(gunzip(&cut, 100), Err(GzipError::Invalid(_))));
    }

    #[test]
    fn broken_gzip_is_invalid() {
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(GzipError::Invalid(_))
        ));
        assert!(matches!(gunzip(b"", 100), Err(GzipError::Invalid(_))));
        let whole = gzip(b"some data to compress");
        assert!(matches!(
            gunzip(&whole[..whole.len() - 3], 100),
            Err(GzipError::Invalid(_))
        ));
        let mut bad_crc = whole.clone();
        let at = bad_crc.len() - 6;
        bad_crc[at] ^= 0xff;
        assert!(matches!(gunzip(&bad_crc, 100), Err(GzipError::Invalid(_))));
    }

    #[test]
    fn output_past_the_limit_is_refused_without_allocating_it() {
        let zeros = gzip(&vec![0u8; 1 << 20]);
        assert_eq!(
            gunzip(&zeros, 1000),
            Err(GzipError::TooLarge { limit: 1000 })
        );
        assert_eq!(gunzip(&zeros, 1 << 20).map(|v| v.len()), Ok(1 << 20));
        // The limit counts every member together.
        let mut two = gzip(&[1; 600]);
        two.extend(gzip(&[2; 600]));
        assert_eq!(gunzip(&two, 1000), Err(GzipError::TooLarge { limit: 1000 }));
        let out = gunzip(&two, 1200).expect("exactly at the limit");
        assert_eq!(out.len(), 1200);
        assert!(out.capacity() <= 1200, "capacity {}", out.capacity());
    }
}
