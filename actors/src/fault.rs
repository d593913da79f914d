//! Faults a test can inject into a running daemon to prove supervision and
//! backpressure. Compiled in only with the `fault-injection` feature, which
//! the daemon enables as a dev-dependency: `cargo test` builds have it, a
//! `cargo build --release` binary does not.

use std::time::Duration;

/// Whether this build can inject faults at all.
pub const ENABLED: bool = cfg!(feature = "fault-injection");

/// What the armed actor does the next time it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Panic inside the handler.
    Panic,
    /// Block the actor's thread this long (makes the store fall behind).
    Stall(Duration),
}

impl FaultKind {
    /// Carries the fault out.
    pub fn strike(self) {
        match self {
            FaultKind::Panic => panic!("fault injected by a test"),
            FaultKind::Stall(d) => std::thread::sleep(d),
        }
    }
}

/// Arm a fault in the receiving actor.
#[cfg(feature = "fault-injection")]
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct InjectFault(pub FaultKind);
