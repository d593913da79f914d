//! The daemon's listeners: the API's (`TRACE_LISTEN_ADDR`, which must bind)
//! and two optional ones, each serving a part of the routes on a port of its
//! own:
//!
//! - `TRACE_OTLP_LISTEN_ADDR` (default `127.0.0.1:4318`): the OTLP endpoints
//!   only, at the standard OTLP/HTTP port that OpenClaw's docs (and its
//!   exporter's default endpoint) point at, with the same handlers, limits
//!   and token as on the API's port;
//! - `TRACE_HEALTH_LISTEN_ADDR` (default off): `GET /health` only, for a
//!   platform's health check that cannot reach the loopback (Fly's checks
//!   connect to the machine's own address), without opening the API there.
//!
//! One HTTP server serves them all (one set of workers, connection caps and
//! timeouts); [`keep_to_role`] answers 404 on an extra port for any route
//! that is not its own. An extra listener that cannot be bound (its port
//! taken) is a warning in the log and in `/v1/status`, not a failure: the
//! API's port serves the same routes.

use std::io;
use std::net::{SocketAddr, TcpListener};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use slog::{info, warn, Logger};

use crate::config::Config;
use crate::http::AppState;

/// What an extra port serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `POST /v1/traces`, `/v1/metrics`, `/v1/logs`.
    Otlp,
    /// `GET /health`.
    Health,
}

impl Role {
    /// The variable that sets its address.
    pub fn variable(self) -> &'static str {
        match self {
            Role::Otlp => "TRACE_OTLP_LISTEN_ADDR",
            Role::Health => "TRACE_HEALTH_LISTEN_ADDR",
        }
    }

    /// Whether a request for `path` with `method` is this port's to serve.
    fn serves(self, method: &Method, path: &str) -> bool {
        match self {
            Role::Otlp => {
                method == Method::POST && matches!(path, "/v1/traces" | "/v1/metrics" | "/v1/logs")
            }
            Role::Health => method == Method::GET && path == "/health",
        }
    }

    /// What the port serves, in words (for a 404 there).
    fn describe(self) -> &'static str {
        match self {
            Role::Otlp => "only POST /v1/traces, /v1/metrics and /v1/logs",
            Role::Health => "only GET /health",
        }
    }
}

/// An extra listener, bound or not.
#[derive(Debug)]
pub enum Extra {
    /// Set to `off`.
    Off,
    /// Listening.
    Bound(TcpListener),
    /// Set to the API's own address, whose port serves these routes already.
    SameAsApi(SocketAddr),
    /// Could not be bound.
    Failed {
        /// The address asked for.
        addr: SocketAddr,
        /// Why (the port is taken, the address is not the machine's...).
        error: String,
    },
}

impl Extra {
    /// The listener, when it is bound.
    pub fn into_listener(self) -> Option<TcpListener> {
        match self {
            Extra::Bound(listener) => Some(listener),
            _ => None,
        }
    }
}

/// Every listener, as bound at start.
#[derive(Debug)]
pub struct Listeners {
    /// The API: every route.
    pub api: TcpListener,
    /// The OTLP endpoints alone.
    pub otlp: Extra,
    /// `/health` alone.
    pub health: Extra,
}

impl Listeners {
    /// Binds the API's listener (an error stops the daemon) and the extra
    /// ones (an error is logged as a warning and reported in `/v1/status`).
    pub fn bind(config: &Config, log: &Logger) -> io::Result<Listeners> {
        let api = TcpListener::bind(config.listen_addr)?;
        let api_addr = api.local_addr()?;
        let extra = |role: Role, addr: Option<SocketAddr>| match addr {
            None => Extra::Off,
            Some(addr) if addr == api_addr => {
                info!(log, "extra listener is the API's own address, which serves its routes already";
                    "variable" => role.variable(), "addr" => addr.to_string());
                Extra::SameAsApi(addr)
            }
            Some(addr) => match TcpListener::bind(addr) {
                Ok(listener) => Extra::Bound(listener),
                Err(e) => {
                    warn!(log, "cannot listen; the API's port serves the same routes";
                        "variable" => role.variable(), "addr" => addr.to_string(),
                        "error" => e.to_string());
                    Extra::Failed {
                        addr,
                        error: e.to_string(),
                    }
                }
            },
        };
        let otlp = extra(Role::Otlp, config.otlp_listen_addr);
        let health = extra(Role::Health, config.health_listen_addr);
        Ok(Listeners { api, otlp, health })
    }

