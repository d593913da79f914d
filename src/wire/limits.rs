//! Counting a request's items on the wire, before anything is built from it.
//!
//! A body's size says little about the memory its decoding takes: a
//! 7,814-byte gzip request to `/v1/logs` held 4,000,000 empty log records
//! (2 bytes each on the wire, hundreds of bytes each once decoded), and an
//! 8 MiB native array of `{"name":"a"}` held 645,000 events. So before a
//! body is decoded, one pass over its bytes counts what decoding would make,
//! and stops at the first item past a limit:
//!
//! - **records**: the items a request carries (native records; OTLP spans,
//!   metric data points of every kind, log records).
//! - **values**: what decoding makes memory of, in units of roughly 100
//!   bytes of decoded memory:
//!   - in protobuf, every sub-message (resources, scopes, records,
//!     attributes and their values, array and kvlist elements, events,
//!     links, exemplars, buckets, quantiles), every element of a repeated
//!     number field and every repeated string;
//!   - in JSON, every value node (objects, arrays, strings, numbers,
//!     booleans, nulls), so one item counts about twice as many values in
//!     JSON as in protobuf; in native JSON, also every key of an object
//!     inside a record (`metadata`, `attributes`), as each becomes a string
//!     of its own;
//!   - an item that becomes a JSON object of its own (a kvlist value, a span
//!     event or link, a summary quantile, exponential histogram buckets, a
//!     resource; an object inside a native record) counts
//!     [`OBJECT_VALUES`]: each costs a map node of about 640 bytes;
//!   - what every record keeps its own copy of, its resource's attributes,
//!     its scope's name and version, its metric's name and unit, counts
//!     again for every record: its values, and one value per
//!     [`INHERITED_BYTES_PER_VALUE`] bytes of its text.
//!
//! The protobuf pass walks the wire format with prost's own primitives over a
//! table of which fields of which OTLP message make memory ([`Schema`]); the
//! JSON pass is a serde visitor that builds nothing. Neither allocates per
//! item, and both cost far less than the decoding they guard.

use std::fmt;

use openclaw_trace_actors::stats::Signal;
use prost::encoding::{
    check_wire_type, decode_key, decode_varint, skip_field, DecodeContext, WireType,
};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{DecodeError, KeyLookup};

/// What an item that becomes a JSON object of its own counts: its map node
/// alone is about 640 bytes (a B-tree leaf of eleven slots).
pub const OBJECT_VALUES: usize = 8;

/// Text every record copies counts one value per this many bytes, per record.
pub const INHERITED_BYTES_PER_VALUE: usize = 64;

/// How many items one request may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records (native records; OTLP spans, data points, log records).
    pub max_records: usize,
    /// Values (see the module docs).
    pub max_values: usize,
}

impl Limits {
    /// The default of `TRACE_MAX_RECORDS_PER_REQUEST`. Real exporters send
    /// fewer: OpenTelemetry SDK batch processors export at most 512 spans,
    /// log records or points per request by default, the Collector's batch
    /// processor 8,192.
    pub const DEFAULT_MAX_RECORDS: usize = 10_000;

    /// Values allowed per record allowed, on average over the request.
    /// Chosen and measured (`tests/wire_limits.rs`) so that any request
    /// within the default limits and an 8 MiB body keeps the daemon under
    /// 64 MiB: a stored span with a dozen attributes takes about 3.5 KB
    /// (its attributes map alone about 2 KB), so 10,000 of them would not
    /// fit. A request of 10,000 spans with seven attributes each fits; so
    /// does the SDKs' usual batch of 512 spans with up to 300 values each.
    pub const VALUES_PER_RECORD: usize = 16;

    /// The limits for `max_records` records per request.
    pub fn new(max_records: usize) -> Limits {
        Limits {
            max_records,
            max_values: max_records.saturating_mul(Self::VALUES_PER_RECORD),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(Self::DEFAULT_MAX_RECORDS)
    }
}

/// What a body holds, as far as it was counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records.
    pub records: usize,
    /// Values, records included.
    pub values: usize,
}

/// Adds items up and says when a limit is passed.
struct Counter<'l> {
    limits: &'l Limits,
    counts: Counts,
    /// Bytes of JSON strings seen, to price the text records copy.
    text: usize,
}

impl<'l> Counter<'l> {
    fn new(limits: &'l Limits) -> Self {
        Counter {
            limits,
            counts: Counts::default(),
            text: 0,
        }
    }

    fn record(&mut self) -> Result<(), TooLarge> {
        self.counts.records += 1;
        if self.counts.records > self.limits.max_records {
            return Err(TooLarge::Records);
        }
        Ok(())
    }

    fn values(&mut self, n: usize) -> Result<(), TooLarge> {
        self.counts.values = self.counts.values.saturating_add(n);
        if self.counts.values > self.limits.max_values {
            return Err(TooLarge::Values);
        }
        Ok(())
    }
}

/// What each record beneath a message copies from it.
#[derive(Default)]
struct Inherited {
    values: usize,
    bytes: usize,
}

