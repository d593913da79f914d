//! The retry policy: classify what a send came back with, then back off.
//!
//! Kept apart from the sending so the rules can be read (and tested) in one
//! place. Backoff is exponential and capped (`backon`), with full jitter: the
//! wait is drawn uniformly between zero and the capped exponential delay.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};

/// How batches are encoded, which also decides what is retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFormat {
    /// The earlier Go sidecar's `{"events": [...]}` envelope.
    Native,
    /// OTLP/HTTP protobuf.
    Otlp,
}

/// What came back from one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The remote answered with this status (and `Retry-After`, if any).
    Status {
        /// HTTP status code.
        code: u16,
        /// The parsed `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// No answer within `TRACE_PUSH_TIMEOUT`.
    Timeout,
    /// The connection failed (refused, reset, DNS).
    Network,
}

/// What to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered: mark the rows pushed.
    Delivered,
    /// Try the same batch again, after `after` when the remote said so.
    Retry {
        /// The remote's `Retry-After`, on 429 and 503.
        after: Option<Duration>,
    },
    /// Too large: send it in halves.
    Split,
    /// Refused as it is. A lone row refused with 400 (or 413) is
    /// dead-lettered; otherwise the rows stay for the next tick.
    Refused {
        /// 401 or 403: a configuration error worth saying so.
        auth: bool,
    },
}

/// Attempts per batch in one tick.
pub const MAX_ATTEMPTS: usize = 5;

/// The retry rules of one push format.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    format: PushFormat,
    /// First backoff delay.
    min_delay: Duration,
    /// Cap of the backoff delay.
    max_delay: Duration,
}

impl RetryPolicy {
    /// The policy of `format`, backing off from `min_delay` up to `max_delay`.
    pub fn new(format: PushFormat, min_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            format,
            min_delay,
            max_delay,
        }
    }

    /// Classifies one send.
    pub fn classify(&self, outcome: &SendOutcome) -> Verdict {
        let (code, retry_after) = match outcome {
            SendOutcome::Timeout | SendOutcome::Network => return Verdict::Retry { after: None },
            SendOutcome::Status { code, retry_after } => (*code, *retry_after),
        };
        let retryable = match self.format {
            // OTLP/HTTP: only these are retryable; everything else is final.
            PushFormat::Otlp => matches!(code, 429 | 502 | 503 | 504),
            PushFormat::Native => {
                code == 408 || code == 429 || (500..=599).contains(&code) && code != 501
            }
        };
        match code {
            200..=299 => Verdict::Delivered,
            413 => Verdict::Split,
            _ if retryable => Verdict::Retry {
                after: if matches!(code, 429 | 503) {
                    retry_after
                } else {
                    None
                },
            },
            _ => Verdict::Refused {
                auth: matches!(code, 401 | 403),
            },
        }
    }

    /// The waits between the attempts of one batch: capped exponential
    /// delays from `backon`, each drawn with full jitter. Yields
    /// `MAX_ATTEMPTS - 1` waits.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(MAX_ATTEMPTS - 1)
            .build()
            .map(|cap| cap.mul_f64(fastrand::f64()))
    }
}

/// Reads a `Retry-After` value: delay seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> SendOutcome {
        SendOutcome::Status {
            code,
            retry_after: Some(Duration::from_secs(7)),
        }
    }

    #[test]
    fn native_retries_network_errors_timeouts_408_429_and_5xx_but_501() {
        let p = RetryPolicy::new(
            PushFormat::Native,
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        assert_eq!(
            p.classify(&SendOutcome::Network),
            Verdict::Retry { after: None }
        );
        assert_eq!(
            p.classify(&SendOutcome::Timeout),
            Verdict::Retry { after: None }
        );
        assert_eq!(p.classify(&status(408)), Verdict::Retry { after: None });
        assert_eq!(
            p.classify(&status(429)),
            Verdict::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            p.classify(&status(503)),
            Verdict::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(p.classify(&status(500)), Verdict::Retry { after: None });
        assert_eq!(p.classify(&status(501)), Verdict::Refused { auth: false });
        assert_eq!(p.classify(&status(413)), Verdict::Split);
        assert_eq!(p.classify(&status(401)), Verdict::Refused { auth: true });
        assert_eq!(p.classify(&status(400)), Verdict::Refused { auth: false });
        assert_eq!(p.classify(&status(204)), Verdict::Delivered);
    }

    #[test]
    fn otlp_retries_only_429_502_503_504() {
        let p = RetryPolicy::new(
            PushFormat::Otlp,
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        for code in [429, 502, 503, 504] {
            assert!(
                matches!(p.classify(&status(code)), Verdict::Retry { .. }),
                "{code}"
            );
        }
        for code in [408, 500, 501] {
            assert_eq!(
                p.classify(&status(code)),
                Verdict::Refused { auth: false },
                "{code}"
            );
        }
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::new(
            PushFormat::Native,
            Duration::from_millis(100),
            Duration::from_millis(400),
        );
        let waits: Vec<Duration> = p.backoff().collect();
        assert_eq!(waits.len(), MAX_ATTEMPTS - 1);
        assert!(
            waits.iter().all(|w| *w <= Duration::from_millis(400)),
            "{waits:?}"
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
