//! The LLM view: reading token usage and cost out of OTLP telemetry so that
//! `llm_calls` answers "what did the agent spend, on which model" whichever
//! way the data came in (COMPAT.md section 3).
//!
//! - A span that carries usage attributes (`openclaw.tokens.*` or
//!   `gen_ai.usage.*`; OpenClaw's `openclaw.model.usage` spans do) is one
//!   call: [`call_from_span`].
//! - OpenClaw's `openclaw.tokens` and `openclaw.cost.usd` metrics are usage
//!   over time (renamed `<prefix>tokens` and `<prefix>cost.usd` when OpenClaw's
//!   `metricNamePrefix` is set; the batch's [`Stamp`] carries the prefix, from
//!   `TRACE_OPENCLAW_METRIC_PREFIX`): [`usage_from_point`] reads a point, and [`usage_calls`]
//!   (run by the store inside the transaction that stores the points) turns
//!   the increase since the series' previous point into a row, so a
//!   cumulative point exported twice adds nothing the second time.
//!
//! The LLM rows are derived here and nowhere else: ingest asks
//! [`derived_calls`] for the calls a batch of spans holds, and the store
//! asks [`usage_calls`] for those a batch of points adds; both only write.
//!
//! Tokens are stored once each, whichever attributes carried them:
//! `prompt_tokens` is **uncached** input only, `cache_read_tokens` and
//! `cache_write_tokens` the input read from and written to the prompt cache,
//! and `total_tokens` (when derived) the sum of the four with output. That is
//! what OpenClaw's `openclaw.tokens.input` and the `input` point of its
//! `openclaw.tokens` metric mean. `gen_ai.usage.input_tokens`, though, counts
//! input + cache read + cache write (COMPAT.md section 3), so when a span's
//! input comes from it, the `gen_ai.usage` cache counts are taken off
//! (`uncached_input`); adding the cache counts to it would count them twice.
//!
//! A token count above [`MAX_TOKENS`] (a broken or hostile exporter) is left
//! out of its row rather than stored, so sums over the table cannot overflow.
//!
//! Rows carry their origin in `llm_calls.source` (`otlp_span`,
//! `otlp_metric`): an agent exporting both spans and metrics reports the same
//! tokens twice, once per call and once per interval, so totals should be
//! taken over one source.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::records::{
    Batch, JsonObject, LlmCall, LlmOrigin, MetricPoint, SpanRecord, Stamp, Temporality, MAX_TOKENS,
};

/// The first of `keys` present in `attrs` as text.
fn text(attrs: &JsonObject, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match attrs.get(*k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    })
}

/// The first of `keys` present in `attrs` as a whole number from 0 to
/// [`MAX_TOKENS`] (exporters send integers, some send doubles or numeric
/// strings).
fn count(attrs: &JsonObject, keys: &[&str]) -> Option<i64> {
    keys.iter()
        .find_map(|k| match attrs.get(*k)? {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.round() as i64)
            }),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|n| (0..=MAX_TOKENS).contains(n))
}

/// The first of `keys` present in `attrs` as a non-negative finite number.
fn amount(attrs: &JsonObject, keys: &[&str]) -> Option<f64> {
    keys.iter()
        .find_map(|k| match attrs.get(*k)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|f| f.is_finite() && *f >= 0.0)
}

/// What OpenClaw's own metric names start with unless its
/// `metricNamePrefix` says otherwise. Only metric names change with it:
/// attribute names (`openclaw.token`, `openclaw.provider`...) and span
/// attributes keep theirs.
pub const DEFAULT_METRIC_PREFIX: &str = "openclaw.";

const PROVIDER: &[&str] = &["gen_ai.provider.name", "gen_ai.system", "openclaw.provider"];
const MODEL: &[&str] = &[
    "gen_ai.response.model",
    "gen_ai.request.model",
    "openclaw.model",
];
/// Uncached input tokens.
const OPENCLAW_INPUT: &str = "openclaw.tokens.input";
/// All input tokens: uncached, cache read and cache write.
const GEN_AI_INPUT: &str = "gen_ai.usage.input_tokens";
const GEN_AI_CACHE_READ: &str = "gen_ai.usage.cache_read.input_tokens";
const GEN_AI_CACHE_WRITE: &str = "gen_ai.usage.cache_creation.input_tokens";
const OUTPUT: &[&str] = &["openclaw.tokens.output", "gen_ai.usage.output_tokens"];
const CACHE_READ: &[&str] = &["openclaw.tokens.cache_read", GEN_AI_CACHE_READ];
const CACHE_WRITE: &[&str] = &["openclaw.tokens.cache_write", GEN_AI_CACHE_WRITE];
const TOTAL: &[&str] = &["openclaw.tokens.total", "gen_ai.usage.total_tokens"];
const COST: &[&str] = &["openclaw.cost.usd", "gen_ai.usage.cost"];