impl Inherited {
    /// What all `records` beneath pay for their copies.
    fn charge(&self, records: usize) -> usize {
        let per_record = self
            .values
            .saturating_add(self.bytes.div_ceil(INHERITED_BYTES_PER_VALUE));
        records.saturating_mul(per_record)
    }
}

/// Which limit a body passed.
#[derive(Debug, Clone, Copy)]
enum TooLarge {
    Records,
    Values,
}

impl TooLarge {
    fn error(self, limits: &Limits) -> DecodeError {
        let variable = format!("TRACE_MAX_RECORDS_PER_REQUEST ({})", limits.max_records);
        DecodeError::TooLarge(match self {
            TooLarge::Records => format!(
                "body: more than {} records in one request; the limit is {variable}: \
                 send smaller batches",
                limits.max_records
            ),
            TooLarge::Values => format!(
                "body: more than {} values (attributes, array elements, events and other \
                 nested items, and what each record copies from its resource and scope) in \
                 one request; the limit is {} per record allowed by {variable}: send smaller \
                 batches",
                limits.max_values,
                limits.max_values / limits.max_records.max(1)
            ),
        })
    }
}

// ---------------------------------------------------------------------------
// Protobuf

/// What a field of an OTLP message holds, for the fields that make memory of
/// their own. Any field not listed is a scalar, or a string or bytes field
/// whose one allocation the message holding it pays for, or is unknown; it
/// is skipped.
#[derive(Clone, Copy)]
enum Field {
    /// A nested message.
    Message(&'static Schema),
    /// A nested message that is a record (a span, a data point, a log record).
    Record(&'static Schema),
    /// A nested message every record beneath its parent copies (a resource,
    /// a scope).
    Inherited(&'static Schema),
    /// A string every record beneath its parent copies (a metric's name).
    InheritedText,
    /// `repeated fixed64` or `repeated double`: a value per element.
    Repeated64,
    /// `repeated uint64` (varints): a value per element.
    RepeatedVarint,
    /// `repeated string`: a value per element.
    RepeatedString,
}

/// One OTLP message: what it counts, and its fields listed in [`Field`].
pub struct Schema {
    /// Values the message itself counts.
    values: usize,
    fields: &'static [(u32, Field)],
}

impl Schema {
    fn field(&self, tag: u32) -> Option<Field> {
        self.fields
            .iter()
            .find_map(|(t, f)| (*t == tag).then_some(*f))
    }
}

/// A message of one value.
const fn message(fields: &'static [(u32, Field)]) -> Schema {
    Schema { values: 1, fields }
}

/// A message that becomes a JSON object of its own.
const fn object(fields: &'static [(u32, Field)]) -> Schema {
    Schema {
        values: OBJECT_VALUES,
        fields,
    }
}

// opentelemetry.proto.common.v1
static ANY_VALUE: Schema = message(&[
    (5, Field::Message(&ARRAY_VALUE)),    // array_value
    (6, Field::Message(&KEY_VALUE_LIST)), // kvlist_value
]);
static ARRAY_VALUE: Schema = message(&[(1, Field::Message(&ANY_VALUE))]);
static KEY_VALUE_LIST: Schema = object(&[(1, Field::Message(&KEY_VALUE))]);
static KEY_VALUE: Schema = message(&[(2, Field::Message(&ANY_VALUE))]);
static SCOPE: Schema = message(&[(3, Field::Message(&KEY_VALUE))]);
static ENTITY_REF: Schema = message(&[
    (3, Field::RepeatedString), // id_keys
    (4, Field::RepeatedString), // description_keys
]);
/// A message with scalar and text fields only (`Status`).
static SCALARS: Schema = message(&[]);

// opentelemetry.proto.resource.v1: its attributes become an object.
static RESOURCE: Schema = object(&[
    (1, Field::Message(&KEY_VALUE)),  // attributes
    (3, Field::Message(&ENTITY_REF)), // entity_refs
]);

// opentelemetry.proto.trace.v1
static TRACE_REQUEST: Schema = message(&[(1, Field::Message(&RESOURCE_SPANS))]);
static RESOURCE_SPANS: Schema = message(&[
    (1, Field::Inherited(&RESOURCE)),
    (2, Field::Message(&SCOPE_SPANS)),
]);
static SCOPE_SPANS: Schema = message(&[(1, Field::Inherited(&SCOPE)), (2, Field::Record(&SPAN))]);
static SPAN: Schema = message(&[
    (9, Field::Message(&KEY_VALUE)),   // attributes
    (11, Field::Message(&SPAN_EVENT)), // events
    (13, Field::Message(&SPAN_LINK)),  // links
    (15, Field::Message(&SCALARS)),    // status
]);
static SPAN_EVENT: Schema = object(&[(3, Field::Message(&KEY_VALUE))]);
static SPAN_LINK: Schema = object(&[(4, Field::Message(&KEY_VALUE))]);

// opentelemetry.proto.metrics.v1
static METRICS_REQUEST: Schema = message(&[(1, Field::Message(&RESOURCE_METRICS))]);
static RESOURCE_METRICS: Schema = message(&[
    (1, Field::Inherited(&RESOURCE)),
    (2, Field::Message(&SCOPE_METRICS)),
]);
static SCOPE_METRICS: Schema =
    message(&[(1, Field::Inherited(&SCOPE)), (2, Field::Message(&METRIC))]);
static METRIC: Schema = message(&[
    (1, Field::InheritedText),                    // name
    (3, Field::InheritedText),                    // unit
    (5, Field::Message(&NUMBER_POINTS)),          // gauge
    (7, Field::Message(&NUMBER_POINTS)),          // sum
    (9, Field::Message(&HISTOGRAM)),              // histogram
    (10, Field::Message(&EXPONENTIAL_HISTOGRAM)), // exponential_histogram
    (11, Field::Message(&SUMMARY)),               // summary
    (12, Field::Message(&KEY_VALUE)),             // metadata
]);
/// `Gauge` and `Sum`: data_points = 1.
static NUMBER_POINTS: Schema = message(&[(1, Field::Record(&NUMBER_POINT))]);
static HISTOGRAM: Schema = message(&[(1, Field::Record(&HISTOGRAM_POINT))]);
static EXPONENTIAL_HISTOGRAM: Schema = message(&[(1, Field::Record(&EXPONENTIAL_HISTOGRAM_POINT))]);
static SUMMARY: Schema = message(&[(1, Field::Record(&SUMMARY_POINT))]);
static NUMBER_POINT: Schema = message(&[
    (5, Field::Message(&EXEMPLAR)),  // exemplars
    (7, Field::Message(&KEY_VALUE)), // attributes
]);
static HISTOGRAM_POINT: Schema = message(&[
    (6, Field::Repeated64),          // bucket_counts
    (7, Field::Repeated64),          // explicit_bounds
    (8, Field::Message(&EXEMPLAR)),  // exemplars
    (9, Field::Message(&KEY_VALUE)), // attributes
]);
static EXPONENTIAL_HISTOGRAM_POINT: Schema = message(&[
    (1, Field::Message(&KEY_VALUE)), // attributes
    (8, Field::Message(&BUCKETS)),   // positive
    (9, Field::Message(&BUCKETS)),   // negative
    (11, Field::Message(&EXEMPLAR)), // exemplars
]);
static BUCKETS: Schema = object(&[(2, Field::RepeatedVarint)]);
static SUMMARY_POINT: Schema = message(&[
    (6, Field::Message(&VALUE_AT_QUANTILE)), // quantile_values
    (7, Field::Message(&KEY_VALUE)),         // attributes
]);
static VALUE_AT_QUANTILE: Schema = object(&[]);
static EXEMPLAR: Schema = message(&[(7, Field::Message(&KEY_VALUE))]);

// opentelemetry.proto.logs.v1
static LOGS_REQUEST: Schema = message(&[(1, Field::Message(&RESOURCE_LOGS))]);
static RESOURCE_LOGS: Schema = message(&[
    (1, Field::Inherited(&RESOURCE)),
    (2, Field::Message(&SCOPE_LOGS)),
]);
static SCOPE_LOGS: Schema = message(&[
    (1, Field::Inherited(&SCOPE)),
    (2, Field::Record(&LOG_RECORD)),
]);
static LOG_RECORD: Schema = message(&[
    (5, Field::Message(&ANY_VALUE)), // body
    (6, Field::Message(&KEY_VALUE)), // attributes
]);

/// How deep messages may nest below the request: prost's own limit, so a
/// body refused here would be refused by the decoder too.
const MAX_DEPTH: u32 = 100;

/// Why the protobuf walk stopped.
enum Stop {
    TooLarge(TooLarge),
    Malformed(String),
}

impl From<TooLarge> for Stop {
    fn from(t: TooLarge) -> Self {
        Stop::TooLarge(t)
    }
}

impl From<prost::DecodeError> for Stop {
    fn from(e: prost::DecodeError) -> Self {
        Stop::Malformed(e.to_string())
    }
}

/// Counts the items of an OTLP protobuf request for `signal`, stopping at
/// the first one past `limits`. Broken wire data is `MalformedProtobuf`, as
/// from the decoder.
pub fn count_protobuf(signal: Signal, body: &[u8], limits: &Limits) -> Result<Counts, DecodeError> {
    let schema = match signal {
        Signal::Spans => &TRACE_REQUEST,
        Signal::DataPoints => &METRICS_REQUEST,
        Signal::LogRecords => &LOGS_REQUEST,
    };
    let mut counter = Counter::new(limits);
    let mut buf = body;
    match walk(&mut buf, schema, 0, &mut counter) {
        Ok(_) => Ok(counter.counts),
        Err(Stop::TooLarge(t)) => Err(t.error(limits)),
        Err(Stop::Malformed(m)) => Err(DecodeError::MalformedProtobuf(format!(
            "body is not a valid protobuf message: {m}"
        ))),
    }
}

/// Counts the fields of one message, `buf` holding exactly its bytes;
/// returns the records beneath it.
fn walk(
    buf: &mut &[u8],
    schema: &Schema,
    depth: u32,
    counter: &mut Counter,
) -> Result<usize, Stop> {
    if depth > MAX_DEPTH {
        return Err(Stop::Malformed("recursion limit reached".into()));
    }
    let mut records = 0usize;
    let mut inherited = Inherited::default();
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(buf)?;
        let Some(field) = schema.field(tag) else {
            skip_field(wire_type, tag, buf, DecodeContext::default())?;
            continue;
        };
        match field {
            Field::Message(inner) | Field::Record(inner) | Field::Inherited(inner) => {
                check_wire_type(WireType::LengthDelimited, wire_type)?;
                let bytes = delimited(buf)?;
                let before = counter.counts.values;
                if matches!(field, Field::Record(_)) {
                    counter.record()?;
                    records += 1;
                }
                counter.values(inner.values)?;
                records += walk(&mut &bytes[..], inner, depth + 1, counter)?;
                if matches!(field, Field::Inherited(_)) {
                    inherited.values += counter.counts.values - before;
                    inherited.bytes += bytes.len();
                }
            }
            Field::InheritedText => {
                check_wire_type(WireType::LengthDelimited, wire_type)?;
                inherited.bytes += delimited(buf)?.len();
            }
            Field::Repeated64 => match wire_type {
                WireType::LengthDelimited => {
                    let packed = delimited(buf)?;
                    if packed.len() % 8 != 0 {
                        return Err(Stop::Malformed(
                            "a packed 64-bit field's length is not a multiple of 8".into(),
                        ));
                    }
                    counter.values(packed.len() / 8)?;
                }
                _ => {
                    check_wire_type(WireType::SixtyFourBit, wire_type)?;
                    skip_field(wire_type, tag, buf, DecodeContext::default())?;
                    counter.values(1)?;
                }
            },
            Field::RepeatedVarint => match wire_type {
                WireType::LengthDelimited => {
                    let packed = delimited(buf)?;
                    // Every varint ends with the one byte that has no
                    // continuation bit.
                    if packed.last().is_some_and(|b| b & 0x80 != 0) {
                        return Err(Stop::Malformed("a packed varint is truncated".into()));
                    }
                    counter.values(packed.iter().filter(|b| **b & 0x80 == 0).count())?;
                }
                _ => {
                    check_wire_type(WireType::Varint, wire_type)?;
                    decode_varint(buf)?;
                    counter.values(1)?;
                }
            },
            Field::RepeatedString => {
                check_wire_type(WireType::LengthDelimited, wire_type)?;
                delimited(buf)?;
                counter.values(1)?;
            }
        }
    }
    counter.values(inherited.charge(records))?;
    Ok(records)
}

/// Takes a length-delimited field's bytes off the front of `buf`.
fn delimited<'b>(buf: &mut &'b [u8]) -> Result<&'b [u8], Stop> {
    let len = decode_varint(buf)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|len| *len <= buf.len())
        .ok_or_else(|| Stop::Malformed("buffer underflow".into()))?;
    let (bytes, rest) = buf.split_at(len);
    *buf = rest;
    Ok(bytes)
}

