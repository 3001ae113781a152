//! Signal analysis for paravox's tests: what a person would check with a scope and an
//! analyser, as numbers.
//!
//! Tests assert on these, so they must be precise: the frequency comes from a
//! least-squares sine fit refined by golden-section search (not an FFT bin), and THD+N is
//! everything the fitted sine does not explain, relative to the sine.

use std::f64::consts::PI;

/// The result of fitting one sine (plus DC) to a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SineFit {
    /// Frequency in Hz.
    pub frequency: f64,
    /// Peak amplitude (1.0 = full scale).
    pub amplitude: f64,
    /// DC offset.
    pub offset: f64,
    /// Residual (noise + distortion) power relative to the sine's power, in dB.
    pub thd_n_db: f64,
}

/// Least-squares fit of `a·sin + b·cos + c` at a fixed frequency; returns (a, b, c,
/// residual energy).
fn fit_at(samples: &[f64], rate: f64, frequency: f64) -> (f64, f64, f64, f64) {
    let omega = 2.0 * PI * frequency / rate;
    // Normal equations of the 3-parameter model.
    let (mut ss, mut sc, mut s1, mut cc, mut c1) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut ys, mut yc, mut y1) = (0.0, 0.0, 0.0);
    for (n, &y) in samples.iter().enumerate() {
        let (s, c) = (omega * n as f64).sin_cos();
        ss += s * s;
        sc += s * c;
        s1 += s;
        cc += c * c;
        c1 += c;
        ys += y * s;
        yc += y * c;
        y1 += y;
    }
    let count = samples.len() as f64;
    let matrix = [[ss, sc, s1], [sc, cc, c1], [s1, c1, count]];
    let [a, b, c] = solve3(matrix, [ys, yc, y1]);
    let residual: f64 = samples
        .iter()
        .enumerate()
        .map(|(n, &y)| {
            let (s, co) = (omega * n as f64).sin_cos();
            let e = y - (a * s + b * co + c);
            e * e
        })
        .sum();
    (a, b, c, residual)
}

/// Solves a 3×3 system by Cramer's rule (well conditioned for sine fits).
fn solve3(m: [[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(m);
    if d.abs() < 1e-300 {
        return [0.0; 3];
    }
    let mut out = [0.0; 3];
    for (column, value) in out.iter_mut().enumerate() {
        let mut replaced = m;
        for row in 0..3 {
            replaced[row][column] = v[row];
        }
        *value = det(replaced) / d;
    }
    out
}

/// Estimates the frequency from rising zero crossings (a starting point for the fit).
pub fn zero_crossing_frequency(samples: &[f64], rate: f64) -> Option<f64> {
    let mean = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    let crossings: Vec<f64> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] - mean <= 0.0 && w[1] - mean > 0.0)
        .map(|(n, w)| n as f64 + (mean - w[0]) / (w[1] - w[0]))
        .collect();
    if crossings.len() < 2 {
        return None;
    }
    let span = crossings[crossings.len() - 1] - crossings[0];
    Some((crossings.len() - 1) as f64 * rate / span)
}

/// Fits a sine to `samples` taken at `rate` Hz. `None` for signals without a clear
/// periodic component.
pub fn fit_sine(samples: &[f64], rate: f64) -> Option<SineFit> {
    let guess = zero_crossing_frequency(samples, rate)?;
    // The residual as a function of frequency has side lobes one bin (rate / N) apart, so
    // scan ±2 bins around the zero-crossing estimate first and only then refine inside
    // the best step, where the residual is unimodal.
    let bin = rate / samples.len() as f64;
    let step = bin / 8.0;
    let best = (-16..=16)
        .map(|k| guess + f64::from(k) * step)
        .filter(|f| *f > 0.0)
        .map(|f| (f, fit_at(samples, rate, f).3))
        .min_by(|a, b| a.1.total_cmp(&b.1))?
        .0;
    let (mut low, mut high) = (best - step, best + step);
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = high - ratio * (high - low);
    let mut x2 = low + ratio * (high - low);
    let mut f1 = fit_at(samples, rate, x1).3;
    let mut f2 = fit_at(samples, rate, x2).3;
    while high - low > 1e-6 {
        if f1 < f2 {
            high = x2;
            x2 = x1;
            f2 = f1;
            x1 = high - ratio * (high - low);
            f1 = fit_at(samples, rate, x1).3;
        } else {
            low = x1;
            x1 = x2;
            f1 = f2;
            x2 = low + ratio * (high - low);
            f2 = fit_at(samples, rate, x2).3;
        }
    }
    let frequency = (low + high) / 2.0;
    let (a, b, c, residual) = fit_at(samples, rate, frequency);
    let amplitude = (a * a + b * b).sqrt();
    let sine_power = amplitude * amplitude / 2.0;
    let residual_power = residual / samples.len() as f64;
    Some(SineFit {
        frequency,
        amplitude,
        offset: c,
        thd_n_db: 10.0 * (residual_power.max(1e-30) / sine_power.max(1e-30)).log10(),
    })
}

