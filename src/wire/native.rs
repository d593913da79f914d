//! The native JSON records: `POST /v1/traces` (LLM calls), `/v1/errors`,
//! `/v1/events` and `/v1/metrics`. A body is one object or an array of them.
//!
//! Field names follow the earlier Go sidecar (COMPAT.md section 4). Unknown
//! fields are ignored, so newer agents can send more than this build knows.
//! Type errors come from serde with the path of the field that failed
//! (`[2].prompt_tokens: invalid type: ...`); range rules (no negative token
//! counts, costs or latencies; no empty names) are checked after.
//!
//! `timestamp` is an RFC 3339 time (`2026-11-28T10:00:00.123Z`, any offset)
//! or a number of unix milliseconds from 1970 to 2262 (what unix nanoseconds
//! in an `i64` can hold). Token counts are at most [`MAX_TOKENS`] each.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::error::Category;

use openclaw_trace_actors::records::{
    Batch, ErrorRecord, EventRecord, JsonObject, LlmCall, MetricKind, MetricPoint, Temporality,
    MAX_TOKENS,
};

use super::limits::{self, Limits};
use super::DecodeError;

/// Which native record an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /v1/traces`.
    LlmCall,
    /// `POST /v1/errors`.
    Error,
    /// `POST /v1/events`.
    Event,
    /// `POST /v1/metrics`.
    Metric,
}

/// Decodes a native JSON body of `kind` into a batch, once its items are
/// counted within `limits`.
pub fn decode(kind: Kind, body: &[u8], limits: &Limits) -> Result<Batch, DecodeError> {
    limits::count_native_json(body, limits)?;
    Ok(match kind {
        Kind::LlmCall => Batch::LlmCalls(decode_all::<LlmCallIn, _>(body, LlmCallIn::into_record)?),
        Kind::Error => Batch::Errors(decode_all::<ErrorIn, _>(body, ErrorIn::into_record)?),
        Kind::Event => Batch::Events(decode_all::<EventIn, _>(body, EventIn::into_record)?),
        Kind::Metric => {
            Batch::MetricPoints(decode_all::<MetricIn, _>(body, MetricIn::into_record)?)
        }
    })
}

/// Parses one object or an array of objects, then validates each.
fn decode_all<T, R>(
    body: &[u8],
    validate: impl Fn(T) -> Result<R, FieldError>,
) -> Result<Vec<R>, DecodeError>
where
    T: DeserializeOwned,
{
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        Some(b'[') => {
            let items: Vec<T> = parse(body)?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| validate(item).map_err(|e| e.at(&format!("[{i}]"))))
                .collect()
        }
        Some(b'{') => {
            let item: T = parse(body)?;
            Ok(vec![validate(item).map_err(|e| e.at(""))?])
        }
        _ => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(DecodeError::InvalidField(
                "body: must be a JSON object or an array of objects".into(),
            )),
            Err(e) => Err(DecodeError::Malformed(format!(
                "body is not valid JSON: {e}"
            ))),
        },
    }
}

