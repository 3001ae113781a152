//! `mix`: N streams into one, with a gain per input and soft clipping.
//!
//! Parameters: `soft_clip` (off by default), `knee` (where clipping starts) and
//! `input0`…`input63` (linear gain of each input). With soft clipping off and every gain
//! at 1 the output is exactly the native mixer's sum, so paravox's default mixing (this
//! plugin as it comes) changes no sample; `mixer = "mix:soft_clip=1"` turns clipping on. Soft clipping leaves everything
//! below the knee alone and bends what is above it smoothly towards full scale:
//! `knee + (1 − knee)·u/(1 + u)` with `u = (|x| − knee)/(1 − knee)`, continuous in value and
//! slope at the knee.

#![no_std]

use paravox_plugin_sdk::{Buffers, MAX_INPUTS, Plugin, Setup, paravox_plugin, simd};

struct Mix {
    channels: usize,
    soft_clip: bool,
    knee: f32,
    gains: [f32; MAX_INPUTS],
}

fn soft_clip(samples: &mut [f32], knee: f32) {
    let room = 1.0 - knee;
    for sample in samples {
        let magnitude = f32::from_bits(sample.to_bits() & 0x7fff_ffff);
        if magnitude > knee {
            let over = (magnitude - knee) / room;
            let bent = knee + room * over / (1.0 + over);
            *sample = f32::from_bits(bent.to_bits() | (sample.to_bits() & 0x8000_0000));
        }
    }
}

impl Plugin for Mix {
    const MANIFEST: &'static str = concat!(
        r#"{"name":"mix","version":"1.0.0","kind":"mixer","#,
        r#""description":"N streams into one: per-input gain, soft clipping","#,
        r#""input_formats":["float_le"],"output_formats":["float_le"],"#,
        r#""rates":[8000,768000],"input_channels":[1,18],"output_channels":[1,18],"#,
        r#""max_inputs":64,"params":["#,
        r#"{"name":"soft_clip","min":0,"max":1,"default":0,"unit":"bool"},"#,
        r#"{"name":"knee","min":0.5,"max":0.99,"default":0.9,"unit":"linear"}"#,
        r#"]}"#
    );

    fn new(setup: &Setup) -> Result<Self, i32> {
        if setup.input_channels != setup.output_channels {
            return Err(-5);
        }
        Ok(Mix {
            channels: setup.output_channels as usize,
            soft_clip: false,
            knee: 0.9,
            gains: [1.0; MAX_INPUTS],
        })
    }

    fn set_param(&mut self, index: u32, value: f32) -> bool {
        match index {
            0 if value == 0.0 || value == 1.0 => self.soft_clip = value == 1.0,
            1 if (0.5..=0.99).contains(&value) => self.knee = value,
            2.. if ((index - 2) as usize) < MAX_INPUTS && (0.0..=16.0).contains(&value) => {
                self.gains[(index - 2) as usize] = value
            }
            _ => return false,
        }
        true
    }

    fn process_mix(&mut self, io: &mut Buffers, inputs: usize, frames: usize) -> i32 {
        let samples = frames * self.channels;
        if self.gains[..inputs].iter().all(|&gain| gain == 1.0) {
            // The common case, and exactly the native sum: four inputs per pass.
            let (sources, output) = io.f32_inputs_out();
            simd::sum(&sources[..inputs], &mut output[..samples]);
        } else {
            io.output_f32()[..samples].fill(0.0);
            for index in 0..inputs {
                let gain = self.gains[index];
                let (input, out) = io.f32_in_out(index);
                if gain != 0.0 {
                    simd::accumulate(&input[..samples], &mut out[..samples], gain);
                }
            }
        }
        // One SIMD scan decides: most cycles stay below the knee and need no bending.
        if self.soft_clip && simd::peak(&io.output_f32()[..samples]) > self.knee {
            soft_clip(&mut io.output_f32()[..samples], self.knee);
        }
        frames as i32
    }
}

paravox_plugin!(Mix);