    /// What `/v1/status` says of them, and what [`keep_to_role`] keys on.
    pub fn report(&self) -> io::Result<ListenerReport> {
        let state = |extra: &Extra| -> io::Result<ExtraState> {
            Ok(match extra {
                Extra::Off => ExtraState::Off,
                Extra::Bound(l) => ExtraState::Listening {
                    addr: l.local_addr()?,
                },
                Extra::SameAsApi(addr) => ExtraState::SameAsApi { addr: *addr },
                Extra::Failed { addr, error } => ExtraState::Failed {
                    addr: *addr,
                    error: error.clone(),
                },
            })
        };
        Ok(ListenerReport {
            api: self.api.local_addr()?,
            otlp: state(&self.otlp)?,
            health: state(&self.health)?,
        })
    }
}

/// An extra listener's state, as `/v1/status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ExtraState {
    /// Set to `off`.
    Off,
    /// Listening at `addr` (the port found when 0 was asked for).
    Listening {
        /// The bound address.
        addr: SocketAddr,
    },
    /// Set to the API's address, which serves the routes already.
    SameAsApi {
        /// The address.
        addr: SocketAddr,
    },
    /// Could not be bound.
    Failed {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        error: String,
    },
}

/// The `listeners` section of `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerReport {
    /// The API's bound address.
    pub api: SocketAddr,
    /// `TRACE_OTLP_LISTEN_ADDR`.
    pub otlp: ExtraState,
    /// `TRACE_HEALTH_LISTEN_ADDR`.
    pub health: ExtraState,
}

impl ListenerReport {
    /// The role of the port a connection came in on; `None`: the API's.
    fn role_of(&self, local: SocketAddr) -> Option<Role> {
        [(Role::Otlp, &self.otlp), (Role::Health, &self.health)]
            .into_iter()
            .find_map(|(role, state)| match state {
                ExtraState::Listening { addr } if *addr == local => Some(role),
                _ => None,
            })
    }

    /// The warnings for `/v1/status`: one per extra listener that failed.
    pub fn warnings(&self) -> Vec<String> {
        [(Role::Otlp, &self.otlp), (Role::Health, &self.health)]
            .into_iter()
            .filter_map(|(role, state)| match state {
                ExtraState::Failed { addr, error } => Some(format!(
                    "{}={addr} could not be bound ({error}); its routes are served on the API's port {} only",
                    role.variable(),
                    self.api
                )),
                _ => None,
            })
            .collect()
    }
}

/// Middleware: on an extra port, only that port's routes; anything else is
/// 404 before any handler runs (so the API and the dashboard are never served
/// there).
pub async fn keep_to_role(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let local = req.app_config().local_addr();
    let role = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.listeners.role_of(local));
    match role {
        Some(role) if !role.serves(req.method(), req.path()) => {
            let answer = HttpResponse::NotFound().json(json!({
                "error": "not_found",
                "message": format!(
                    "this port ({}) serves {}; the rest of the API is on TRACE_LISTEN_ADDR",
                    role.variable(),
                    role.describe()
                ),
            }));
            Ok(req.into_response(answer).map_into_right_body())
        }
        _ => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_extra_port_serves_its_own_routes_only() {
        for path in ["/v1/traces", "/v1/metrics", "/v1/logs"] {
            assert!(Role::Otlp.serves(&Method::POST, path), "{path}");
            assert!(!Role::Otlp.serves(&Method::GET, path), "{path}");
            assert!(!Role::Health.serves(&Method::POST, path), "{path}");
        }
        for path in ["/v1/errors", "/v1/events", "/", "/v1/status", "/health"] {
            assert!(!Role::Otlp.serves(&Method::POST, path), "{path}");
            assert!(!Role::Otlp.serves(&Method::GET, path), "{path}");
        }
        assert!(Role::Health.serves(&Method::GET, "/health"));
        assert!(!Role::Health.serves(&Method::GET, "/v1/status"));
    }

    #[test]
    fn a_failed_listener_is_a_warning_naming_its_variable() {
        let report = ListenerReport {
            api: "127.0.0.1:9090".parse().expect("addr"),
            otlp: ExtraState::Failed {
                addr: "127.0.0.1:4318".parse().expect("addr"),
                error: "Address already in use (os error 98)".into(),
            },
            health: ExtraState::Off,
        };
        let warnings = report.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("TRACE_OTLP_LISTEN_ADDR=127.0.0.1:4318 could not be bound"),
            "{warnings:?}"
        );
        assert_eq!(report.role_of(report.api), None);
    }
}
