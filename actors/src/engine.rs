//! Starting the actors, each under a supervisor, and stopping them in order.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Instant;

use actix::prelude::*;
use slog::{o, Logger};

use crate::checkpoint::{CheckpointRequest, Checkpointer, Quiesce};
use crate::fault::FaultKind;
use crate::follow::{FollowActor, FollowSettings, FollowView, Sink};
use crate::gateway_log::GatewayLog;
use crate::ingest::{IngestActor, IngestBatch, IngestSettings};
use crate::metrics::{LatestSample, MetricsActor, MetricsSettings};
use crate::push::{PushActor, PushNow, PushSettings, PushView};
use crate::rollup::{self, Pricing};
use crate::rotate::{RotationActor, RotationSettings, RotationTrigger, StoreOps};
use crate::schema::{self, ReadPool, SchemaError};
use crate::stats::{ActorName, Stats};
use crate::store::{AppendAndAnswer, Close, StoreActor, StoreError, Watch};
use crate::transcript::Transcripts;

/// What the engine needs to start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The SQLite file (created if missing).
    pub db_path: PathBuf,
    /// Settings of the ingest stage.
    pub ingest: IngestSettings,
    /// Settings of the host sampler.
    pub metrics: MetricsSettings,
    /// Settings of the pusher; `None` when no endpoint is set.
    pub push: Option<PushSettings>,
    /// The disk bound.
    pub rotation: RotationSettings,
    /// Prices for LLM calls that come without a cost.
    pub pricing: Pricing,
    /// What of OpenClaw's own files to follow (transcripts, gateway log).
    pub follow: FollowSettings,
}

/// Starts an IngestActor on each thread that asks, once: the HTTP workers
/// do as they start, so a request reaches its IngestActor without leaving
/// the worker's thread and the store answers that thread directly. With the
/// IngestActor on the main thread, each request crossed threads four times
/// instead of two: with one HTTP worker both ways, 1-record ingest ran at
/// 22.6k req/s there and at 27.3k on the worker's thread (`wrk -t1 -c16`,
/// medians of three alternated runs).
pub struct IngestStarter {
    settings: IngestSettings,
    store: Recipient<AppendAndAnswer>,
    stats: Arc<Stats>,
    log: Logger,
    /// The actors started so far, by thread.
    started: Mutex<Vec<Started>>,
}

/// An IngestActor and the thread it runs on.
type Started = (ThreadId, Addr<IngestActor>);

impl IngestStarter {
    /// The IngestActor of this thread, started (supervised, on this thread's
    /// arbiter) on the first call. Call it from inside an actix system.
    pub fn start_here(&self) -> Recipient<IngestBatch> {
        let here = std::thread::current().id();
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        started.retain(|(_, addr)| addr.connected());
        if let Some((_, addr)) = started.iter().find(|(thread, _)| *thread == here) {
            return addr.clone().recipient();
        }
        let (settings, store) = (self.settings.clone(), self.store.clone());
        let (stats, log) = (Arc::clone(&self.stats), self.log.clone());
        let addr = Supervisor::start(move |_| IngestActor::new(settings, store, stats, log));
        started.push((here, addr.clone()));
        addr.recipient()
    }

    /// The IngestActor of the calling thread, else the first still running.
    #[cfg(feature = "fault-injection")]
    fn nearest(&self) -> Option<Addr<IngestActor>> {
        let here = std::thread::current().id();
        let started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let running = || started.iter().filter(|(_, addr)| addr.connected());
        running()
            .find(|(thread, _)| *thread == here)
            .or_else(|| running().next())
            .map(|(_, addr)| addr.clone())
    }
}

