//! GETs to the running daemon, with `awc` on a one-off actix system: the
//! daemon already links awc (the push client), so the CLI adds no HTTP
//! stack of its own, and gets HTTP/1.1 framing, timeouts and typed
//! connection errors without parsing responses by hand.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};

use super::{CliError, Exit};
use crate::Config;

/// Each request, from connecting to the last byte of the body.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer read: far above what the bounded endpoints send.
const MAX_BODY: usize = 32 << 20;

/// Where the daemon listens and the token it wants.
#[derive(Clone)]
pub struct Target {
    /// `TRACE_LISTEN_ADDR`, with an unspecified IP (`0.0.0.0`, `::`)
    /// replaced by the loopback address of its family.
    pub addr: SocketAddr,
    /// `TRACE_INGEST_TOKEN`, sent as `Authorization: Bearer`.
    token: Option<String>,
}

impl Target {
    /// The daemon this environment's configuration describes.
    pub fn from_config(config: &Config) -> Target {
        let mut addr = config.listen_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        Target {
            addr,
            token: config.ingest_token.clone(),
        }
    }
}

/// One answer of the daemon.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body as sent.
    pub body: Vec<u8>,
}

impl Answer {
    /// The `message` of a JSON refusal, else the body as text.
    pub fn message(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Refusal {
            message: String,
        }
        serde_json::from_slice::<Refusal>(&self.body)
            .map(|r| r.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&self.body).trim().to_string())
    }

    /// A 401 as the user should read it.
    pub fn unauthorized(&self) -> CliError {
        CliError::new(
            Exit::Unauthorized,
            format!(
                "the daemon refused the request (401 Unauthorized: {}); set TRACE_INGEST_TOKEN \
                 to the daemon's token",
                self.message()
            ),
        )
    }
}

/// GETs each `(path, query)` in turn, stopping at the first that cannot be
/// had; any HTTP status is an answer.
pub fn get(
    target: &Target,
    requests: &[(&str, &[(String, String)])],
) -> Result<Vec<Answer>, CliError> {
    let system = actix_rt::System::new();
    system.block_on(async {
        let client = awc::Client::builder()
            .timeout(TIMEOUT)
            .connector(awc::Connector::new().timeout(TIMEOUT))
            .disable_redirects()
            .finish();
        let mut answers = Vec::with_capacity(requests.len());
        for (path, query) in requests {
            answers.push(get_one(&client, target, path, query).await?);
        }
        Ok(answers)
    })
}

async fn get_one(
    client: &awc::Client,
    target: &Target,
    path: &str,
    query: &[(String, String)],
) -> Result<Answer, CliError> {
    let addr = target.addr;
    let mut request = client.get(format!("http://{addr}{path}"));
    if !query.is_empty() {
        request = request
            .query(&query)
            .map_err(|e| CliError::new(Exit::Usage, format!("the query cannot be encoded: {e}")))?;
    }
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    let exchange = async {
        let mut response = request.send().await.map_err(|e| unreachable(addr, e))?;
        let body = response.body().limit(MAX_BODY).await.map_err(|e| {
            CliError::new(
                Exit::Unreachable,
                format!("the daemon at {addr} sent an answer that cannot be read: {e}"),
            )
        })?;
        Ok(Answer {
            status: response.status().as_u16(),
            body: body.to_vec(),
        })
    };
    match actix_rt::time::timeout(TIMEOUT, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(timed_out(addr)),
    }
}

fn timed_out(addr: SocketAddr) -> CliError {
    CliError::new(
        Exit::Unreachable,
        format!(
            "the daemon at {addr} did not answer within {}s",
            TIMEOUT.as_secs()
        ),
    )
}

/// Why the daemon could not be reached, in one line.
fn unreachable(addr: SocketAddr, e: SendRequestError) -> CliError {
    let why = match e {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
            return timed_out(addr)
        }
        SendRequestError::Connect(ConnectError::Io(io))
            if io.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            "connection refused; is the daemon running? (TRACE_LISTEN_ADDR gives its address)"
                .to_string()
        }
        SendRequestError::Connect(e) => e.to_string(),
        other => format!("no HTTP answer: {other}"),
    };
    CliError::new(
        Exit::Unreachable,
        format!("cannot reach the daemon at {addr}: {why}"),
    )
}
