//! Hot-loop helpers over `f32` slices.
//!
//! With `+simd128` they use 128-bit SIMD, four vectors (16 samples) per iteration: the
//! host checks its deadline once per loop iteration, and that check makes the compiler
//! spill vector registers, so a deep body amortizes it. Tails run scalar.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use core::arch::wasm32::*;

const LANES: usize = 16;

/// `output[i] = input[i] * gain`.
pub fn scale(input: &[f32], output: &mut [f32], gain: f32) {
    let len = input.len().min(output.len());
    let (input, output) = (&input[..len], &mut output[..len]);
    let whole = len - len % LANES;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let g = f32x4_splat(gain);
        for start in (0..whole).step_by(LANES) {
            // SAFETY: `start + 16 <= whole <= len` for both slices; v128 loads and stores
            // need no alignment.
            unsafe {
                let from = input.as_ptr().add(start).cast::<v128>();
                let to = output.as_mut_ptr().add(start).cast::<v128>();
                let (a, b, c, d) = (
                    v128_load(from),
                    v128_load(from.add(1)),
                    v128_load(from.add(2)),
                    v128_load(from.add(3)),
                );
                v128_store(to, f32x4_mul(a, g));
                v128_store(to.add(1), f32x4_mul(b, g));
                v128_store(to.add(2), f32x4_mul(c, g));
                v128_store(to.add(3), f32x4_mul(d, g));
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (out, sample) in output[..whole].iter_mut().zip(&input[..whole]) {
        *out = sample * gain;
    }
    for (out, sample) in output[whole..].iter_mut().zip(&input[whole..]) {
        *out = sample * gain;
    }
}

/// `output[i] += input[i] * gain`.
pub fn accumulate(input: &[f32], output: &mut [f32], gain: f32) {
    let len = input.len().min(output.len());
    let (input, output) = (&input[..len], &mut output[..len]);
    let whole = len - len % LANES;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let g = f32x4_splat(gain);
        for start in (0..whole).step_by(LANES) {
            // SAFETY: as in `scale`.
            unsafe {
                let from = input.as_ptr().add(start).cast::<v128>();
                let to = output.as_mut_ptr().add(start).cast::<v128>();
                for k in 0..4 {
                    let sum = f32x4_add(v128_load(to.add(k)), f32x4_mul(v128_load(from.add(k)), g));
                    v128_store(to.add(k), sum);
                }
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (out, sample) in output[..whole].iter_mut().zip(&input[..whole]) {
        *out += sample * gain;
    }
    for (out, sample) in output[whole..].iter_mut().zip(&input[whole..]) {
        *out += sample * gain;
    }
}

/// `output[i] += input[i]` (exactly the native mixer's sum when gains are 1).
pub fn add(input: &[f32], output: &mut [f32]) {
    let len = input.len().min(output.len());
    let (input, output) = (&input[..len], &mut output[..len]);
    let whole = len - len % LANES;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    for start in (0..whole).step_by(LANES) {
        // SAFETY: as in `scale`.
        unsafe {
            let from = input.as_ptr().add(start).cast::<v128>();
            let to = output.as_mut_ptr().add(start).cast::<v128>();
            for k in 0..4 {
                v128_store(
                    to.add(k),
                    f32x4_add(v128_load(to.add(k)), v128_load(from.add(k))),
                );
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (out, sample) in output[..whole].iter_mut().zip(&input[..whole]) {
        *out += sample;
    }
    for (out, sample) in output[whole..].iter_mut().zip(&input[whole..]) {
        *out += sample;
    }
}

/// `output[i] = 0 + inputs[0][i] + inputs[1][i] + …`, added in exactly that order (so
/// bit for bit what summing the inputs one after another gives), but eight (then four)
/// inputs per pass over `output`: the running sums stay in registers instead of going
/// through memory once per input. The first pass starts from zero in registers, so
/// `output` is never cleared first.
pub fn sum(inputs: &[&[f32]], output: &mut [f32]) {
    let len = inputs
        .iter()
        .fold(output.len(), |len, input| len.min(input.len()));
    let output = &mut output[..len];
    let mut fresh = true;
    let mut eights = inputs.chunks_exact(8);
    for group in &mut eights {
        sum_group::<8>(group, output, fresh);
        fresh = false;
    }
    let mut fours = eights.remainder().chunks_exact(4);
    for group in &mut fours {
        sum_group::<4>(group, output, fresh);
        fresh = false;
    }
    if fresh {
        output.fill(0.0);
    }
    for input in fours.remainder() {
        add(input, output);
    }
}

/// Samples per iteration of [`sum_group`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const SUM_LANES: usize = 32;

/// `output[i] = (fresh ? 0 : output[i]) + inputs[0][i] + … + inputs[N - 1][i]`, left to
/// right, 32 samples per iteration (`inputs` holds exactly `N` slices). Each vector's sum is stored before the next vector's inputs
/// are loaded: the stores may alias the inputs as far as the compiler knows, so it cannot
/// hoist every load to the top of the iteration, where the values outnumber the
/// registers the runtime's compiler has and are spilled. The processor overlaps the
/// independent chains of additions by itself.
fn sum_group<const N: usize>(inputs: &[&[f32]], output: &mut [f32], fresh: bool) {
    let inputs = &inputs[..N];
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let whole = output.len() - output.len() % SUM_LANES;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    for start in (0..whole).step_by(SUM_LANES) {
        // SAFETY: every input holds at least `output.len()` samples (`sum` cut them all
        // to the shortest), and `start + 32 <= whole <= output.len()`.
        unsafe {
            let to = output.as_mut_ptr().add(start).cast::<v128>();
            for k in 0..SUM_LANES / 4 {
                let mut acc = if fresh {
                    f32x4_splat(0.0)
                } else {
                    v128_load(to.add(k))
                };
                for input in inputs {
                    acc = f32x4_add(
                        acc,
                        v128_load(input.as_ptr().add(start).cast::<v128>().add(k)),
                    );
                }
                v128_store(to.add(k), acc);
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let whole = 0;
    for (index, out) in output.iter_mut().enumerate().skip(whole) {
        let mut total = if fresh { 0.0 } else { *out };
        for input in inputs {
            total += input[index];
        }
        *out = total;
    }
}

/// The largest magnitude in `samples` (0 for none). A NaN is skipped, not reported: this
/// is for deciding whether a pass is needed at all (the host checks outputs itself).
pub fn peak(samples: &[f32]) -> f32 {
    let whole = samples.len() - samples.len() % LANES;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let mut peak = {
        let sign = u32x4_splat(0x7fff_ffff);
        let (mut a, mut b, mut c, mut d) = (
            f32x4_splat(0.0),
            f32x4_splat(0.0),
            f32x4_splat(0.0),
            f32x4_splat(0.0),
        );
        for start in (0..whole).step_by(LANES) {
            // SAFETY: as in `scale`.
            unsafe {
                let from = samples.as_ptr().add(start).cast::<v128>();
                // pmax keeps the running peak when a lane is NaN (the comparison fails).
                a = f32x4_pmax(a, v128_and(v128_load(from), sign));
                b = f32x4_pmax(b, v128_and(v128_load(from.add(1)), sign));
                c = f32x4_pmax(c, v128_and(v128_load(from.add(2)), sign));
                d = f32x4_pmax(d, v128_and(v128_load(from.add(3)), sign));
            }
        }
        let lanes = f32x4_pmax(f32x4_pmax(a, b), f32x4_pmax(c, d));
        let mut peak = 0.0f32;
        for lane in [
            f32x4_extract_lane::<0>(lanes),
            f32x4_extract_lane::<1>(lanes),
            f32x4_extract_lane::<2>(lanes),
            f32x4_extract_lane::<3>(lanes),
        ] {
            if lane > peak {
                peak = lane;
            }
        }
        peak
    };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let mut peak =
        samples[..whole].iter().fold(
            0.0f32,
            |peak, s| if s.abs() > peak { s.abs() } else { peak },
        );
    for sample in &samples[whole..] {
        if sample.abs() > peak {
            peak = sample.abs();
        }
    }
    peak
}

/// Dot product in eight partial sums (the same order as paravox's native resampler).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_match_scalar_arithmetic() {
        let input: [f32; 37] = core::array::from_fn(|i| i as f32 * 0.25 - 3.0);
        let mut out = [1.0f32; 37];
        add(&input, &mut out);
        for (i, v) in out.iter().enumerate() {
            assert_eq!(*v, 1.0 + input[i]);
        }
        scale(&input, &mut out, 0.5);
        for (i, v) in out.iter().enumerate() {
            assert_eq!(*v, input[i] * 0.5);
        }
        accumulate(&input, &mut out, 2.0);
        for (i, v) in out.iter().enumerate() {
            assert_eq!(*v, input[i] * 0.5 + input[i] * 2.0);
        }
        assert_eq!(dot(&[1.0; 9], &[2.0; 9]), 18.0);
        let (a, b): ([f32; 37], [f32; 37]) = (
            core::array::from_fn(|i| i as f32 * 0.37 - 5.0),
            core::array::from_fn(|i| 1.0 / (i as f32 + 0.5)),
        );
        let inputs = [&input[..], &a, &b, &input, &a, &b];
        let mut nothing = [9.0f32; 5];
        sum(&[], &mut nothing);
        assert_eq!(nothing, [0.0; 5]);
        let mut summed = [9.0f32; 37];
        sum(&inputs, &mut summed);
        for (i, v) in summed.iter().enumerate() {
            let mut expected = 0.0f32;
            for input in &inputs {
                expected += input[i];
            }
            assert_eq!(v.to_bits(), expected.to_bits(), "sample {i}");
        }
        let mut loud = [0.25f32; 37];
        assert_eq!(peak(&loud), 0.25);
        loud[3] = -0.75;
        loud[36] = f32::NAN;
        assert_eq!(peak(&loud), 0.75);
        assert_eq!(peak(&[]), 0.0);
    }
}
