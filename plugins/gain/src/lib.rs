//! `gain`: volume and mute with a linear ramp, the native gain stage's twin.
//!
//! Parameters: `volume` (linear, all channels), `mute`, and `channel0`…`channel17`
//! (linear, per channel; the engine drives these from a stream's volume controls when the
//! plugin stands in for the gain stage). A change ramps over 5 ms from where the gain is;
//! values set before the first `process` apply at once. At unity nothing is computed, so
//! the signal passes bit for bit, and the ramp arithmetic is the native stage's, so both
//! give the same samples.

#![no_std]

use paravox_plugin_sdk::{Buffers, Plugin, Setup, paravox_plugin, simd};

const MAX_CHANNELS: usize = 18;
const RAMP_SECONDS: f32 = 0.005;

struct Gain {
    channels: usize,
    volume: f32,
    mute: bool,
    channel_gain: [f32; MAX_CHANNELS],
    current: [f32; MAX_CHANNELS],
    goal: [f32; MAX_CHANNELS],
    step: [f32; MAX_CHANNELS],
    remaining: [usize; MAX_CHANNELS],
    ramp_frames: usize,
    /// No `process` yet: parameter changes apply without a ramp.
    fresh: bool,
}

impl Gain {
    fn target(&self, channel: usize) -> f32 {
        if self.mute {
            0.0
        } else {
            self.volume * self.channel_gain[channel]
        }
    }

    fn settle(&mut self) {
        for channel in 0..MAX_CHANNELS {
            let goal = self.target(channel);
            self.current[channel] = goal;
            self.goal[channel] = goal;
            self.remaining[channel] = 0;
        }
    }
}

impl Plugin for Gain {
    const MANIFEST: &'static str = concat!(
        r#"{"name":"gain","version":"1.0.0","kind":"effect","#,
        r#""description":"volume and mute with a 5 ms ramp","#,
        r#""input_formats":["float_le"],"output_formats":["float_le"],"#,
        r#""rates":[8000,768000],"input_channels":[1,18],"output_channels":[1,18],"params":["#,
        r#"{"name":"volume","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"mute","min":0,"max":1,"default":0,"unit":"bool"},"#,
        r#"{"name":"channel0","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel1","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel2","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel3","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel4","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel5","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel6","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel7","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel8","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel9","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel10","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel11","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel12","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel13","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel14","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel15","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel16","min":0,"max":16,"default":1,"unit":"linear"},"#,
        r#"{"name":"channel17","min":0,"max":16,"default":1,"unit":"linear"}"#,
        r#"]}"#
    );

    fn new(setup: &Setup) -> Result<Self, i32> {
        let channels = setup.input_channels as usize;
        if !(1..=MAX_CHANNELS).contains(&channels) || setup.output_channels != setup.input_channels
        {
            return Err(-5);
        }
        Ok(Gain {
            channels,
            volume: 1.0,
            mute: false,
            channel_gain: [1.0; MAX_CHANNELS],
            current: [1.0; MAX_CHANNELS],
            goal: [1.0; MAX_CHANNELS],
            step: [0.0; MAX_CHANNELS],
            remaining: [0; MAX_CHANNELS],
            ramp_frames: ((setup.input_rate as f32 * RAMP_SECONDS) as usize).max(1),
            fresh: true,
        })
    }

    fn set_param(&mut self, index: u32, value: f32) -> bool {
        if !(0.0..=16.0).contains(&value) {
            return false;
        }
        match index {
            0 => self.volume = value,
            1 if value == 0.0 || value == 1.0 => self.mute = value == 1.0,
            2..=19 => self.channel_gain[index as usize - 2] = value,
            _ => return false,
        }
        if self.fresh {
            self.settle();
        }
        true
    }

    fn process(&mut self, io: &mut Buffers, input_frames: usize, _: usize) -> i32 {
        self.fresh = false;
        let channels = self.channels;
        let samples = input_frames * channels;
        let (input, output) = io.f32_in_out(0);
        let (input, output) = (&input[..samples], &mut output[..samples]);
        let mut settled = true;
        for channel in 0..channels {
            let goal = self.target(channel);
            if goal != self.goal[channel] {
                self.goal[channel] = goal;
                self.remaining[channel] = self.ramp_frames;
                self.step[channel] = (goal - self.current[channel]) / self.ramp_frames as f32;
            }
            settled &= self.remaining[channel] == 0 && goal == self.goal[0];
        }
        // The common case: every channel settled at one gain.
        if settled {
            let goal = self.goal[0];
            if goal == 1.0 {
                output.copy_from_slice(input);
            } else {
                simd::scale(input, output, goal);
            }
            return input_frames as i32;
        }
        output.copy_from_slice(input);
        for channel in 0..channels {
            let goal = self.goal[channel];
            let lane = output.iter_mut().skip(channel).step_by(channels);
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
                    gain = if remaining == 0 { goal } else { gain + step };
                }
                *sample *= gain;
            }
            self.current[channel] = gain;
            self.remaining[channel] = remaining;
        }
        input_frames as i32
    }
}

paravox_plugin!(Gain);