// ---------------------------------------------------------------------------
// JSON

/// What is expected at a place in a JSON document.
#[derive(Clone, Copy)]
enum Shape {
    /// OTLP JSON outside the listed places: every node is a value; an object
    /// under `kvlistValue` becomes an object of its own.
    Any,
    /// An object whose listed keys lead on; other keys hold `Any`.
    Object(&'static [(&'static str, Shape)]),
    /// An object that becomes a JSON object of its own; `Any` inside.
    OwnObject,
    /// An array of elements of a shape.
    Array(&'static Shape),
    /// An array whose elements are records of a shape.
    Records(&'static Shape),
    /// Copied into every record beneath the enclosing object.
    Inherited(&'static Shape),
    /// A native body: one record, or an array of them.
    Native,
    /// A native record: its fields lead to `Map`.
    NativeRecord,
    /// Inside a native record: objects are maps, so keys count too.
    Map,
}

/// Where OTLP/JSON keys lead, below the listed places.
const ANY_FIELDS: &[(&str, Shape)] = &[("kvlistValue", Shape::OwnObject)];

const SCOPE_FIELD: (&str, Shape) = ("scope", Shape::Inherited(&Shape::Any));
const RESOURCE_FIELD: (&str, Shape) = ("resource", Shape::Inherited(&Shape::OwnObject));

const SPAN_SHAPE: Shape = Shape::Object(&[
    ("events", Shape::Array(&Shape::OwnObject)),
    ("links", Shape::Array(&Shape::OwnObject)),
]);

const OTLP_SPANS: Shape = Shape::Object(&[(
    "resourceSpans",
    Shape::Array(&Shape::Object(&[
        RESOURCE_FIELD,
        (
            "scopeSpans",
            Shape::Array(&Shape::Object(&[
                SCOPE_FIELD,
                ("spans", Shape::Records(&SPAN_SHAPE)),
            ])),
        ),
    ])),
)]);

/// Every kind of data point.
const POINT: Shape = Shape::Object(&[
    ("quantileValues", Shape::Array(&Shape::OwnObject)),
    ("positive", Shape::OwnObject),
    ("negative", Shape::OwnObject),
]);

const DATA_POINTS: Shape = Shape::Object(&[("dataPoints", Shape::Records(&POINT))]);

const OTLP_METRICS: Shape = Shape::Object(&[(
    "resourceMetrics",
    Shape::Array(&Shape::Object(&[
        RESOURCE_FIELD,
        (
            "scopeMetrics",
            Shape::Array(&Shape::Object(&[
                SCOPE_FIELD,
                (
                    "metrics",
                    Shape::Array(&Shape::Object(&[
                        ("name", Shape::Inherited(&Shape::Any)),
                        ("unit", Shape::Inherited(&Shape::Any)),
                        ("gauge", DATA_POINTS),
                        ("sum", DATA_POINTS),
                        ("histogram", DATA_POINTS),
                        ("exponentialHistogram", DATA_POINTS),
                        ("summary", DATA_POINTS),
                    ])),
                ),
            ])),
        ),
    ])),
)]);

const OTLP_LOGS: Shape = Shape::Object(&[(
    "resourceLogs",
    Shape::Array(&Shape::Object(&[
        RESOURCE_FIELD,
        (
            "scopeLogs",
            Shape::Array(&Shape::Object(&[
                SCOPE_FIELD,
                ("logRecords", Shape::Records(&Shape::Any)),
            ])),
        ),
    ])),
)]);

/// Counts the items of an OTLP JSON request for `signal`.
pub fn count_otlp_json(
    signal: Signal,
    body: &[u8],
    limits: &Limits,
) -> Result<Counts, DecodeError> {
    let shape = match signal {
        Signal::Spans => OTLP_SPANS,
        Signal::DataPoints => OTLP_METRICS,
        Signal::LogRecords => OTLP_LOGS,
    };
    count_json(shape, body, limits)
}

/// Counts the items of a native JSON body (one object, or an array of them).
pub fn count_native_json(body: &[u8], limits: &Limits) -> Result<Counts, DecodeError> {
    count_json(Shape::Native, body, limits)
}

/// Counts a JSON document's values and records. A body this pass cannot
/// read is refused here as not JSON: the decoder cannot be left to find the
/// error, since where it skips a value it reads less strictly (a string of
/// invalid UTF-8, a number out of range in an unknown field) and would go
/// on past it, uncounted.
fn count_json(shape: Shape, body: &[u8], limits: &Limits) -> Result<Counts, DecodeError> {
    let mut counter = Counter::new(limits);
    let mut over = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = Node {
        shape,
        counter: &mut counter,
        over: &mut over,
    }
    .deserialize(&mut de)
    .and_then(|_| de.end());
    match (over, read) {
        (Some(t), _) => Err(t.error(limits)),
        (None, Err(e)) => Err(DecodeError::Malformed(format!(
            "body is not valid JSON: {e}"
        ))),
        (None, Ok(())) => Ok(counter.counts),
    }
}

/// One JSON value being counted, with what is expected there. Yields the
/// records beneath it.
struct Node<'c, 'l> {
    shape: Shape,
    counter: &'c mut Counter<'l>,
    /// Set when a limit is passed (the serde error only carries text).
    over: &'c mut Option<TooLarge>,
}

impl<'l> Node<'_, 'l> {
    fn stop<E: de::Error>(&mut self, t: TooLarge) -> E {
        *self.over = Some(t);
        E::custom("over the limit")
    }

    fn values<E: de::Error>(&mut self, n: usize) -> Result<(), E> {
        self.counter.values(n).map_err(|t| self.stop(t))
    }

    fn record<E: de::Error>(&mut self) -> Result<(), E> {
        self.counter.record().map_err(|t| self.stop(t))
    }

    fn child<'n>(&'n mut self, shape: Shape) -> Node<'n, 'l> {
        Node {
            shape,
            counter: self.counter,
            over: self.over,
        }
    }

    fn scalar<E: de::Error>(mut self) -> Result<usize, E> {
        self.values(1)?;
        Ok(0)
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<usize, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<usize, E> {
        self.scalar()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<usize, E> {
        self.scalar()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<usize, E> {
        self.scalar()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<usize, E> {
        self.scalar()
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.counter.text += v.len();
        self.scalar()
    }

    fn visit_unit<E: de::Error>(self) -> Result<usize, E> {
        self.scalar()
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<usize, A::Error> {
        self.values(1)?;
        let (element, records) = match self.shape {
            Shape::Array(element) => (*element, false),
            Shape::Records(element) => (*element, true),
            Shape::Native => (Shape::NativeRecord, true),
            Shape::Map | Shape::NativeRecord => (Shape::Map, false),
            _ => (Shape::Any, false),
        };
        let mut beneath = 0usize;
        while let Some(n) = seq.next_element_seed(self.child(element))? {
            beneath = beneath.saturating_add(n);
            if records {
                self.record()?;
                beneath = beneath.saturating_add(1);
            }
        }
        Ok(beneath)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<usize, A::Error> {
        self.values(1)?;
        let mut beneath = 0usize;
        if matches!(self.shape, Shape::Native) {
            // A native body that is one object is one record.
            self.record()?;
            beneath = 1;
        }
        let (fields, inner, key_values, own_object) = match self.shape {
            Shape::Object(fields) => (fields, Shape::Any, 0, false),
            Shape::Native | Shape::NativeRecord => (&[][..], Shape::Map, 0, false),
            Shape::Map => (&[][..], Shape::Map, 1, true),
            Shape::OwnObject => (ANY_FIELDS, Shape::Any, 0, true),
            _ => (ANY_FIELDS, Shape::Any, 0, false),
        };
        let mut inherited = Inherited::default();
        let mut first = true;
        while let Some(shape) = map.next_key_seed(KeyLookup {
            table: fields,
            otherwise: inner,
        })? {
            if first && own_object {
                // Its map node is allocated with its first member.
                self.values(OBJECT_VALUES - 1)?;
            }
            first = false;
            self.values(key_values)?;
            match shape {
                Shape::Inherited(shape) => {
                    let (values, text) = (self.counter.counts.values, self.counter.text);
                    beneath = beneath.saturating_add(map.next_value_seed(self.child(*shape))?);
                    inherited.values += self.counter.counts.values - values;
                    inherited.bytes += self.counter.text - text;
                }
                shape => {
                    beneath = beneath.saturating_add(map.next_value_seed(self.child(shape))?);
                }
            }
        }
        self.values(inherited.charge(beneath))?;
        Ok(beneath)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, metric, summary_data_point::ValueAtQuantile,
        Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
        HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Summary,
        SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    fn big() -> Limits {
        Limits {
            max_records: 1_000,
            max_values: 1_000_000,
        }
    }

    fn resource() -> Resource {
        Resource {
            attributes: vec![kv("a", "b"), kv("c", "d")],
            ..Resource::default()
        }
    }

    fn scope() -> InstrumentationScope {
        InstrumentationScope {
            name: "s".into(),
            ..InstrumentationScope::default()
        }
    }

    /// What each record pays for its copy of `resource` and `scope`.
    fn inherited(resource: &Resource, scope: &InstrumentationScope) -> usize {
        // The resource: its object, and an attribute and its value per pair.
        let resource_values = OBJECT_VALUES + 2 * resource.attributes.len();
        resource_values
            + resource.encoded_len().div_ceil(INHERITED_BYTES_PER_VALUE)
            + 1
            + scope.encoded_len().div_ceil(INHERITED_BYTES_PER_VALUE)
    }

    #[test]
    fn protobuf_spans_are_counted_exactly() {
        let span = |name: &str| Span {
            name: name.into(),
            attributes: vec![kv("k", "v"), kv("l", "w")],
            status: Some(Status::default()),
            ..Span::default()
        };
        let with_more = Span {
            events: vec![Event {
                attributes: vec![kv("e", "f")],
                ..Event::default()
            }],
            links: vec![Link::default()],
            ..span("z")
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    spans: vec![span("x"), span("y"), with_more],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let counts = count_protobuf(Signal::Spans, &request.encode_to_vec(), &big()).expect("ok");
        // A span: itself, its status, two attributes of two values each.
        let spans = 3 * 6 + (OBJECT_VALUES + 2) + OBJECT_VALUES;
        let envelope = 1 + OBJECT_VALUES + 4 + 1 + 1;
        assert_eq!(
            counts,
            Counts {
                records: 3,
                values: envelope + spans + 3 * inherited(&resource(), &scope()),
            }
        );
    }

    #[test]
    fn protobuf_data_points_of_every_kind_are_counted() {
        let exemplar = Exemplar {
            filtered_attributes: vec![kv("x", "y")],
            ..Exemplar::default()
        };
        let metric = |name: &str, data: metric::Data| Metric {
            name: name.into(),
            unit: "1".into(),
            data: Some(data),
            ..Metric::default()
        };
        let metrics = vec![
            metric(
                "g",
                metric::Data::Gauge(Gauge {
                    data_points: vec![
                        NumberDataPoint {
                            attributes: vec![kv("k", "v")],
                            exemplars: vec![exemplar.clone()],
                            ..NumberDataPoint::default()
                        },
                        NumberDataPoint::default(),
                    ],
                }),
            ),
            metric(
                "h",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        bucket_counts: vec![1, 2, 3],
                        explicit_bounds: vec![1.0, 2.0],
                        ..HistogramDataPoint::default()
                    }],
                    ..Histogram::default()
                }),
            ),
            metric(
                "e",
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        positive: Some(Buckets {
                            offset: 0,
                            bucket_counts: vec![1, 300, 70_000],
                        }),
                        ..ExponentialHistogramDataPoint::default()
                    }],
                    ..ExponentialHistogram::default()
                }),
            ),
            metric(
                "s",
                metric::Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        quantile_values: vec![ValueAtQuantile::default(); 2],
                        ..SummaryDataPoint::default()
                    }],
                }),
            ),
        ];
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        };
        let counts =
            count_protobuf(Signal::DataPoints, &request.encode_to_vec(), &big()).expect("ok");
        // Each metric: itself and its kind's message; each point copies the
        // metric's name and unit (a value for up to 64 bytes of them).
        let gauge = 2 + (1 + 2 + 1 + 2) + 1 + 2;
        let histogram = 2 + 1 + 3 + 2 + 1;
        let exponential = 2 + 1 + OBJECT_VALUES + 3 + 1;
        let summary = 2 + 1 + 2 * OBJECT_VALUES + 1;
        assert_eq!(
            counts,
            Counts {
                records: 5,
                values: 2 + gauge + histogram + exponential + summary,
            }
        );
    }

    #[test]
    fn protobuf_log_records_are_counted() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord::default(),
                        LogRecord {
                            body: Some(AnyValue {
                                value: Some(any_value::Value::ArrayValue(ArrayValue {
                                    values: vec![AnyValue::default(); 3],
                                })),
                            }),
                            ..LogRecord::default()
                        },
                    ],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        let counts =
            count_protobuf(Signal::LogRecords, &request.encode_to_vec(), &big()).expect("ok");
        assert_eq!(
            counts,
            Counts {
                records: 2,
                values: 2 + 1 + (1 + 1 + 1 + 3)
            }
        );
    }

    /// `n` empty log records, on the wire.
    fn empty_logs(n: usize) -> Vec<u8> {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); n],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn past_a_limit_is_too_large_and_names_the_variable() {
        let limits = Limits::new(3);
        assert!(count_protobuf(Signal::LogRecords, &empty_logs(3), &limits).is_ok());
        let e = count_protobuf(Signal::LogRecords, &empty_logs(4), &limits).expect_err("4 > 3");
        assert!(
            matches!(&e, DecodeError::TooLarge(m) if m.contains("TRACE_MAX_RECORDS_PER_REQUEST (3)")
                && m.contains("more than 3 records")),
            "{e}"
        );

        let wide = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        attributes: vec![kv("k", "v"); 30],
                        ..LogRecord::default()
                    }],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        let e = count_protobuf(Signal::LogRecords, &wide.encode_to_vec(), &limits)
            .expect_err("63 values > 48");
        assert!(
            matches!(&e, DecodeError::TooLarge(m) if m.contains("more than 48 values")
                && m.contains("16 per record")
                && m.contains("TRACE_MAX_RECORDS_PER_REQUEST (3)")),
            "{e}"
        );
    }

    #[test]
    fn a_resource_is_paid_for_by_every_record_beneath_it() {
        let request = |spans: usize| {
            ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    // After its spans on the wire: the order does not matter.
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span::default(); spans],
                        ..ScopeSpans::default()
                    }],
                    resource: Some(resource()),
                    ..ResourceSpans::default()
                }],
            }
            .encode_to_vec()
        };
        let one = count_protobuf(Signal::Spans, &request(1), &big()).expect("ok");
        let ten = count_protobuf(Signal::Spans, &request(10), &big()).expect("ok");
        let per_span = 1 + OBJECT_VALUES + 4 + resource().encoded_len().div_ceil(64);
        assert_eq!(ten.values - one.values, 9 * per_span);
    }

    #[test]
    fn malformed_protobuf_is_refused_as_the_decoder_would() {
        let body = empty_logs(2);
        for cut in [
            &body[..body.len() - 1],
            &[0x0a, 0x05, 0x01][..],
            &[0x08][..],
        ] {
            assert!(
                matches!(
                    count_protobuf(Signal::LogRecords, cut, &big()),
                    Err(DecodeError::MalformedProtobuf(_))
                ),
                "{cut:?}"
            );
            assert!(ExportLogsServiceRequest::decode(cut).is_err());
        }
        // resource_logs (1) sent as a varint.
        assert!(matches!(
            count_protobuf(Signal::LogRecords, &[0x08, 0x01], &big()),
            Err(DecodeError::MalformedProtobuf(_))
        ));
        assert!(ExportLogsServiceRequest::decode(&[0x08u8, 0x01][..]).is_err());
        // Unknown fields are skipped, as the decoder does.
        let mut with_unknown = vec![0x78, 0x05];
        with_unknown.extend(&body);
        let counts = count_protobuf(Signal::LogRecords, &with_unknown, &big()).expect("ok");
        assert_eq!(counts.records, 2);
    }

    #[test]
    fn nesting_is_refused_where_the_decoder_refuses_it() {
        // A log record whose body is an array in an array in ... `depth` deep.
        let nested = |depth: usize| {
            let mut value = AnyValue::default();
            for _ in 0..depth {
                value = AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                        values: vec![value],
                    })),
                };
            }
            ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    scope_logs: vec![ScopeLogs {
                        log_records: vec![LogRecord {
                            body: Some(value),
                            ..LogRecord::default()
                        }],
                        ..ScopeLogs::default()
                    }],
                    ..ResourceLogs::default()
                }],
            }
            .encode_to_vec()
        };
        for depth in 40..55 {
            let body = nested(depth);
            let decoded = ExportLogsServiceRequest::decode(body.as_slice());
            let counted = count_protobuf(Signal::LogRecords, &body, &big());
            assert_eq!(
                decoded.is_ok(),
                counted.is_ok(),
                "depth {depth}: {decoded:?} {counted:?}"
            );
        }
    }

    #[test]
    fn otlp_json_is_counted_exactly() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"b"}}]},
            "scopeSpans":[{"scope":{"name":"s"},"spans":[{"name":"x"},{"name":"y","events":[{"name":"e"}]}]}]}]}"#;
        let counts = count_otlp_json(Signal::Spans, body, &big()).expect("ok");
        // The resource: its object (8), the attributes array, a pair of
        // four values; it and its 2 bytes of text are paid by both spans.
        let resource = OBJECT_VALUES + 1 + 4;
        // The scope: an object and a string of 1 byte.
        let scope = 2;
        let spans = 2 + 2 + 1 + (OBJECT_VALUES + 1);
        let envelope = 1 + 1 + 1 + 1 + 1 + 1;
        assert_eq!(
            counts,
            Counts {
                records: 2,
                values: envelope + resource + scope + spans + 2 * (resource + 1) + 2 * (scope + 1),
            }
        );

        let metrics = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"g","gauge":{"dataPoints":[{"asInt":"1"},{"asDouble":2}]}},
            {"name":"s","summary":{"dataPoints":[{"quantileValues":[{"quantile":0.5,"value":1}]}]}}]}]}]}"#;
        let counts = count_otlp_json(Signal::DataPoints, metrics, &big()).expect("ok");
        assert_eq!(counts.records, 3);

        let logs = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{},{"body":{"kvlistValue":{"values":[]}}}]}]}]}"#;
        let counts = count_otlp_json(Signal::LogRecords, logs, &big()).expect("ok");
        assert_eq!(counts.records, 3);
    }

    #[test]
    fn native_json_is_counted_with_its_map_keys() {
        let body = br#"[{"provider":"a","model":"m","metadata":{"k":1,"j":[1,2]}},{"provider":"b","model":"n"}]"#;
        let counts = count_native_json(body, &big()).expect("ok");
        // The metadata map: its object (8), 2 keys, 1, and [1,2] (3).
        let first = 3 + OBJECT_VALUES + 2 + 1 + 3;
        assert_eq!(
            counts,
            Counts {
                records: 2,
                values: 1 + first + 3
            }
        );
        let one = count_native_json(br#"{"name":"a","attributes":{}}"#, &big()).expect("ok");
        assert_eq!(
            one,
            Counts {
                records: 1,
                values: 3
            }
        );
    }

    #[test]
    fn json_past_a_limit_stops_there() {
        let limits = Limits::new(2);
        assert!(count_native_json(br#"[{"name":"a"},{"name":"b"}]"#, &limits).is_ok());
        // The pass stops at the third record: what follows is never read.
        let e = count_native_json(
            br#"[{"name":"a"},{"name":"b"},{"name":"c"}, broken"#,
            &limits,
        )
        .expect_err("3 > 2");
        assert!(
            matches!(&e, DecodeError::TooLarge(m) if m.contains("(2)")),
            "{e}"
        );
        let e = count_otlp_json(
            Signal::LogRecords,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{},{}]}]}]}"#,
            &limits,
        )
        .expect_err("3 > 2");
        assert!(matches!(e, DecodeError::TooLarge(_)));
        let deep = format!(
            "[{{\"name\":\"a\",\"attributes\":{{\"k\":{}}}}}]",
            "[".repeat(40)
        );
        assert!(matches!(
            count_native_json(deep.as_bytes(), &limits),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn json_this_pass_cannot_read_is_malformed() {
        // Found by fuzzing: the decoder skips an unknown field's string
        // without checking its UTF-8, and would read on past it uncounted.
        let bad_utf8 = b"[{\"name\":\"a\",\"unknown\":\"\xff\"},{\"name\":\"b\"}]";
        for body in [
            &b"nope"[..],
            b"[{\"name\":",
            b"{} trailing",
            b"",
            bad_utf8,
            b"{\"name\":\"a\",\"unknown\":1e400}",
        ] {
            for counted in [
                count_native_json(body, &big()),
                count_otlp_json(Signal::Spans, body, &big()),
            ] {
                assert!(
                    matches!(&counted, Err(DecodeError::Malformed(m)) if m.starts_with("body is not valid JSON")),
                    "{body:?}: {counted:?}"
                );
            }
        }
    }

    #[test]
    fn both_encodings_count_the_same_records() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![
                    ScopeSpans {
                        spans: vec![Span::default(); 3],
                        ..ScopeSpans::default()
                    },
                    ScopeSpans {
                        spans: vec![Span::default(); 4],
                        ..ScopeSpans::default()
                    },
                ],
                ..ResourceSpans::default()
            }],
        };
        let json = serde_json::to_vec(&request).expect("serializes");
        let from_json = count_otlp_json(Signal::Spans, &json, &big()).expect("ok");
        let from_proto =
            count_protobuf(Signal::Spans, &request.encode_to_vec(), &big()).expect("ok");
        assert_eq!((from_json.records, from_proto.records), (7, 7));
    }
}