/// The running actors and what readers share.
pub struct Engine {
    /// Starts the IngestActor of each HTTP worker thread.
    pub ingest: IngestStarter,
    /// The single writer (for health pings and shutdown).
    pub store: Addr<StoreActor>,
    /// The host sampler.
    pub metrics: Addr<MetricsActor>,
    /// The disk bound.
    pub rotation: Addr<RotationActor>,
    /// Its settings, for status.
    pub rotation_settings: Arc<RotationSettings>,
    /// The latest host sample, for `/metrics` and `/v1/status`.
    pub host: LatestSample,
    /// The pusher and its status, when pushing is configured.
    pub push: Option<(Addr<PushActor>, PushView)>,
    /// Read-only connections for status and queries.
    pub pool: ReadPool,
    /// Shared counters.
    pub stats: Arc<Stats>,
    /// The SQLite file.
    pub db_path: PathBuf,
    /// The OpenClaw followers' state, for `/v1/status`.
    pub follow: FollowView,
    /// The transcript follower, when transcripts are read.
    pub transcript: Option<Addr<FollowActor<Transcripts>>>,
    /// The gateway log follower, when the log is read.
    pub gateway_log: Option<Addr<FollowActor<GatewayLog>>>,
    /// The followers' own thread (their reads block), when either runs.
    follow_arbiter: Option<Arbiter>,
    /// The store's own thread, so its blocking calls never stall HTTP.
    store_arbiter: Arbiter,
    /// Copies the WAL into the file beside the store (on the sampler's thread).
    checkpointer: Addr<Checkpointer>,
    /// The sampler's own thread, for the same reason; rotation and WAL
    /// checkpoints run there too.
    metrics_arbiter: Arbiter,
    /// The pusher's own thread, when pushing is configured.
    push_arbiter: Option<Arbiter>,
}

