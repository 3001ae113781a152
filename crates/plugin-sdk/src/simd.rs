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
    }
}
