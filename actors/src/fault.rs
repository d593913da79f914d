//! Faults a test can inject into a running daemon to prove supervision and
//! backpressure. Compiled in only with the `fault-injection` feature, which
//! the daemon enables as a dev-dependency: `cargo test` builds have it, a
//! `cargo build --release` binary does not.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Whether this build can inject faults at all.
pub const ENABLED: bool = cfg!(feature = "fault-injection");

/// What the armed actor does the next time it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Panic inside the handler.
    Panic,
    /// Block the actor's thread this long (makes the store fall behind).
    Stall(Duration),
    /// Block the actor's thread until [`release`] is called (or, as a hang
    /// guard, [`HOLD_AT_MOST`] has passed): a stall whose end the test
    /// chooses, so it never depends on how fast the machine is. Arm it
    /// with [`hold`].
    Hold,
}

/// The longest a [`FaultKind::Hold`] blocks when the test never releases it.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(60);

/// Whether the armed holds were released.
static RELEASED: (Mutex<bool>, Condvar) = (Mutex::new(true), Condvar::new());

/// A [`FaultKind::Hold`], armed: it blocks until the next [`release`].
pub fn hold() -> FaultKind {
    *RELEASED.0.lock().unwrap_or_else(|p| p.into_inner()) = false;
    FaultKind::Hold
}

/// Ends every hold, struck or still armed.
pub fn release() {
    *RELEASED.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
    RELEASED.1.notify_all();
}

impl FaultKind {
    /// Carries the fault out.
    pub fn strike(self) {
        match self {
            FaultKind::Panic => panic!("fault injected by a test"),
            FaultKind::Stall(d) => std::thread::sleep(d),
            FaultKind::Hold => {
                let until = Instant::now() + HOLD_AT_MOST;
                let (lock, released) = &RELEASED;
                let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !*done {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    done = released
                        .wait_timeout(done, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

/// Arm a fault in the receiving actor.
#[cfg(feature = "fault-injection")]
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct InjectFault(pub FaultKind);