impl Engine {
    /// Opens and migrates the database, then starts the actors. Must run
    /// inside an actix system.
    pub fn start(config: EngineConfig, log: &Logger) -> Result<Engine, SchemaError> {
        let (mut conn, repricing) = open_database(&config, log)?;
        // Counted once here; the store keeps the counts from now on.
        let counts = crate::query::count_rows(&mut conn).map_err(query_error)?;
        let dead_letters = crate::query::count_dead_letters(&conn).map_err(query_error)?;
        let pool = schema::read_pool(&config.db_path)?;
        let stats = Arc::new(Stats::default());
        stats.rows.set(&counts, dead_letters);

        let rotation_settings = Arc::new(config.rotation);
        let trigger = RotationTrigger::default();
        let store_arbiter = Arbiter::new();
        let metrics_arbiter = Arbiter::new();
        // The checkpointer shares the sampler's thread: it is idle unless
        // the store writes, and then it copies the WAL beside the writer.
        let checkpoints = {
            let waiting = Arc::new(AtomicBool::new(false));
            let (path, flag) = (config.db_path.clone(), Arc::clone(&waiting));
            let log = log.new(o!("actor" => "checkpoint"));
            let addr = Supervisor::start_in_arbiter(&metrics_arbiter.handle(), move |_| {
                Checkpointer::new(path, flag, log)
            });
            (
                CheckpointRequest::new(waiting, addr.clone().recipient()),
                addr,
            )
        };
        let (checkpoints, checkpointer) = checkpoints;
        let store = {
            let (path, stats) = (config.db_path.clone(), Arc::clone(&stats));
            let pricing = config.pricing.clone();
            let log = log.new(o!("actor" => ActorName::Store.as_str()));
            let watch = Watch::new(Arc::clone(&rotation_settings), trigger.clone());
            Supervisor::start_in_arbiter(&store_arbiter.handle(), move |_| {
                StoreActor::new(path, conn, stats, log, Some(watch), pricing.clone())
                    .repricing(repricing)
                    .checkpoints(checkpoints)
            })
        };
        let ingest = IngestStarter {
            settings: config.ingest,
            store: store.clone().recipient(),
            stats: Arc::clone(&stats),
            log: log.new(o!("actor" => ActorName::Ingest.as_str())),
            started: Mutex::default(),
        };
        let host = LatestSample::default();
        let metrics = {
            let (store, stats, host) =
                (store.clone().recipient(), Arc::clone(&stats), host.clone());
            let log = log.new(o!("actor" => ActorName::Metrics.as_str()));
            let settings = config.metrics;
            Supervisor::start_in_arbiter(&metrics_arbiter.handle(), move |_| {
                MetricsActor::new(settings, store, host, stats, log)
            })
        };
        let rotation = {
            let ops = StoreOps {
                older_than: store.clone().recipient(),
                oldest: store.clone().recipient(),
                space: store.clone().recipient(),
                reclaim: store.clone().recipient(),
            };
            let settings = (*rotation_settings).clone();
            let stats = Arc::clone(&stats);
            let log = log.new(o!("actor" => ActorName::Rotation.as_str()));
            Supervisor::start_in_arbiter(&metrics_arbiter.handle(), move |_| {
                RotationActor::new(settings, ops, trigger, stats, log)
            })
        };
        let push_arbiter = config.push.as_ref().map(|_| Arbiter::new());
        let push = config
            .push
            .zip(push_arbiter.as_ref())
            .map(|(settings, arbiter)| {
                let view = PushView::default();
                let (pool, view2) = (pool.clone(), view.clone());
                let (mark, dead) = (store.clone().recipient(), store.clone().recipient());
                let log = log.new(o!("actor" => ActorName::Push.as_str()));
                let stats = Arc::clone(&stats);
                let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                    PushActor::new(settings, pool, mark, dead, view2, stats, log)
                });
                (addr, view)
            });
        let follow = FollowView::default();
        let sink = Sink {
            store: store.clone().recipient(),
            stats: Arc::clone(&stats),
            pool: pool.clone(),
            view: follow.clone(),
        };
        let Followers {
            transcript,
            gateway_log,
            arbiter: follow_arbiter,
        } = start_followers(config.follow, sink, log);
        Ok(Engine {
            follow,
            transcript,
            gateway_log,
            follow_arbiter,
            ingest,
            store,
            metrics,
            rotation,
            rotation_settings,
            host,
            push,
            pool,
            stats,
            db_path: config.db_path,
            store_arbiter,
            checkpointer,
            metrics_arbiter,
            push_arbiter,
        })
    }

    /// Pushes what it can until `push_deadline`, then commits what is
    /// pending, checkpoints and closes the database, and stops the actors'
    /// threads. Appends after this are refused.
    pub async fn shutdown(&self, push_deadline: std::time::Instant) -> Result<(), StoreError> {
        // The followers stop reading; a chunk already with the store is
        // committed (with its position) before the store closes.
        if let Some(arbiter) = &self.follow_arbiter {
            arbiter.stop();
        }
        // No checkpoint of its own may run when the store's last one does.
        let _ = self.checkpointer.send(Quiesce).await;
        self.metrics_arbiter.stop();
        if let Some((push, _)) = &self.push {
            let wait = push_deadline.saturating_duration_since(std::time::Instant::now());
            let _ = push
                .send(PushNow {
                    deadline: Some(push_deadline),
                })
                .timeout(wait + std::time::Duration::from_millis(100))
                .await;
        }
        if let Some(arbiter) = &self.push_arbiter {
            arbiter.stop();
        }
        let closed = match self.store.send(Close).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable("the store actor is gone".into())),
        };
        self.store_arbiter.stop();
        closed
    }

    /// Arms `kind` in `actor` (test builds only).
    pub async fn inject_fault(&self, actor: ActorName, kind: FaultKind) -> Result<(), FaultError> {
        #[cfg(feature = "fault-injection")]
        {
            use crate::fault::InjectFault;
            let sent = match actor {
                // It runs on an HTTP worker: holding it would hold that
                // worker, and with it the request that would release it.
                ActorName::Ingest if kind != FaultKind::Panic => {
                    return Err(FaultError::BlocksHttp)
                }
                ActorName::Ingest => match self.ingest.nearest() {
                    Some(addr) => addr.send(InjectFault(kind)).await,
                    None => return Err(FaultError::ActorGone),
                },
                ActorName::Store => self.store.send(InjectFault(kind)).await,
                ActorName::Metrics => self.metrics.send(InjectFault(kind)).await,
                ActorName::Rotation => self.rotation.send(InjectFault(kind)).await,
                ActorName::Push => match &self.push {
                    Some((push, _)) => push.send(InjectFault(kind)).await,
                    None => return Err(FaultError::NotSupported),
                },
                ActorName::Transcript => match &self.transcript {
                    Some(addr) => addr.send(InjectFault(kind)).await,
                    None => return Err(FaultError::NotSupported),
                },
                ActorName::GatewayLog => match &self.gateway_log {
                    Some(addr) => addr.send(InjectFault(kind)).await,
                    None => return Err(FaultError::NotSupported),
                },
            };
            sent.map_err(|_| FaultError::ActorGone)
        }
        #[cfg(not(feature = "fault-injection"))]
        {
            let _ = (actor, kind);
            Err(FaultError::Disabled)
        }
    }
}