/// The span's uncached input tokens: `openclaw.tokens.input` as it is, else
/// `gen_ai.usage.input_tokens` less the `gen_ai.usage` cache read and cache
/// write counts it includes (at least 0, should an exporter send less).
fn uncached_input(attrs: &JsonObject) -> Option<i64> {
    count(attrs, &[OPENCLAW_INPUT]).or_else(|| {
        let all = count(attrs, &[GEN_AI_INPUT])?;
        let cached = count(attrs, &[GEN_AI_CACHE_READ]).unwrap_or(0)
            + count(attrs, &[GEN_AI_CACHE_WRITE]).unwrap_or(0);
        Some((all - cached).max(0))
    })
}

/// The call a span describes, when it carries token usage.
pub fn call_from_span(span: &SpanRecord) -> Option<LlmCall> {
    let attrs = span.attributes.as_ref()?;
    let input = uncached_input(attrs);
    let output = count(attrs, OUTPUT);
    let cache_read = count(attrs, CACHE_READ);
    let cache_write = count(attrs, CACHE_WRITE);
    let total = count(attrs, TOTAL);
    if [input, output, cache_read, cache_write, total]
        .iter()
        .all(Option::is_none)
    {
        return None;
    }
    let total = total.or_else(|| {
        let parts = [input, output, cache_read, cache_write];
        Some(parts.iter().flatten().sum()).filter(|sum| *sum <= MAX_TOKENS)
    });
    let failed = span.status_code == 2;
    let mut metadata = JsonObject::new();
    metadata.insert("span_name".into(), Value::String(span.name.clone()));
    if let Some(op) = text(attrs, &["gen_ai.operation.name"]) {
        metadata.insert("operation".into(), Value::String(op));
    }
    if let Some(service) = &span.origin.service_name {
        metadata.insert("service".into(), Value::String(service.clone()));
    }
    Some(LlmCall {
        time_ns: Some(span.start_ns),
        trace_id: Some(span.trace_id.clone()),
        span_id: Some(span.span_id.clone()),
        session_id: None,
        provider: text(attrs, PROVIDER).unwrap_or_else(|| "unknown".into()),
        model: text(attrs, MODEL).unwrap_or_else(|| "unknown".into()),
        input_text: None,
        output_text: None,
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: total,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        cost_usd: amount(attrs, COST),
        latency_ms: Some((span.end_ns - span.start_ns).max(0) as f64 / 1e6),
        status: text(attrs, &["openclaw.outcome", "outcome"])
            .unwrap_or_else(|| if failed { "error" } else { "ok" }.into()),
        error_type: text(attrs, &["error.type", "openclaw.errorCategory"])
            .or_else(|| failed.then(|| span.status_message.clone()).flatten()),
        channel: text(attrs, &["openclaw.channel"]),
        metadata: Some(metadata),
        truncated: Vec::new(),
        origin: LlmOrigin::Span,
    })
}

/// Which field of an LLM row a usage point adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageField {
    /// `prompt_tokens`.
    Input,
    /// `completion_tokens`.
    Output,
    /// `cache_read_tokens`.
    CacheRead,
    /// `cache_write_tokens`.
    CacheWrite,
    /// `total_tokens`.
    Total,
    /// `cost_usd`.
    CostUsd,
}

/// A usage metric point, read.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricUsage {
    /// Identifies the series across exports: name, attributes and resource.
    pub series_key: String,
    /// The provider, or "unknown".
    pub provider: String,
    /// The model, or "unknown".
    pub model: String,
    /// The channel, when given.
    pub channel: Option<String>,
    /// Which field the value adds to.
    pub field: UsageField,
    /// The point's value: a running total when `cumulative`, else an increase.
    pub value: f64,
    /// Whether `value` is a running total since `start_time_ns`.
    pub cumulative: bool,
    /// The series' start, for cumulative points.
    pub start_time_ns: i64,
}