/// RMS level in dBFS (−inf for digital silence).
pub fn rms_db(samples: &[f64]) -> f64 {
    let power = samples.iter().map(|s| s * s).sum::<f64>() / samples.len().max(1) as f64;
    10.0 * power.log10()
}

/// Index of the first sample whose magnitude exceeds `threshold` (end of leading silence).
pub fn first_above(samples: &[f64], threshold: f64) -> Option<usize> {
    samples.iter().position(|s| s.abs() > threshold)
}

/// The longest run of consecutive samples with magnitude ≤ `threshold` inside
/// `samples` (a dropout inside a tone shows up here).
pub fn longest_quiet_run(samples: &[f64], threshold: f64) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for sample in samples {
        if sample.abs() <= threshold {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// One channel of interleaved samples.
pub fn channel(interleaved: &[f64], channels: usize, index: usize) -> Vec<f64> {
    interleaved
        .iter()
        .skip(index)
        .step_by(channels.max(1))
        .copied()
        .collect()
}

/// A sine of `frequency` Hz, `amplitude` peak, `frames` long, at `rate` Hz.
pub fn sine(rate: f64, frequency: f64, amplitude: f64, frames: usize) -> Vec<f64> {
    (0..frames)
        .map(|n| amplitude * (2.0 * PI * frequency * n as f64 / rate).sin())
        .collect()
}

/// Interleaved little-endian S16 bytes of `samples` repeated over `channels`.
pub fn s16_bytes(samples: &[f64], channels: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(samples.len() * channels * 2);
    for &sample in samples {
        let value = (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        for _ in 0..channels {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
    }
    bytes
}

/// Interleaved little-endian S16 bytes back to samples.
pub fn from_s16_bytes(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(2)
        .map(|pair| f64::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_clean_sine_exactly() {
        let signal = sine(48_000.0, 997.3, 0.5, 48_000);
        let fit = fit_sine(&signal, 48_000.0).expect("fit");
        assert!((fit.frequency - 997.3).abs() < 0.001, "{}", fit.frequency);
        assert!((fit.amplitude - 0.5).abs() < 1e-6);
        assert!(fit.thd_n_db < -120.0, "{}", fit.thd_n_db);
    }

    #[test]
    fn measures_added_noise() {
        // A harmonic at -40 dB relative to the fundamental reads as THD+N of -40 dB.
        let fundamental = sine(48_000.0, 1000.0, 0.5, 48_000);
        let harmonic = sine(48_000.0, 3000.0, 0.005, 48_000);
        let signal: Vec<f64> = fundamental
            .iter()
            .zip(&harmonic)
            .map(|(a, b)| a + b)
            .collect();
        let fit = fit_sine(&signal, 48_000.0).expect("fit");
        assert!((fit.thd_n_db + 40.0).abs() < 0.1, "{}", fit.thd_n_db);
    }

    #[test]
    fn finds_the_true_peak_not_a_side_lobe() {
        // A signal whose zero-crossing estimate is off by several bins must still fit.
        let mut signal = sine(48_000.0, 1000.0, 0.5, 4800);
        signal.extend(sine(48_000.0, 1000.0, 0.5, 43_200).iter().skip(4800));
        signal[..300].fill(0.0);
        let fit = fit_sine(&signal[300..], 48_000.0).expect("fit");
        assert!((fit.frequency - 1000.0).abs() < 0.01, "{}", fit.frequency);
    }

    #[test]
    fn finds_dropouts() {
        let mut signal = sine(48_000.0, 440.0, 0.5, 4800);
        signal[1000..1100].fill(0.0);
        assert!(longest_quiet_run(&signal, 1e-4) >= 100);
        assert_eq!(first_above(&[0.0, 0.0, 0.3], 0.1), Some(2));
    }
}