/// The writer's connection, opened and migrated, and the repricing due if
/// the price table changed since the rows were priced.
fn open_database(
    config: &EngineConfig,
    log: &Logger,
) -> Result<(rusqlite::Connection, Option<rollup::Repricing>), SchemaError> {
    let mut migrated = None;
    let conn = schema::open_writer_telling(&config.db_path, |from| {
        slog::info!(log, "migrating the database to the current schema (once; seconds on a file of millions of rows)";
            "from_version" => from, "to_version" => schema::SCHEMA_VERSION);
        migrated = Some(Instant::now());
    })?;
    if let Some(started) = migrated {
        slog::info!(log, "database migrated"; "took_ms" => started.elapsed().as_millis() as u64);
    }
    // Rows priced by other prices (or by none: an upgraded file) are
    // priced again by the store, a step at a time between writes.
    let repricing = rollup::repricing_due(&conn, &config.pricing.fingerprint)?;
    if let Some(job) = &repricing {
        slog::info!(log, "the price table changed; pricing stored LLM calls again in the background";
            "rows_up_to_id" => job.upto_id, "fingerprint" => &config.pricing.fingerprint);
    }
    Ok((conn, repricing))
}

/// The OpenClaw followers that run, and their thread.
struct Followers {
    transcript: Option<Addr<FollowActor<Transcripts>>>,
    gateway_log: Option<Addr<FollowActor<GatewayLog>>>,
    /// The followers' own thread (their reads block), when either runs.
    arbiter: Option<Arbiter>,
}

/// Starts the transcript and gateway log followers that `settings` asks
/// for, on one thread of their own, handing what they read to `sink`.
fn start_followers(settings: FollowSettings, sink: Sink, log: &Logger) -> Followers {
    let settings = Arc::new(settings);
    let follow_arbiter =
        (settings.state_dir.is_some() || !settings.log_patterns.is_empty()).then(Arbiter::new);
    let transcript =
        settings
            .state_dir
            .clone()
            .zip(follow_arbiter.as_ref())
            .map(|(dir, arbiter)| {
                let (settings, sink) = (Arc::clone(&settings), sink.clone());
                let log = log.new(o!("actor" => ActorName::Transcript.as_str()));
                Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                    let follower = Transcripts::new(dir.clone());
                    FollowActor::new(follower, Arc::clone(&settings), sink.clone(), log.clone())
                })
            });
    let gateway_log = follow_arbiter
        .as_ref()
        .filter(|_| !settings.log_patterns.is_empty())
        .map(|arbiter| {
            let (settings, sink) = (Arc::clone(&settings), sink.clone());
            let log = log.new(o!("actor" => ActorName::GatewayLog.as_str()));
            Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                let follower = GatewayLog::new(settings.log_patterns.clone());
                FollowActor::new(follower, Arc::clone(&settings), sink.clone(), log.clone())
            })
        });
    Followers {
        transcript,
        gateway_log,
        arbiter: follow_arbiter,
    }
}

/// A fault could not be armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// This build has no fault injection (it is not a test build).
    #[error("fault injection is not compiled into this build")]
    Disabled,
    /// The actor's mailbox is closed.
    #[error("the actor is not running")]
    ActorGone,
    /// The actor is not running in this configuration (push without an endpoint).
    #[error("this actor is not running in this configuration")]
    NotSupported,
    /// A hold or stall of the IngestActor would block the HTTP worker it runs
    /// on; only a panic can be armed there.
    #[error("the ingest actor runs on an HTTP worker: only a panic can be armed in it")]
    BlocksHttp,
}

/// A count at start that failed, as the error opening the database.
fn query_error(e: crate::query::QueryError) -> SchemaError {
    match e {
        crate::query::QueryError::Sqlite(e) => SchemaError::Sqlite(e),
        crate::query::QueryError::Pool(e) => SchemaError::Pool(e),
        crate::query::QueryError::Encode(m) => {
            SchemaError::Io(m, std::io::Error::other("counting rows"))
        }
        e @ crate::query::QueryError::Column { .. } => {
            SchemaError::Io(e.to_string(), std::io::Error::other("counting rows"))
        }
    }
}
