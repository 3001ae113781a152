//! Real-time: volume and mute with a short linear ramp, so changes never click.
//!
//! The control plane writes target gains (per channel, linear) and the mute flag into
//! [`GainControl`] atomics; the [`GainStage`] on the endpoint thread reads them once per
//! cycle and ramps from where it is to where it should be over [`RAMP_SECONDS`]. At unity
//! with nothing to ramp it does no arithmetic at all, so the bit-exact path stays exact.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::MAX_CHANNELS;

/// How long a volume or mute change takes to reach its target.
pub const RAMP_SECONDS: f32 = 0.005;
/// The lowest volume that is not treated as silence.
pub const MIN_DB: f32 = -120.0;
/// The highest volume a stream may be boosted to.
pub const MAX_DB: f32 = 24.0;

/// Decibels to a linear factor; at or below [`MIN_DB`] is silence.
pub fn db_to_linear(db: f32) -> f32 {
    if db <= MIN_DB || db.is_nan() {
        0.0
    } else {
        10f32.powf(db.min(MAX_DB) / 20.0)
    }
}

/// A linear factor to decibels; silence is [`MIN_DB`].
pub fn linear_to_db(linear: f32) -> f32 {
    if linear <= 0.0 || linear.is_nan() {
        MIN_DB
    } else {
        (20.0 * linear.log10()).clamp(MIN_DB, MAX_DB)
    }
}

/// The control-plane side: target gains and mute, shared with the stage.
#[derive(Debug)]
pub struct GainControl {
    /// Per-channel volume in dB as `f32` bits (guest channel order).
    volume_db: [AtomicU32; MAX_CHANNELS],
    muted: AtomicBool,
}

impl Default for GainControl {
    fn default() -> Self {
        GainControl {
            volume_db: std::array::from_fn(|_| AtomicU32::new(0f32.to_bits())),
            muted: AtomicBool::new(false),
        }
    }
}

impl GainControl {
    /// Sets every channel to `db`.
    pub fn set_volume_db(&self, db: f32) {
        for channel in &self.volume_db {
            channel.store(db.clamp(MIN_DB, MAX_DB).to_bits(), Ordering::Relaxed);
        }
    }

    /// Sets one channel; out-of-range channels are ignored (the caller validated them).
    pub fn set_channel_volume_db(&self, channel: usize, db: f32) {
        if let Some(slot) = self.volume_db.get(channel) {
            slot.store(db.clamp(MIN_DB, MAX_DB).to_bits(), Ordering::Relaxed);
        }
    }

    /// One channel's volume in dB.
    pub fn channel_volume_db(&self, channel: usize) -> f32 {
        self.volume_db
            .get(channel)
            .map_or(0.0, |slot| f32::from_bits(slot.load(Ordering::Relaxed)))
    }

    /// Mutes or unmutes.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// Whether muted.
    pub fn muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }
}

/// The endpoint-thread side: applies the gains with ramps.
#[derive(Debug)]
pub struct GainStage {
    /// The gain applied to the last sample, per channel.
    current: [f32; MAX_CHANNELS],
    /// The target the running ramp heads for.
    goal: [f32; MAX_CHANNELS],
    /// Per-sample increment of the running ramp.
    step: [f32; MAX_CHANNELS],
    /// Samples left in the running ramp (0: settled at `goal`).
    remaining: [usize; MAX_CHANNELS],
    ramp_frames: usize,
}

impl GainStage {
    /// A stage at unity for a stream running at `rate`.
    pub fn new(rate: u32) -> GainStage {
        GainStage {
            current: [1.0; MAX_CHANNELS],
            goal: [1.0; MAX_CHANNELS],
            step: [0.0; MAX_CHANNELS],
            remaining: [0; MAX_CHANNELS],
            ramp_frames: ((rate as f32 * RAMP_SECONDS) as usize).max(1),
        }
    }

    /// Jumps to the targets without a ramp (a stream starting from silence).
    pub fn settle(&mut self, control: &GainControl) {
        for channel in 0..MAX_CHANNELS {
            let goal = target(control, channel);
            self.current[channel] = goal;
            self.goal[channel] = goal;
            self.remaining[channel] = 0;
        }
    }

