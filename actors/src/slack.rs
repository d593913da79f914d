//! Timer slack (`PR_SET_TIMERSLACK`): how late the kernel may fire a
//! thread's timers, so that wake-ups that fall close together are served by
//! one. The default is 50 µs. Threads whose idle timers need no precision
//! (the HTTP worker between connections, the followers between polls) take a
//! larger one, and go back to the default around work whose short waits
//! must stay short (SQLite's busy sleeps, a drain's deadline).
//!
//! A thread created by a thread with a slack inherits it as its own
//! default, so a thread spawns others (tokio's blocking pool) only with the
//! default in place.

use std::num::NonZeroU64;
use std::time::Duration;

/// Sets the calling thread's slack; zero is the default. A kernel that
/// refuses only costs the saving.
pub fn set(slack: Duration) {
    let nanos = u64::try_from(slack.as_nanos())
        .ok()
        .and_then(NonZeroU64::new);
    let _ = rustix::thread::set_current_timer_slack(nanos);
}

/// The default slack on the calling thread until dropped, then `idle`.
#[must_use = "the default slack lasts only while this is held"]
pub struct Precise {
    idle: Duration,
}

impl Precise {
    /// Puts the default slack in place; dropping puts `idle` back.
    pub fn until_drop(idle: Duration) -> Self {
        set(Duration::ZERO);
        Precise { idle }
    }
}

impl Drop for Precise {
    fn drop(&mut self) {
        set(self.idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> u64 {
        // Only `/proc/TID` has it, not `/proc/thread-self` or `task/TID`.
        let tid = rustix::thread::gettid().as_raw_nonzero();
        std::fs::read_to_string(format!("/proc/{tid}/timerslack_ns"))
            .expect("read timerslack_ns")
            .trim()
            .parse()
            .expect("a number")
    }

    #[test]
    fn precise_holds_the_default_and_then_puts_the_idle_slack_back() {
        std::thread::spawn(|| {
            let default = own();
            set(Duration::from_millis(300));
            assert_eq!(own(), 300_000_000);
            {
                let _precise = Precise::until_drop(Duration::from_millis(300));
                assert_eq!(own(), default);
            }
            assert_eq!(own(), 300_000_000);
            set(Duration::ZERO);
            assert_eq!(own(), default);
        })
        .join()
        .expect("the test thread");
    }
}