/// Deserializes with the path of any failing field kept in the message, in
/// one pass for valid and invalid bodies alike. (Tried and reverted: a plain
/// `serde_json` pass, read again with paths only when it fails, saved about
/// 11 allocations a record but added 48.7 kB to the binary, a second copy of
/// each record type's deserializer.)
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                DecodeError::Malformed(format!("body is not valid JSON: {inner}"))
            }
            Category::Data if path == "." => DecodeError::InvalidField(inner.to_string()),
            Category::Data => DecodeError::InvalidField(format!("{path}: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| DecodeError::Malformed(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A range rule a field broke, before its record's position is known.
struct FieldError {
    field: &'static str,
    problem: String,
}

impl FieldError {
    /// The error with the record's position (`[3]`, or "" for a lone object).
    fn at(self, position: &str) -> DecodeError {
        let sep = if position.is_empty() { "" } else { "." };
        DecodeError::InvalidField(format!("{position}{sep}{}: {}", self.field, self.problem))
    }
}

fn non_empty(field: &'static str, value: String) -> Result<String, FieldError> {
    if value.trim().is_empty() {
        Err(FieldError {
            field,
            problem: "must not be empty".into(),
        })
    } else {
        Ok(value)
    }
}

fn non_negative_int(field: &'static str, value: Option<i64>) -> Result<Option<i64>, FieldError> {
    match value {
        Some(v) if v < 0 => Err(FieldError {
            field,
            problem: format!("must be a non-negative integer, got {v}"),
        }),
        v => Ok(v),
    }
}

/// A token count: a whole number from 0 to [`MAX_TOKENS`].
fn token_count(field: &'static str, value: Option<i64>) -> Result<Option<i64>, FieldError> {
    match non_negative_int(field, value)? {
        Some(v) if v > MAX_TOKENS => Err(FieldError {
            field,
            problem: format!("must be at most {MAX_TOKENS}, got {v}"),
        }),
        v => Ok(v),
    }
}

fn non_negative_num(field: &'static str, value: Option<f64>) -> Result<Option<f64>, FieldError> {
    match value {
        // serde_json never yields NaN or infinities, but say so if one came.
        Some(v) if !v.is_finite() || v < 0.0 => Err(FieldError {
            field,
            problem: format!("must be a finite non-negative number, got {v}"),
        }),
        v => Ok(v),
    }
}

/// `POST /v1/traces` record.
#[derive(Deserialize)]
struct LlmCallIn {
    provider: String,
    model: String,
    input_text: Option<String>,
    output_text: Option<String>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    total_tokens: Option<i64>,
    /// Not in the Go sidecar's format: input tokens read from the prompt
    /// cache, which `prompt_tokens` does not include.
    cache_read_tokens: Option<i64>,
    /// Not in the Go sidecar's format: input tokens written to the cache.
    cache_write_tokens: Option<i64>,
    cost_usd: Option<f64>,
    latency_ms: Option<f64>,
    status: Option<String>,
    error_type: Option<String>,
    metadata: Option<JsonObject>,
    session_id: Option<String>,
    /// Not in the Go sidecar's format: the agent's channel.
    channel: Option<String>,
    trace_id: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<i64>,
}

impl LlmCallIn {
    fn into_record(self) -> Result<LlmCall, FieldError> {
        Ok(LlmCall {
            time_ns: self.timestamp,
            trace_id: self.trace_id.filter(|t| !t.is_empty()),
            session_id: self.session_id,
            provider: non_empty("provider", self.provider)?,
            model: non_empty("model", self.model)?,
            input_text: self.input_text,
            output_text: self.output_text,
            prompt_tokens: token_count("prompt_tokens", self.prompt_tokens)?,
            completion_tokens: token_count("completion_tokens", self.completion_tokens)?,
            total_tokens: token_count("total_tokens", self.total_tokens)?,
            cache_read_tokens: token_count("cache_read_tokens", self.cache_read_tokens)?,
            cache_write_tokens: token_count("cache_write_tokens", self.cache_write_tokens)?,
            channel: self.channel.filter(|c| !c.is_empty()),
            cost_usd: non_negative_num("cost_usd", self.cost_usd)?,
            latency_ms: non_negative_num("latency_ms", self.latency_ms)?,
            status: self
                .status
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "ok".into()),
            error_type: self.error_type,
            metadata: self.metadata,
            ..LlmCall::default()
        })
    }
}

/// `POST /v1/errors` record.
#[derive(Deserialize)]
struct ErrorIn {
    error_type: String,
    message: String,
    stack_trace: Option<String>,
    severity: Option<String>,
    metadata: Option<JsonObject>,
    session_id: Option<String>,
    trace_id: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<i64>,
}

impl ErrorIn {
    fn into_record(self) -> Result<ErrorRecord, FieldError> {
        Ok(ErrorRecord {
            time_ns: self.timestamp,
            trace_id: self.trace_id,
            session_id: self.session_id,
            error_type: non_empty("error_type", self.error_type)?,
            message: non_empty("message", self.message)?,
            stack_trace: self.stack_trace,
            severity: self
                .severity
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "error".into()),
            metadata: self.metadata,
            truncated: Vec::new(),
        })
    }
}

/// `POST /v1/events` record.
#[derive(Deserialize)]
struct EventIn {
    name: String,
    severity: Option<String>,
    attributes: Option<JsonObject>,
    trace_id: Option<String>,
    span_id: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<i64>,
}

impl EventIn {
    fn into_record(self) -> Result<EventRecord, FieldError> {
        Ok(EventRecord {
            time_ns: self.timestamp,
            name: non_empty("name", self.name)?,
            severity: self
                .severity
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "info".into()),
            body: None,
            trace_id: self.trace_id,
            span_id: self.span_id,
            attributes: self.attributes,
            severity_number: None,
            origin: None,
        })
    }
}

