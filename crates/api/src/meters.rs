//! The meter sampler: one task reads every stream's and endpoint's level meter 25 times a
//! second and publishes the readings, which the WebSocket clients and the REST views share.
//!
//! Reading a meter resets its peak ("highest since the last read"), so there must be one
//! reader; each reading is then the peak of the last 40 ms, whoever looks at it.
//!
//! Nothing runs when nobody looks: the task samples while a WebSocket client is connected
//! or for [`IDLE_AFTER`] after a REST view read a meter, and otherwise sleeps until one of
//! them comes (a REST view that finds the last frame stale samples once itself).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use paravox_engine::meter::MeterReading;
use paravox_engine::{Engine, StreamId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;

/// How often the meters are read: 25 updates a second.
pub const METER_INTERVAL: Duration = Duration::from_millis(40);
/// How long the sampler keeps going after the last REST read with no WebSocket client.
pub const IDLE_AFTER: Duration = Duration::from_secs(2);
/// How often a sampler with nobody looking checks that its engine still exists.
const ENGINE_CHECK: Duration = Duration::from_secs(60);
/// What silence reads as, in dBFS (JSON has no −∞).
pub const SILENCE_DBFS: f32 = -120.0;

/// A level reading in dBFS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeterLevels {
    /// Highest sample since the previous reading, dBFS (−120 for silence).
    pub peak_dbfs: f32,
    /// RMS of the last endpoint cycle, dBFS (−120 for silence).
    pub rms_dbfs: f32,
}

impl MeterLevels {
    /// Silence.
    pub const SILENT: MeterLevels = MeterLevels {
        peak_dbfs: SILENCE_DBFS,
        rms_dbfs: SILENCE_DBFS,
    };

    /// The dBFS form of a linear reading.
    pub fn from_reading(reading: MeterReading) -> MeterLevels {
        MeterLevels {
            peak_dbfs: dbfs(reading.peak),
            rms_dbfs: dbfs(reading.rms),
        }
    }
}

/// Linear full scale to dBFS, finite whatever the input.
pub fn dbfs(linear: f32) -> f32 {
    if linear.is_nan() || linear <= 0.0 {
        SILENCE_DBFS
    } else {
        (20.0 * linear.log10()).clamp(SILENCE_DBFS, 60.0)
    }
}

/// One round of readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeterFrame {
    /// Per stream.
    pub streams: BTreeMap<StreamId, MeterLevels>,
    /// Per endpoint, by name (the mixed output or the captured input).
    pub endpoints: BTreeMap<String, MeterLevels>,
    /// When it was read (`None`: never).
    pub taken: Option<Instant>,
}

/// Reads every meter once.
pub fn sample(engine: &Engine) -> MeterFrame {
    MeterFrame {
        streams: engine
            .streams()
            .iter()
            .map(|stream| {
                let reading = stream.shared().meter().read();
                (stream.id(), MeterLevels::from_reading(reading))
            })
            .collect(),
        endpoints: engine
            .endpoints()
            .iter()
            .map(|endpoint| {
                let reading = endpoint.stats().meter().read();
                (
                    endpoint.name().to_owned(),
                    MeterLevels::from_reading(reading),
                )
            })
            .collect(),
        taken: Some(Instant::now()),
    }
}

/// Who wants meters now.
#[derive(Debug)]
struct Demand {
    /// WebSocket clients connected.
    watchers: AtomicUsize,
    /// The last REST read, in milliseconds after `epoch`.
    last_read_ms: AtomicU64,
    epoch: Instant,
    /// Wakes the sleeping sampler.
    wake: Notify,
    /// Frames taken so far (by the task or a REST view).
    samples: AtomicU64,
}

impl Demand {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn wanted(&self) -> bool {
        let since = self
            .now_ms()
            .saturating_sub(self.last_read_ms.load(Ordering::Relaxed));
        self.watchers.load(Ordering::Relaxed) > 0
            || (self.last_read_ms.load(Ordering::Relaxed) > 0
                && since < IDLE_AFTER.as_millis() as u64)
    }
}

/// The sampler's handle: the latest frame, and the demand that keeps it sampling.
#[derive(Debug, Clone)]
pub struct Meters {
    receiver: watch::Receiver<Arc<MeterFrame>>,
    sender: Arc<watch::Sender<Arc<MeterFrame>>>,
    demand: Arc<Demand>,
    engine: Weak<Engine>,
}