/// Reads an OpenClaw usage point (`openclaw.tokens`, `openclaw.cost.usd`,
/// their names starting with `prefix` instead of `openclaw.` when OpenClaw's
/// `metricNamePrefix` is set). `openclaw.token = prompt` is skipped: it
/// repeats input and cache tokens.
pub fn usage_from_point(point: &MetricPoint, prefix: &str) -> Option<MetricUsage> {
    let empty = JsonObject::new();
    let attrs = point.attributes.as_ref().unwrap_or(&empty);
    let field = match point.name.strip_prefix(prefix)? {
        "tokens" => match text(attrs, &["openclaw.token"])?.as_str() {
            "input" => UsageField::Input,
            "output" => UsageField::Output,
            "cache_read" => UsageField::CacheRead,
            "cache_write" => UsageField::CacheWrite,
            "total" => UsageField::Total,
            _ => return None,
        },
        "cost.usd" => UsageField::CostUsd,
        _ => return None,
    };
    let value = point.value.filter(|v| v.is_finite() && *v >= 0.0)?;
    let resource = point
        .origin
        .as_ref()
        .and_then(|o| o.resource.as_ref())
        .map(|r| Value::Object(r.clone()).to_string())
        .unwrap_or_default();
    Some(MetricUsage {
        series_key: format!(
            "{}|{}|{}",
            point.name,
            Value::Object(attrs.clone()),
            resource
        ),
        provider: text(attrs, &["openclaw.provider", "gen_ai.provider.name"])
            .unwrap_or_else(|| "unknown".into()),
        model: text(attrs, &["openclaw.model", "gen_ai.request.model"])
            .unwrap_or_else(|| "unknown".into()),
        channel: text(attrs, &["openclaw.channel"]),
        field,
        value,
        cumulative: point.temporality == Some(Temporality::Cumulative),
        start_time_ns: point.start_time_ns.unwrap_or(0),
    })
}

/// Adds `increase` of `field` to `call`. A token increase that would take
/// the field past [`MAX_TOKENS`] is left out.
pub fn add_usage(call: &mut LlmCall, field: UsageField, increase: f64) {
    let tokens = |slot: &mut Option<i64>| {
        let current = slot.unwrap_or(0);
        // Checked as a float first: `as` saturates, and NaN fails the test.
        if increase.round() <= (MAX_TOKENS - current) as f64 {
            *slot = Some(current + increase.round() as i64);
        }
    };
    match field {
        UsageField::Input => tokens(&mut call.prompt_tokens),
        UsageField::Output => tokens(&mut call.completion_tokens),
        UsageField::CacheRead => tokens(&mut call.cache_read_tokens),
        UsageField::CacheWrite => tokens(&mut call.cache_write_tokens),
        UsageField::Total => tokens(&mut call.total_tokens),
        UsageField::CostUsd => call.cost_usd = Some(call.cost_usd.unwrap_or(0.0) + increase),
    }
}

/// The LLM calls a batch holds besides its own rows: one per span with
/// usage; `None` when there are none (or the batch is not spans).
pub fn derived_calls(batch: &Batch) -> Option<Batch> {
    let Batch::Spans(spans) = batch else {
        return None;
    };
    let calls: Vec<_> = spans.iter().filter_map(call_from_span).collect();
    (!calls.is_empty()).then_some(Batch::LlmCalls(calls))
}

