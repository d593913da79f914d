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

/// An object key looked up in `table` as serde_json hands it over (where it
/// lies in the body, or unescaped into serde_json's scratch buffer): the
/// value paired with it, or `otherwise`. serde's own key types (`String`,
/// `Cow<str>`) would allocate a `String` for each key.
pub(crate) struct KeyLookup<'t, T> {
    pub table: &'t [(&'t str, T)],
    pub otherwise: T,
}

impl<'de, T: Copy> serde::de::DeserializeSeed<'de> for KeyLookup<'_, T> {
    type Value = T;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<T, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de, T: Copy> serde::de::Visitor<'de> for KeyLookup<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<T, E> {
        Ok(self
            .table
            .iter()
            .find_map(|(k, value)| (*k == key).then_some(*value))
            .unwrap_or(self.otherwise))
    }
}

/// Whether a JSON body is an OTLP request: an object with `key` at its top
/// level (`resourceSpans`, `resourceMetrics`), or an empty object (an empty
/// OTLP request). A body broken after that key still counts as OTLP, so its
/// error is reported the OTLP way.
///
/// The scan stops at `key`, so this function does not read an OTLP body in
/// full (the limits' counter and the decoder still do).
pub fn is_otlp_json(body: &[u8], key: &str) -> bool {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::cell::Cell;

    struct TopLevel<'k> {
        key: &'k str,
        found: &'k Cell<bool>,
    }

    impl<'de> Visitor<'de> for TopLevel<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let table = [(self.key, true)];
            let mut empty = true;
            while let Some(is_key) = map.next_key_seed(KeyLookup {
                table: &table,
                otherwise: false,
            })? {
                empty = false;
                if is_key {
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

    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    let found = Cell::new(false);
    // Errors are the decoder's to report (and stopping early at the key is
    // one): only what was seen matters here.
    let _ =
        serde_json::Deserializer::from_slice(body).deserialize_map(TopLevel { key, found: &found });
    found.get()
}

#[cfg(test)]
mod tests {
    use super::is_otlp_json;

    #[test]
    fn otlp_json_is_told_from_native_records() {
        let key = "resourceSpans";
        assert!(is_otlp_json(br#"{"resourceSpans":[]}"#, key));
        assert!(is_otlp_json(b" {} ", key), "an empty OTLP request");
        assert!(
            is_otlp_json(br#"{"resourceSpans":[{"broken"#, key),
            "broken after the key"
        );
        assert!(!is_otlp_json(br#"{"provider":"a","model":"m"}"#, key));
        assert!(
            !is_otlp_json(br#"[{"resourceSpans":[]}]"#, key),
            "an array is native"
        );
        assert!(!is_otlp_json(b"", key));
        assert!(
            is_otlp_json(br#"{"a":1,"resource\u0053pans":[]}"#, key),
            "an escaped key is compared once unescaped"
        );
        assert!(
            !is_otlp_json(br#"{"provider":"a","nested":{"resourceSpans":[]}}"#, key),
            "only top-level keys count"
        );
    }
}