/// Keeps the sampler going while it lives (one per WebSocket client).
#[derive(Debug)]
pub struct Watching {
    demand: Arc<Demand>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.demand.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Meters {
    /// Frames as they are taken, and a guard that keeps them coming.
    pub fn watch(&self) -> (watch::Receiver<Arc<MeterFrame>>, Watching) {
        self.demand.watchers.fetch_add(1, Ordering::Relaxed);
        self.demand.wake.notify_one();
        (
            self.receiver.clone(),
            Watching {
                demand: self.demand.clone(),
            },
        )
    }

    /// The latest frame for a REST view: sampled now when the last one is stale (the task
    /// was asleep), and the task is woken for the reads that may follow.
    pub fn latest(&self) -> Arc<MeterFrame> {
        // 0 means "never read"; a read in the first millisecond counts as 1.
        self.demand
            .last_read_ms
            .store(self.demand.now_ms().max(1), Ordering::Relaxed);
        self.demand.wake.notify_one();
        let latest = self.receiver.borrow().clone();
        let fresh = latest
            .taken
            .is_some_and(|taken| taken.elapsed() < 2 * METER_INTERVAL);
        if fresh {
            return latest;
        }
        let Some(engine) = self.engine.upgrade() else {
            return latest;
        };
        let frame = Arc::new(sample(&engine));
        self.demand.samples.fetch_add(1, Ordering::Relaxed);
        self.sender.send_replace(frame.clone());
        frame
    }

    /// Frames taken so far.
    pub fn samples(&self) -> u64 {
        self.demand.samples.load(Ordering::Relaxed)
    }
}

/// Starts the sampler on the current tokio runtime. It stops when the engine is gone.
pub fn spawn_sampler(engine: Weak<Engine>) -> Meters {
    let (sender, receiver) = watch::channel(Arc::new(MeterFrame::default()));
    let meters = Meters {
        receiver,
        sender: Arc::new(sender),
        demand: Arc::new(Demand {
            watchers: AtomicUsize::new(0),
            last_read_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            wake: Notify::new(),
            samples: AtomicU64::new(0),
        }),
        engine: engine.clone(),
    };
    let (sender, demand) = (meters.sender.clone(), meters.demand.clone());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(METER_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !demand.wanted() {
                // Nobody looks: sleep until a client comes or a REST view reads (a
                // notify_one before this point is kept as a permit, so none is lost).
                // The timeout only notices an engine that is gone.
                let _ = tokio::time::timeout(ENGINE_CHECK, demand.wake.notified()).await;
                if !demand.wanted() {
                    if engine.strong_count() == 0 {
                        break;
                    }
                    continue;
                }
                ticks.reset_immediately();
            }
            ticks.tick().await;
            let Some(engine) = engine.upgrade() else {
                break;
            };
            // Atomics and short registry locks only: cheap enough for the runtime thread.
            let frame = sample(&engine);
            drop(engine);
            demand.samples.fetch_add(1, Ordering::Relaxed);
            sender.send_replace(Arc::new(frame));
        }
    });
    meters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_sampler_samples_only_while_someone_looks() {
        let engine = Arc::new(Engine::new());
        let meters = spawn_sampler(Arc::downgrade(&engine));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(meters.samples(), 0, "nobody looked, nothing was sampled");

        let (_frames, watching) = meters.watch();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let watched = meters.samples();
        assert!(watched >= 20, "{watched} frames in a second with a client");
        drop(watching);
        tokio::time::sleep(METER_INTERVAL * 2).await;
        let left = meters.samples();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            meters.samples(),
            left,
            "sampling stopped with the last client"
        );

        // A REST read after the pause samples at once, and the task runs for a while
        // in case more reads follow.
        let frame = meters.latest();
        assert!(
            frame
                .taken
                .is_some_and(|taken| taken.elapsed() < METER_INTERVAL)
        );
        tokio::time::sleep(IDLE_AFTER / 2).await;
        assert!(
            meters.samples() > left + 5,
            "the task woke for the reads to come"
        );
        tokio::time::sleep(IDLE_AFTER * 2).await;
        let settled = meters.samples();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(meters.samples(), settled, "and slept again");
        drop(engine);
    }

    #[test]
    fn levels_are_finite_dbfs() {
        assert_eq!(dbfs(0.0), SILENCE_DBFS);
        assert_eq!(dbfs(f32::NAN), SILENCE_DBFS);
        assert_eq!(dbfs(1.0), 0.0);
        assert!((dbfs(0.5) - -6.0206).abs() < 1e-3);
        assert_eq!(dbfs(f32::INFINITY), 60.0);
    }
}
