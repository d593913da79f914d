//! Wire formats: turning request bodies into records.
//!
//! - [`native`]: the daemon's own JSON records (the Go sidecar's field names).
//! - [`otlp`]: OTLP/HTTP requests, protobuf or JSON.
//! - [`limits`]: counting a body's items on the wire before it is decoded,
//!   so no request can take more memory than the limits allow.
//! - [`gzip`]: `Content-Encoding: gzip`, every member, within a size limit.

pub mod gzip;
pub mod limits;
pub mod native;
pub mod otlp;

/// A body that could not be turned into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not parseable JSON (bad syntax, truncated body).
    #[error("{0}")]
    Malformed(String),
    /// Not parseable protobuf.
    #[error("{0}")]
    MalformedProtobuf(String),
    /// Parseable, but a field is missing, of the wrong type or out of range.
    /// The message starts with the field's path.
    #[error("{0}")]
    InvalidField(String),
    /// More items than [`limits::Limits`] allow; the message names the
    /// limit and its variable.
    #[error("{0}")]
    TooLarge(String),
}

/// Whether a JSON body is an OTLP request: an object with one of `keys` at
/// its top level (`resourceSpans`, `resourceMetrics`), or an empty object (an
/// empty OTLP request). A body broken after such a key still counts as OTLP,
/// so its error is reported the OTLP way.
///
/// Keys are compared where they lie in the body (none is copied), and the
/// scan stops at the first key that matches: an OTLP body is read in full
/// only once, by its decoder.
pub fn is_otlp_json(body: &[u8], keys: &[&str]) -> bool {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::cell::Cell;

    struct TopLevel<'k> {
        keys: &'k [&'k str],
        found: &'k Cell<bool>,
    }

    impl<'de> Visitor<'de> for TopLevel<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut empty = true;
            while let Some(listed) = map.next_key_seed(OneOf(self.keys))? {
                empty = false;
                if listed {
                    // Stops here: what follows is the decoder's to read.
                    self.found.set(true);
                    return Ok(());
                }
                map.next_value::<IgnoredAny>()?;
            }
            if empty {
                self.found.set(true);
            }
            Ok(())
        }
    }

    /// A key, told whether it is one of the listed ones without copying it.
    struct OneOf<'k>(&'k [&'k str]);

    impl<'de> DeserializeSeed<'de> for OneOf<'_> {
        type Value = bool;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for OneOf<'_> {
        type Value = bool;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a key")
        }

        fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
            Ok(self.0.contains(&key))
        }
    }

    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    let found = Cell::new(false);
    // Errors are the decoder's to report (and stopping early at a listed key
    // is one): only what was seen matters here.
    let _ = serde_json::Deserializer::from_slice(body).deserialize_map(TopLevel {
        keys,
        found: &found,
    });
    found.get()
}

#[cfg(test)]
mod tests {
    use super::is_otlp_json;

    #[test]
    fn otlp_json_is_told_from_native_records() {
        let keys = &["resourceSpans"];
        assert!(is_otlp_json(br#"{"resourceSpans":[]}"#, keys));
        assert!(is_otlp_json(b" {} ", keys), "an empty OTLP request");
        assert!(
            is_otlp_json(br#"{"resourceSpans":[{"broken"#, keys),
            "broken after the key"
        );
        assert!(!is_otlp_json(br#"{"provider":"a","model":"m"}"#, keys));
        assert!(
            !is_otlp_json(br#"[{"resourceSpans":[]}]"#, keys),
            "an array is native"
        );
        assert!(!is_otlp_json(b"", keys));
        assert!(
            is_otlp_json(br#"{"a":1,"resource\u0053pans":[]}"#, keys),
            "an escaped key is compared once unescaped"
        );
        assert!(
            !is_otlp_json(br#"{"provider":"a","nested":{"resourceSpans":[]}}"#, keys),
            "only top-level keys count"
        );
    }
}