/// `POST /v1/metrics` record.
#[derive(Deserialize)]
struct MetricIn {
    name: String,
    value: f64,
    unit: Option<String>,
    kind: Option<MetricKindIn>,
    attributes: Option<JsonObject>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<i64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum MetricKindIn {
    Gauge,
    Counter,
}

impl MetricIn {
    fn into_record(self) -> Result<MetricPoint, FieldError> {
        let kind = match self.kind {
            None | Some(MetricKindIn::Gauge) => MetricKind::Gauge,
            Some(MetricKindIn::Counter) => MetricKind::Counter,
        };
        let value = if kind == MetricKind::Counter {
            non_negative_num("value", Some(self.value))?.unwrap_or_default()
        } else {
            self.value
        };
        Ok(MetricPoint {
            time_ns: self.timestamp,
            start_time_ns: None,
            name: non_empty("name", self.name)?,
            value: Some(value),
            unit: self.unit,
            kind,
            temporality: (kind == MetricKind::Counter).then_some(Temporality::Delta),
            monotonic: (kind == MetricKind::Counter).then_some(true),
            data: None,
            attributes: self.attributes,
            origin: None,
        })
    }
}

/// Reads `timestamp`: RFC 3339 text or unix milliseconds, into unix ns.
fn timestamp<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    struct TimestampVisitor;

    const EXPECTED: &str = "an RFC 3339 time like \"2026-11-28T10:00:00Z\" or unix milliseconds";

    /// Unix ms from 1970 up to 2262-04-11 (the last whole ms that fits unix
    /// ns in an i64).
    const MAX_MS: i64 = i64::MAX / 1_000_000;

    fn out_of_range<E: de::Error>(ms: impl std::fmt::Display) -> E {
        E::custom(format!(
            "{ms} is out of range: unix milliseconds must be from 0 (1970) to {MAX_MS} (2262)"
        ))
    }

    fn from_int_millis<E: de::Error>(ms: i64) -> Result<Option<i64>, E> {
        if (0..=MAX_MS).contains(&ms) {
            Ok(Some(ms * 1_000_000))
        } else {
            Err(out_of_range(ms))
        }
    }

    fn from_millis<E: de::Error>(ms: f64) -> Result<Option<i64>, E> {
        // `as` saturates; the range check makes sure it never has to.
        if ms.is_finite() && (0.0..=MAX_MS as f64).contains(&ms) {
            Ok(Some((ms * 1_000_000.0).round() as i64))
        } else {
            Err(out_of_range(ms))
        }
    }