    /// Real-time: whether [`process`](Self::process) would leave both the samples and
    /// this stage as they are: every channel settled at unity, with no new target.
    pub fn is_idle(&self, control: &GainControl, channels: usize) -> bool {
        (0..channels.clamp(1, MAX_CHANNELS)).all(|channel| {
            self.goal[channel] == 1.0
                && self.remaining[channel] == 0
                && target(control, channel) == 1.0
        })
    }

    /// Real-time: applies the gains to interleaved `samples` of `channels` channels.
    pub fn process(&mut self, control: &GainControl, samples: &mut [f32], channels: usize) {
        let channels = channels.clamp(1, MAX_CHANNELS);
        for channel in 0..channels {
            let goal = target(control, channel);
            if goal != self.goal[channel] {
                // A new target: ramp from wherever we are, over the full ramp time.
                self.goal[channel] = goal;
                self.remaining[channel] = self.ramp_frames;
                self.step[channel] = (goal - self.current[channel]) / self.ramp_frames as f32;
            }
            let lane = samples.iter_mut().skip(channel).step_by(channels);
            if self.remaining[channel] == 0 {
                if goal != 1.0 {
                    lane.for_each(|sample| *sample *= goal);
                }
                continue;
            }
            let (mut gain, step, mut remaining) = (
                self.current[channel],
                self.step[channel],
                self.remaining[channel],
            );
            for sample in lane {
                if remaining > 0 {
                    remaining -= 1;
                    // Land exactly on the goal, whatever the rounding of the steps.
                    gain = if remaining == 0 { goal } else { gain + step };
                }
                *sample *= gain;
            }
            self.current[channel] = gain;
            self.remaining[channel] = remaining;
        }
    }
}

pub(crate) fn target(control: &GainControl, channel: usize) -> f32 {
    if control.muted() {
        0.0
    } else {
        let db = control.channel_volume_db(channel);
        if db == 0.0 { 1.0 } else { db_to_linear(db) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unity_is_bit_exact() {
        let control = GainControl::default();
        let mut stage = GainStage::new(48_000);
        let original: Vec<f32> = (0..960).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut samples = original.clone();
        stage.process(&control, &mut samples, 2);
        assert_eq!(samples, original);
    }

    #[test]
    fn minus_six_db_halves_the_amplitude_after_the_ramp() {
        let control = GainControl::default();
        control.set_volume_db(-6.0206);
        let mut stage = GainStage::new(48_000);
        let mut samples = vec![1.0f32; 2 * 960];
        stage.process(&control, &mut samples, 2);
        // Ramp of 240 frames, then steady.
        assert!(samples[0] > 0.99);
        for &sample in &samples[2 * 240..] {
            assert!((sample - 0.5).abs() < 1e-4, "{sample}");
        }
        // The ramp is monotonic: no click.
        for pair in samples[..480]
            .chunks_exact(2)
            .collect::<Vec<_>>()
            .windows(2)
        {
            assert!(pair[1][0] <= pair[0][0]);
        }
    }

    #[test]
    fn mute_ramps_to_silence_and_back() {
        let control = GainControl::default();
        let mut stage = GainStage::new(48_000);
        control.set_muted(true);
        let mut samples = vec![0.8f32; 480];
        stage.process(&control, &mut samples, 1);
        assert_eq!(samples[479], 0.0);
        control.set_muted(false);
        let mut samples = vec![0.8f32; 480];
        stage.process(&control, &mut samples, 1);
        assert_eq!(samples[479], 0.8);
    }

    #[test]
    fn a_ramp_longer_than_a_cycle_continues_next_cycle() {
        let control = GainControl::default();
        control.set_muted(true);
        let mut stage = GainStage::new(48_000);
        let mut first = vec![1.0f32; 100];
        stage.process(&control, &mut first, 1);
        let mut second = vec![1.0f32; 200];
        stage.process(&control, &mut second, 1);
        assert!(first[99] > second[0] && second[0] > 0.0);
        assert_eq!(second[199], 0.0);
    }

    #[test]
    fn db_conversions() {
        assert_eq!(db_to_linear(0.0), 1.0);
        assert_eq!(db_to_linear(-200.0), 0.0);
        assert!((db_to_linear(-6.0) - 0.501_187).abs() < 1e-5);
        assert_eq!(linear_to_db(0.0), MIN_DB);
        assert!((linear_to_db(0.5) + 6.0206).abs() < 1e-3);
    }
}