/// The LLM rows OpenClaw's usage metrics in `points` add: per provider,
/// model and channel, the increase of each series since its previous point.
/// Cumulative series remember their last value in `cumulative_series`, so a
/// point exported again adds nothing, and a restarted exporter (new start
/// time, or a lower value) starts counting from its new total.
pub fn usage_calls(
    conn: &Connection,
    points: &[MetricPoint],
    stamp: &Stamp,
) -> Result<Vec<LlmCall>, rusqlite::Error> {
    let mut calls: Vec<LlmCall> = Vec::new();
    for point in points {
        let Some(usage) = usage_from_point(point, &stamp.openclaw_metric_prefix) else {
            continue;
        };
        let time_ns = point.time_ns.unwrap_or(stamp.received_ns);
        let increase = if usage.cumulative {
            let previous: Option<(i64, f64)> = conn
                .prepare_cached(
                    "SELECT start_time_ns, value FROM cumulative_series WHERE series_key = ?1",
                )?
                .query_row([&usage.series_key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            conn.prepare_cached(
                "INSERT INTO cumulative_series (series_key, start_time_ns, value, time_ns)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (series_key) DO UPDATE SET
                    start_time_ns = excluded.start_time_ns, value = excluded.value,
                    time_ns = excluded.time_ns",
            )?
            .execute(params![
                usage.series_key,
                usage.start_time_ns,
                usage.value,
                time_ns
            ])?;
            match previous {
                Some((start, last)) if start == usage.start_time_ns && usage.value >= last => {
                    usage.value - last
                }
                _ => usage.value,
            }
        } else {
            usage.value
        };
        if increase <= 0.0 {
            continue;
        }
        let slot = calls.iter().position(|c| {
            c.provider == usage.provider && c.model == usage.model && c.channel == usage.channel
        });
        let call = match slot {
            Some(i) => &mut calls[i],
            None => {
                calls.push(LlmCall {
                    time_ns: Some(time_ns),
                    trace_id: Some(uuid::Uuid::new_v4().to_string()),
                    provider: usage.provider.clone(),
                    model: usage.model.clone(),
                    channel: usage.channel.clone(),
                    status: "ok".into(),
                    origin: LlmOrigin::Metric,
                    ..LlmCall::default()
                });
                calls.last_mut().expect("just pushed")
            }
        };
        call.time_ns = call.time_ns.max(Some(time_ns));
        add_usage(call, usage.field, increase);
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MetricKind;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_usage_span_is_one_call() {
        let span = SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            name: "openclaw.model.usage".into(),
            start_ns: 1_000_000_000,
            end_ns: 3_500_000_000,
            attributes: Some(obj(json!({
                "gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4",
                "openclaw.tokens.input": 1200, "openclaw.tokens.output": 80,
                "openclaw.tokens.cache_read": 300, "openclaw.channel": "telegram"
            }))),
            origin: Default::default(),
            ..SpanRecord::default()
        };
        let call = call_from_span(&span).expect("a usage span");
        assert_eq!(
            (call.provider.as_str(), call.model.as_str()),
            ("anthropic", "claude-sonnet-4")
        );
        assert_eq!(
            (
                call.prompt_tokens,
                call.completion_tokens,
                call.cache_read_tokens
            ),
            (Some(1200), Some(80), Some(300))
        );
        assert_eq!(
            call.total_tokens,
            Some(1580),
            "total derived from the parts"
        );
        assert_eq!(call.latency_ms, Some(2500.0));
        assert_eq!(call.channel.as_deref(), Some("telegram"));
        assert_eq!(call.origin, LlmOrigin::Span);

        let plain = SpanRecord {
            attributes: Some(obj(json!({"http.method": "GET"}))),
            ..span
        };
        assert!(call_from_span(&plain).is_none(), "no usage, no call");
    }

    #[test]
    fn gen_ai_input_is_stored_without_the_cache_it_includes() {
        let span = |attrs: Value| SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            attributes: Some(obj(attrs)),
            ..SpanRecord::default()
        };
        let tokens = |call: LlmCall| {
            (
                call.prompt_tokens,
                call.completion_tokens,
                call.cache_read_tokens,
                call.cache_write_tokens,
                call.total_tokens,
            )
        };
        // gen_ai.usage.input_tokens = 750 uncached + 100 read + 50 written.
        let call = call_from_span(&span(json!({
            "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 45,
            "gen_ai.usage.cache_read.input_tokens": 100,
            "gen_ai.usage.cache_creation.input_tokens": 50,
        })))
        .expect("a usage span");
        assert_eq!(
            tokens(call),
            (Some(750), Some(45), Some(100), Some(50), Some(945)),
            "each token once: the total is the span's 900 input and 45 output"
        );

        // OpenClaw sends both: openclaw.tokens.input is uncached already.
        let call = call_from_span(&span(json!({
            "openclaw.tokens.input": 1200, "openclaw.tokens.output": 80,
            "openclaw.tokens.cache_read": 300, "openclaw.tokens.cache_write": 0,
            "gen_ai.usage.input_tokens": 1500, "gen_ai.usage.output_tokens": 80,
            "gen_ai.usage.cache_read.input_tokens": 300,
            "gen_ai.usage.cache_creation.input_tokens": 0,
        })))
        .expect("a usage span");
        assert_eq!(
            tokens(call),
            (Some(1200), Some(80), Some(300), Some(0), Some(1580))
        );

        // An exporter claiming more cache than input: no negative count.
        let call = call_from_span(&span(json!({
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 50,
        })))
        .expect("a usage span");
        assert_eq!(tokens(call), (Some(0), None, Some(50), None, Some(50)));

        // Without cache counts, gen_ai input is all uncached.
        let call =
            call_from_span(&span(json!({"gen_ai.usage.input_tokens": 10}))).expect("a usage span");
        assert_eq!(tokens(call), (Some(10), None, None, None, Some(10)));
    }

    #[test]
    fn token_counts_past_the_cap_are_left_out() {
        let span = SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            attributes: Some(obj(json!({
                "openclaw.tokens.input": MAX_TOKENS,
                "openclaw.tokens.output": MAX_TOKENS + 1,
                "openclaw.tokens.cache_read": "9223372036854775807",
                "openclaw.tokens.cache_write": 1e300,
            }))),
            ..SpanRecord::default()
        };
        let call = call_from_span(&span).expect("a usage span");
        assert_eq!(call.prompt_tokens, Some(MAX_TOKENS), "at the cap is kept");
        assert_eq!(call.completion_tokens, None);
        assert_eq!(call.cache_read_tokens, None);
        assert_eq!(call.cache_write_tokens, None);
        assert_eq!(call.total_tokens, Some(MAX_TOKENS));

        let span = SpanRecord {
            attributes: Some(obj(json!({
                "openclaw.tokens.input": MAX_TOKENS, "openclaw.tokens.output": 1,
            }))),
            ..span
        };
        let call = call_from_span(&span).expect("a usage span");
        assert_eq!(
            call.total_tokens, None,
            "a derived total past the cap is left out"
        );

        let mut call = LlmCall::default();
        add_usage(&mut call, UsageField::Input, 5.0);
        add_usage(&mut call, UsageField::Input, 1e300);
        add_usage(&mut call, UsageField::Input, f64::NAN);
        add_usage(&mut call, UsageField::Input, (MAX_TOKENS - 5) as f64);
        add_usage(&mut call, UsageField::Input, 1.0);
        assert_eq!(call.prompt_tokens, Some(MAX_TOKENS));
        add_usage(&mut call, UsageField::Output, 1e300);
        assert_eq!(call.completion_tokens, None);
    }

    fn usage_point(name: &str, token: &str) -> MetricPoint {
        MetricPoint {
            time_ns: Some(2),
            start_time_ns: Some(1),
            name: name.into(),
            value: Some(42.0),
            unit: None,
            kind: MetricKind::Sum,
            temporality: Some(Temporality::Cumulative),
            monotonic: Some(true),
            data: None,
            attributes: Some(obj(
                json!({"openclaw.token": token, "openclaw.model": "gpt-5", "openclaw.provider": "openai"}),
            )),
            origin: None,
        }
    }

    #[test]
    fn usage_points_are_read_and_prompt_is_skipped() {
        let point = |token: &str| usage_point("openclaw.tokens", token);
        let u = usage_from_point(&point("output"), DEFAULT_METRIC_PREFIX).expect("usage");
        assert_eq!(
            (u.field, u.value, u.cumulative),
            (UsageField::Output, 42.0, true)
        );
        assert_eq!(u.model, "gpt-5");
        assert!(usage_from_point(&point("prompt"), DEFAULT_METRIC_PREFIX).is_none());
        assert_ne!(
            usage_from_point(&point("input"), DEFAULT_METRIC_PREFIX)
                .expect("usage")
                .series_key,
            u.series_key,
            "each token type is its own series"
        );
    }

    #[test]
    fn usage_metrics_are_read_under_openclaws_metric_name_prefix() {
        let renamed = usage_point("acme.tokens", "input");
        let u = usage_from_point(&renamed, "acme.").expect("acme.tokens under acme.");
        assert_eq!(u.field, UsageField::Input);
        assert!(
            usage_from_point(&renamed, DEFAULT_METRIC_PREFIX).is_none(),
            "acme.tokens is not read under the default prefix"
        );
        assert!(
            usage_from_point(&usage_point("openclaw.tokens", "input"), "acme.").is_none(),
            "with a prefix set, openclaw.tokens is another service's metric"
        );
        let mut cost = usage_point("acme.cost.usd", "");
        cost.attributes = Some(obj(json!({"openclaw.model": "gpt-5"})));
        assert_eq!(
            usage_from_point(&cost, "acme.").map(|u| u.field),
            Some(UsageField::CostUsd)
        );
        let bare = usage_point("tokens", "output");
        assert_eq!(
            usage_from_point(&bare, "").map(|u| u.field),
            Some(UsageField::Output),
            "an empty metricNamePrefix exports bare names"
        );
    }
}
