//! Turning a panic inside an actor handler into a counted, logged restart.
//!
//! actix's `Supervisor` restarts an actor whose context stops, but a panic
//! unwinds through the arbiter and the actor is simply gone (actix issue 204),
//! leaving every sender with a closed mailbox. Handlers therefore run their
//! work through [`contain`], which catches the panic, logs and counts it, stops
//! the context so the supervisor restarts the actor, and gives the caller an
//! error to answer with.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use actix::{ActorContext, Context};
use slog::{error, Logger};

use crate::stats::{ActorName, Stats};

/// The work panicked; the actor is restarting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} actor crashed while handling this request and is restarting")]
pub struct Panicked(pub &'static str);

/// Runs `work`; on a panic logs it, counts it for `actor`, stops `ctx` (the
/// supervisor then restarts the actor) and returns [`Panicked`].
pub fn contain<A, R>(
    actor: ActorName,
    stats: &Stats,
    log: &Logger,
    ctx: &mut Context<A>,
    work: impl FnOnce() -> R,
) -> Result<R, Panicked>
where
    A: actix::Actor<Context = Context<A>>,
{
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(value) => Ok(value),
        Err(payload) => {
            stats.panicked(actor);
            error!(log, "actor panicked; restarting it";
                "actor" => actor.as_str(), "panic" => panic_message(payload.as_ref()));
            ctx.stop();
            Err(Panicked(actor.as_str()))
        }
    }
}

/// The text of a panic payload, when it has one.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-text panic payload)"
    }
}
