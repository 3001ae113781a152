//! The meter sampler: one task reads every stream's and endpoint's level meter 25 times a
//! second and publishes the readings, which the WebSocket clients and the REST views share.
//!
//! Reading a meter resets its peak ("highest since the last read"), so there must be one
//! reader; each reading is then the peak of the last 40 ms, whoever looks at it.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use paravox_engine::meter::MeterReading;
use paravox_engine::{Engine, StreamId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;

/// How often the meters are read: 25 updates a second.
pub const METER_INTERVAL: Duration = Duration::from_millis(40);
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
    }
}

/// Starts the sampler on the current tokio runtime. It stops when the engine is gone or
/// every receiver has been dropped.
pub fn spawn_sampler(engine: Weak<Engine>) -> watch::Receiver<Arc<MeterFrame>> {
    let (sender, receiver) = watch::channel(Arc::new(MeterFrame::default()));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(METER_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sender.closed() => break,
                _ = ticks.tick() => {}
            }
            let Some(engine) = engine.upgrade() else {
                break;
            };
            // Atomics and short registry locks only: cheap enough for the runtime thread.
            let frame = sample(&engine);
            drop(engine);
            if sender.send(Arc::new(frame)).is_err() {
                break;
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_finite_dbfs() {
        assert_eq!(dbfs(0.0), SILENCE_DBFS);
        assert_eq!(dbfs(f32::NAN), SILENCE_DBFS);
        assert_eq!(dbfs(1.0), 0.0);
        assert!((dbfs(0.5) - -6.0206).abs() < 1e-3);
        assert_eq!(dbfs(f32::INFINITY), 60.0);
    }
}
