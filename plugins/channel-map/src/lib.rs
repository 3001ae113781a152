//! `channel-map`: the native channel mapper's twin for the layouts it maps exactly.
//!
//! Same count: identity. Mono → stereo: the sample on both sides. Stereo → mono: the
//! average. When either side has no standard layout (9 channels or more):
//! channel by channel, extra inputs dropped and extra outputs silent, as paravox does.
//! Counts whose native mapping is a surround fold (e.g. 6 → 2) are refused at init, so
//! the native stage keeps serving them.

#![no_std]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use paravox_plugin_sdk::{Buffers, Plugin, Setup, paravox_plugin};

struct ChannelMap {
    inputs: usize,
    outputs: usize,
    identity: bool,
    /// Row-major `outputs × inputs`.
    matrix: Vec<f32>,
}

/// Counts with a standard speaker layout in paravox (mono, stereo, 2.1, quad, 5.0, 5.1,
/// 6.1, 7.1).
fn has_layout(channels: usize) -> bool {
    (1..=8).contains(&channels)
}

impl Plugin for ChannelMap {
    const MANIFEST: &'static str = concat!(
        r#"{"name":"channel-map","version":"1.0.0","kind":"converter","#,
        r#""description":"identity, mono/stereo folds, channel by channel","#,
        r#""input_formats":["float_le"],"output_formats":["float_le"],"#,
        r#""rates":[8000,768000],"input_channels":[1,18],"output_channels":[1,18]}"#
    );

    fn new(setup: &Setup) -> Result<Self, i32> {
        let (inputs, outputs) = (
            setup.input_channels as usize,
            setup.output_channels as usize,
        );
        let mut matrix = vec![0.0f32; inputs * outputs];
        match (inputs, outputs) {
            (a, b) if a == b => {
                for channel in 0..a {
                    matrix[channel * inputs + channel] = 1.0;
                }
            }
            (1, 2) => {
                matrix[0] = 1.0;
                matrix[1] = 1.0;
            }
            (2, 1) => {
                matrix[0] = 0.5;
                matrix[1] = 0.5;
            }
            (a, b) if !has_layout(a) || !has_layout(b) => {
                for channel in 0..a.min(b) {
                    matrix[channel * inputs + channel] = 1.0;
                }
            }
            _ => return Err(-5),
        }
        Ok(ChannelMap {
            inputs,
            outputs,
            identity: inputs == outputs,
            matrix,
        })
    }

    fn process(&mut self, io: &mut Buffers, frames: usize, _: usize) -> i32 {
        let (input, output) = io.f32_in_out(0);
        let (input, output) = (
            &input[..frames * self.inputs],
            &mut output[..frames * self.outputs],
        );
        if self.identity {
            output.copy_from_slice(input);
            return frames as i32;
        }
        for (frame_in, frame_out) in input
            .chunks_exact(self.inputs)
            .zip(output.chunks_exact_mut(self.outputs))
        {
            for (o, sample) in frame_out.iter_mut().enumerate() {
                let row = &self.matrix[o * self.inputs..(o + 1) * self.inputs];
                *sample = row.iter().zip(frame_in).map(|(c, x)| c * x).sum();
            }
        }
        frames as i32
    }
}

paravox_plugin!(ChannelMap);
