//! gzip bodies: `gunzip` never panics, never returns or allocates more than
//! its limit, and what it returns is what flate2's own multi-member decoder
//! makes of the same bytes. The first two bytes are the limit.

#![no_main]

use std::io::Read;

use flate2::read::MultiGzDecoder;
use libfuzzer_sys::fuzz_target;
use openclaw_trace::wire::gzip::{gunzip, GzipError};

fuzz_target!(|data: &[u8]| {
    let Some((limit, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes(*limit));
    match gunzip(body, limit) {
        Ok(out) => {
            assert!(out.len() <= limit);
            assert!(out.capacity() <= limit, "allocated past the limit");
            let mut reference = Vec::new();
            MultiGzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut reference)
                .expect("MultiGzDecoder decodes what gunzip decodes");
            assert_eq!(out, reference);
        }
        Err(GzipError::TooLarge { limit: l }) => assert_eq!(l, limit),
        Err(GzipError::Invalid(_) | GzipError::TrailingBytes(_)) => {}
    }
});