    impl<'de> Visitor<'de> for TimestampVisitor {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
            de.deserialize_any(self)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            from_int_millis(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v).map_or_else(|_| Err(out_of_range(v)), from_int_millis)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            from_millis(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    E::custom(format!(
                        "{v:?} is not a valid time ({e}); expected {EXPECTED}"
                    ))
                })?;
            i64::try_from(t.unix_timestamp_nanos())
                .map(Some)
                .map_err(|_| E::custom(format!("{v:?} is out of range")))
        }
    }

    de.deserialize_option(TimestampVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_default(kind: Kind, body: &[u8]) -> Result<Batch, DecodeError> {
        decode(kind, body, &Limits::default())
    }

    fn err(kind: Kind, body: &str) -> DecodeError {
        decode_default(kind, body.as_bytes()).expect_err("must be refused")
    }

    #[test]
    fn one_object_or_an_array() {
        let one = decode_default(
            Kind::LlmCall,
            br#"{"provider":"anthropic","model":"claude"}"#,
        )
        .expect("valid");
        assert_eq!(one.len(), 1);
        let many = decode_default(
            Kind::LlmCall,
            br#"[{"provider":"a","model":"m"},{"provider":"b","model":"n","status":"error"}]"#,
        )
        .expect("valid");
        let Batch::LlmCalls(calls) = many else {
            panic!("wrong batch kind")
        };
        assert_eq!(calls[0].status, "ok", "status defaults to ok");
        assert_eq!(calls[1].status, "error");
    }

    #[test]
    fn errors_name_the_field_and_its_position() {
        let e = err(
            Kind::LlmCall,
            r#"[{"provider":"a","model":"m"},{"provider":"a","model":"m","prompt_tokens":-5}]"#,
        );
        assert!(
            matches!(&e, DecodeError::InvalidField(m) if m.starts_with("[1].prompt_tokens:")),
            "{e}"
        );
        let e = err(
            Kind::LlmCall,
            r#"{"provider":"a","model":"m","prompt_tokens":"many"}"#,
        );
        assert!(
            matches!(&e, DecodeError::InvalidField(m) if m.starts_with("prompt_tokens:")),
            "{e}"
        );
        let e = err(Kind::LlmCall, r#"{"model":"m"}"#);
        assert!(
            matches!(&e, DecodeError::InvalidField(m) if m.contains("provider")),
            "{e}"
        );
        let e = err(
            Kind::LlmCall,
            r#"{"provider":"a","model":"m","cost_usd":-0.5}"#,
        );
        assert!(
            matches!(&e, DecodeError::InvalidField(m) if m.starts_with("cost_usd:")),
            "{e}"
        );
        let e = err(Kind::Metric, r#"{"name":"q","value":1,"kind":"histogram"}"#);
        assert!(
            matches!(&e, DecodeError::InvalidField(m) if m.starts_with("kind:")),
            "{e}"
        );
        let e = err(Kind::Metric, r#"{"name":"q","value":-1,"kind":"counter"}"#);
        assert!(
            matches!(&e, DecodeError::InvalidField(m) if m.starts_with("value:")),
            "{e}"
        );
        let e = err(
            Kind::Error,
            r#"{"error_type":"E","message":"m","timestamp":"yesterday"}"#,
        );
        assert!(
            matches!(&e, DecodeError::InvalidField(m) if m.starts_with("timestamp:")),
            "{e}"
        );
    }

    #[test]
    fn malformed_and_non_object_bodies() {
        assert!(matches!(
            err(Kind::Event, r#"{"name": "#),
            DecodeError::Malformed(_)
        ));
        assert!(matches!(
            err(Kind::Event, r#"{"name":"a"} trailing"#),
            DecodeError::Malformed(_)
        ));
        assert!(
            matches!(err(Kind::Event, "42"), DecodeError::InvalidField(m) if m.starts_with("body:"))
        );
        assert!(matches!(
            err(Kind::Event, "nope"),
            DecodeError::Malformed(_)
        ));
        // 1e400 is not a finite number: serde_json refuses it.
        assert!(decode_default(Kind::Metric, br#"{"name":"x","value":1e400}"#).is_err());
    }

    #[test]
    fn timestamps_in_both_forms() {
        let Batch::Events(e) = decode_default(Kind::Event,
            br#"[{"name":"a","timestamp":"2026-11-28T10:00:00.5+01:00"},{"name":"b","timestamp":1764324000500}]"#,
        )
        .expect("valid") else {
            panic!("wrong batch kind")
        };
        assert_eq!(e[0].time_ns, Some(1_795_856_400_500_000_000));
        assert_eq!(e[1].time_ns, Some(1_764_324_000_500_000_000));
    }

    #[test]
    fn token_counts_are_capped() {
        let at_cap = format!(
            r#"{{"provider":"a","model":"m","prompt_tokens":{MAX_TOKENS},"completion_tokens":0,"total_tokens":{MAX_TOKENS}}}"#
        );
        let Batch::LlmCalls(calls) =
            decode_default(Kind::LlmCall, at_cap.as_bytes()).expect("valid")
        else {
            panic!("wrong batch kind")
        };
        assert_eq!(calls[0].total_tokens, Some(MAX_TOKENS));
        for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            let body = format!(
                r#"[{{"provider":"a","model":"m","{field}":{}}}]"#,
                MAX_TOKENS + 1
            );
            let e = err(Kind::LlmCall, &body);
            assert!(
                matches!(&e, DecodeError::InvalidField(m) if m.starts_with(&format!("[0].{field}: must be at most 1000000000"))),
                "{e}"
            );
        }
    }

    #[test]
    fn millisecond_timestamps_must_fit_unix_nanoseconds() {
        let at = |ms: &str| {
            decode_default(
                Kind::Event,
                format!(r#"{{"name":"a","timestamp":{ms}}}"#).as_bytes(),
            )
        };
        let last = at("9223372036854").expect("the last whole ms of 2262");
        let Batch::Events(e) = last else {
            panic!("wrong batch kind")
        };
        assert_eq!(e[0].time_ns, Some(9_223_372_036_854_000_000));
        assert!(at("0").is_ok());
        assert!(at("1.5").is_ok());
        for bad in [
            "9223372036855",
            "9300000000000.5",
            "18446744073709551615",
            "-1",
            "-0.5",
            "1e300",
        ] {
            let e = at(bad).expect_err(bad);
            assert!(
                matches!(&e, DecodeError::InvalidField(m) if m.starts_with("timestamp:") && m.contains("out of range")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn too_many_records_are_refused_before_decoding() {
        let limits = Limits::new(2);
        let e = decode(
            Kind::Event,
            br#"[{"name":"a"},{"name":"b"},{"name":"c"}]"#,
            &limits,
        )
        .expect_err("3 > 2");
        assert!(
            matches!(&e, DecodeError::TooLarge(m) if m.contains("TRACE_MAX_RECORDS_PER_REQUEST (2)"))
        );
        assert!(decode(Kind::Event, br#"[{"name":"a"},{"name":"b"}]"#, &limits).is_ok());
    }
}
