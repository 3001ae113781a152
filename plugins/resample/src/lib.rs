//! `resample`: band-limited rational resampling, the native resampler's algorithm.
//!
//! Output `n` sits at input time `n·M/L` (the rates' ratio reduced by their gcd). The
//! prototype low-pass is a Kaiser-windowed sinc (β = 8.96, about 90 dB of stop band) cut
//! off at 0.91 of the lower Nyquist rate, split into `L` phases; every phase is normalized
//! to unity gain at DC. The table is designed in `f64` with this crate's own `sin` and
//! `sqrt` (no libm in a `no_std` plugin), so its coefficients can differ from the native
//! table's in the last bit: the output matches the native stage to about −120 dB, not
//! bit for bit.

#![no_std]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use paravox_plugin_sdk::{Buffers, Plugin, Setup, paravox_plugin, simd};

const BASE_TAPS: usize = 64;
const MAX_TAPS: usize = 1024;
const MAX_PHASES: u64 = 8192;
const KAISER_BETA: f64 = 8.96;
const CUTOFF: f64 = 0.91;
const PI: f64 = core::f64::consts::PI;

struct Resample {
    channels: usize,
    up: u64,
    down: u64,
    taps: usize,
    table: Vec<f32>,
    history: Vec<f32>,
    head: usize,
    accumulator: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Square root by Newton's iteration (design time only; no libm here).
fn sqrt(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut guess = if x > 1.0 { x } else { 1.0 };
    for _ in 0..80 {
        let next = 0.5 * (guess + x / guess);
        if next == guess {
            break;
        }
        guess = next;
    }
    guess
}

/// sin(x): reduced to [-π/4, π/4] around a multiple of π/2, then Taylor series.
fn sin(x: f64) -> f64 {
    let quarter = PI / 2.0;
    let k = (x / quarter + if x >= 0.0 { 0.5 } else { -0.5 }) as i64;
    let r = x - k as f64 * quarter;
    let r2 = r * r;
    let series = |mut term: f64, start: u32| {
        let mut sum = term;
        let mut n = start;
        while n < 40 {
            term *= -r2 / ((n + 1) * (n + 2)) as f64;
            sum += term;
            n += 2;
        }
        sum
    };
    match k.rem_euclid(4) {
        0 => series(r, 1),
        1 => series(1.0, 0),
        2 => -series(r, 1),
        _ => -series(1.0, 0),
    }
}

fn design(up: usize, taps: usize, down: f64) -> Vec<f32> {
    let length = up * taps;
    let cutoff = CUTOFF * 0.5 / (up as f64).max(down);
    let centre = (length - 1) as f64 / 2.0;
    let norm = bessel_i0(KAISER_BETA);
    let prototype = |n: usize| {
        let x = n as f64 - centre;
        let sinc = if x == 0.0 {
            1.0
        } else {
            let arg = PI * 2.0 * cutoff * x;
            sin(arg) / arg
        };
        let ratio = 2.0 * n as f64 / (length - 1) as f64 - 1.0;
        let window = bessel_i0(KAISER_BETA * sqrt((1.0 - ratio * ratio).max(0.0))) / norm;
        2.0 * cutoff * sinc * window
    };
    let mut table = vec![0.0f32; length];
    let mut row = vec![0.0f64; taps];
    for phase in 0..up {
        for (k, value) in row.iter_mut().enumerate() {
            *value = prototype(k * up + phase);
        }
        let sum: f64 = row.iter().sum();
        let scale = if sum > 1e-12 || sum < -1e-12 {
            1.0 / sum
        } else {
            0.0
        };
        for (k, coefficient) in row.iter().enumerate() {
            table[phase * taps + (taps - 1 - k)] = (coefficient * scale) as f32;
        }
    }
    table
}

impl Plugin for Resample {
    const MANIFEST: &'static str = concat!(
        r#"{"name":"resample","version":"1.0.0","kind":"resampler","#,
        r#""description":"band-limited polyphase resampling (Kaiser-windowed sinc, ~90 dB)","#,
        r#""input_formats":["float_le"],"output_formats":["float_le"],"#,
        r#""rates":[8000,768000],"input_channels":[1,18],"output_channels":[1,18]}"#
    );

    fn new(setup: &Setup) -> Result<Self, i32> {
        let (from, to) = (u64::from(setup.input_rate), u64::from(setup.output_rate));
        let channels = setup.input_channels as usize;
        if from == 0 || to == 0 || channels == 0 || setup.output_channels != setup.input_channels {
            return Err(-5);
        }
        let divisor = gcd(from, to);
        let (up, down) = (to / divisor, from / divisor);
        if up > MAX_PHASES {
            return Err(-5);
        }
        let stretch = (down as f64 / up as f64).max(1.0);
        let wanted = BASE_TAPS as f64 * stretch;
        let taps = (wanted as usize + usize::from((wanted as usize as f64) < wanted))
            .clamp(BASE_TAPS, MAX_TAPS);
        Ok(Resample {
            channels,
            up,
            down,
            taps,
            table: design(up as usize, taps, down as f64),
            history: vec![0.0; 2 * taps * channels],
            head: 0,
            accumulator: up,
        })
    }

    fn input_frames(&self, output_frames: usize) -> usize {
        if output_frames == 0 {
            return 0;
        }
        ((self.accumulator + (output_frames as u64 - 1) * self.down) / self.up) as usize
    }

    fn process(&mut self, io: &mut Buffers, input_frames: usize, output_frames: usize) -> i32 {
        let (channels, taps) = (self.channels, self.taps);
        let (input, output) = io.f32_in_out(0);
        let input = &input[..input_frames * channels];
        let output = &mut output[..output_frames * channels];
        let mut consumed = 0;
        let mut produced = 0;
        while produced < output_frames {
            while self.accumulator >= self.up {
                if consumed == input_frames {
                    return produced as i32;
                }
                let frame = &input[consumed * channels..(consumed + 1) * channels];
                for (channel, &sample) in frame.iter().enumerate() {
                    let lane = &mut self.history[channel * 2 * taps..(channel + 1) * 2 * taps];
                    lane[self.head] = sample;
                    lane[self.head + taps] = sample;
                }
                self.head = (self.head + 1) % taps;
                consumed += 1;
                self.accumulator -= self.up;
            }
            let phase = self.accumulator as usize;
            let row = &self.table[phase * taps..(phase + 1) * taps];
            let out = &mut output[produced * channels..(produced + 1) * channels];
            for (channel, sample) in out.iter_mut().enumerate() {
                let lane = &self.history[channel * 2 * taps..(channel + 1) * 2 * taps];
                *sample = simd::dot(&lane[self.head..self.head + taps], row);
            }
            produced += 1;
            self.accumulator += self.down;
        }
        // Input the caller gave beyond what the output needed is still taken in, so the
        // call consumes all of it (the ABI's contract).
        while consumed < input_frames && self.accumulator >= self.up {
            let frame = &input[consumed * channels..(consumed + 1) * channels];
            for (channel, &sample) in frame.iter().enumerate() {
                let lane = &mut self.history[channel * 2 * taps..(channel + 1) * 2 * taps];
                lane[self.head] = sample;
                lane[self.head + taps] = sample;
            }
            self.head = (self.head + 1) % taps;
            consumed += 1;
            self.accumulator -= self.up;
        }
        produced as i32
    }
}

paravox_plugin!(Resample);
