//! ITU-T G.711 µ-law and A-law, written from the recommendation's definition.
//!
//! Both laws compress a linear sample into a sign bit, a 3-bit segment (a power-of-two
//! range) and a 4-bit position within the segment. Linear values here are 16-bit: µ-law's
//! 14-bit range is scaled by 4 (peak ±32124) and A-law's 13-bit range by 8 (peak ±32256),
//! the convention every sound stack uses. Decoding goes through 256-entry tables built at
//! compile time; encoding is branch-light arithmetic.

/// µ-law bias (33 in 14-bit units): shifts every magnitude up so that the segment is
/// simply the position of the highest set bit.
const MULAW_BIAS: i32 = 0x84;

/// Largest magnitude µ-law encodes; anything louder clips to the top code. It is the
/// largest value that still fits 15 bits once biased (32635 + 132 = 32767).
const MULAW_CLIP: i32 = 32635;

/// A-law inverts every other bit of its codes, so that near-silence is not a run of zeros
/// on the line.
const ALAW_TOGGLE: u8 = 0x55;

/// Sign bit of a code; set means positive for A-law (after the toggle) and negative for
/// µ-law (after inverting the code).
const SIGN: u8 = 0x80;

/// The 16-bit linear value of µ-law code `code`. 0xFF and 0x7F are both zero (positive
/// and negative zero).
pub const fn mulaw_to_linear(code: u8) -> i16 {
    // µ-law codes are sent inverted.
    let code = !code;
    let segment = (code >> 4) & 0x07;
    let position = (code & 0x0F) as i32;
    // The middle of the step: each segment doubles the step size of the one below.
    let magnitude = (((position << 3) + MULAW_BIAS) << segment) - MULAW_BIAS;
    // magnitude <= 32124, so both signs fit an i16.
    if code & SIGN != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// The µ-law code nearest to 16-bit linear `sample`; magnitudes above 32635 clip.
pub const fn linear_to_mulaw(sample: i16) -> u8 {
    let sample = sample as i32;
    let (sign, magnitude) = if sample < 0 {
        (SIGN, -sample)
    } else {
        (0, sample)
    };
    let clipped = if magnitude > MULAW_CLIP {
        MULAW_CLIP
    } else {
        magnitude
    };
    // biased is in 0x84..=0x7FFF: its highest set bit is bit 7 to 14, i.e. segment 0 to 7.
    let biased = (clipped + MULAW_BIAS) as u32;
    let segment = 31 - biased.leading_zeros() - 7;
    let position = (biased >> (segment + 3)) & 0x0F;
    !(sign | (segment << 4) as u8 | position as u8)
}

/// The 16-bit linear value of A-law code `code`. A-law has no zero: 0xD5 and 0x55 are
/// the smallest positive and negative steps, ±8.
pub const fn alaw_to_linear(code: u8) -> i16 {
    let code = code ^ ALAW_TOGGLE;
    let segment = ((code >> 4) & 0x07) as i32;
    let position = (code & 0x0F) as i32;
    // The middle of the step, in 13-bit units × 8: segment 0 steps by 2 from 0, segment
    // s ≥ 1 steps by 2^s from 2^(s+4).
    let magnitude = if segment == 0 {
        (position << 4) + 8
    } else {
        ((position << 4) + 0x108) << (segment - 1)
    };
    // magnitude <= 32256, so both signs fit an i16.
    if code & SIGN != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// The A-law code nearest to 16-bit linear `sample`.
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let sample = sample as i32;
    // A-law is symmetric about -0.5 (there is no zero code), so negative samples are
    // mirrored with the ones' complement, -x - 1, rather than negated.
    let (sign, mirrored) = if sample >= 0 {
        (SIGN, sample)
    } else {
        (0, -sample - 1)
    };
    // To the 13-bit scale: a 12-bit magnitude, 0..=4095.
    let magnitude = (mirrored >> 3) as u32;
    let code = if magnitude < 32 {
        magnitude >> 1
    } else {
        // The highest set bit is bit 5 to 11: segment 1 to 7.
        let segment = 31 - magnitude.leading_zeros() - 4;
        (segment << 4) | ((magnitude >> segment) & 0x0F)
    };
    (sign | code as u8) ^ ALAW_TOGGLE
}

/// Every µ-law code as a sample in [-1.0, 1.0).
pub(super) static MULAW_TO_F32: [f32; 256] = {
    let mut table = [0.0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = mulaw_to_linear(code as u8) as f32 / 32768.0;
        code += 1;
    }
    table
};

/// Every A-law code as a sample in [-1.0, 1.0).
pub(super) static ALAW_TO_F32: [f32; 256] = {
    let mut table = [0.0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = alaw_to_linear(code as u8) as f32 / 32768.0;
        code += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// µ-law by the recommendation's table, in 14-bit units: segment e, step m gives
    /// ((2m + 33) << e) - 33.
    fn mulaw_reference(code: u8) -> i32 {
        let inverted = !code;
        let segment = u32::from((inverted >> 4) & 7);
        let step = i32::from(inverted & 0x0F);
        let magnitude = ((2 * step + 33) << segment) - 33;
        let value = if inverted & 0x80 != 0 {
            -magnitude
        } else {
            magnitude
        };
        value * 4
    }

    /// A-law by the recommendation's table, in 13-bit units: segment 0 gives 2m + 1,
    /// segment s ≥ 1 gives (2m + 33) << (s - 1).
    fn alaw_reference(code: u8) -> i32 {
        let toggled = code ^ 0x55;
        let segment = u32::from((toggled >> 4) & 7);
        let step = i32::from(toggled & 0x0F);
        let magnitude = if segment == 0 {
            2 * step + 1
        } else {
            (2 * step + 33) << (segment - 1)
        };
        let value = if toggled & 0x80 != 0 {
            magnitude
        } else {
            -magnitude
        };
        value * 8
    }

    #[test]
    fn mulaw_decodes_every_code_by_the_definition() {
        for code in 0..=u8::MAX {
            assert_eq!(
                i32::from(mulaw_to_linear(code)),
                mulaw_reference(code),
                "code {code:#04x}"
            );
            assert_eq!(
                MULAW_TO_F32[usize::from(code)],
                mulaw_reference(code) as f32 / 32768.0
            );
        }
    }

    #[test]
    fn alaw_decodes_every_code_by_the_definition() {
        for code in 0..=u8::MAX {
            assert_eq!(
                i32::from(alaw_to_linear(code)),
                alaw_reference(code),
                "code {code:#04x}"
            );
            assert_eq!(
                ALAW_TO_F32[usize::from(code)],
                alaw_reference(code) as f32 / 32768.0
            );
        }
    }

    #[test]
    fn known_values() {
        let mulaw = [
            (0xFF, 0),
            (0x7F, 0),
            (0x80, 32124),
            (0x00, -32124),
            (0xFE, 8),
            (0x7E, -8),
            (0xEF, 132),
        ];
        for (code, linear) in mulaw {
            assert_eq!(mulaw_to_linear(code), linear, "µ-law {code:#04x}");
        }
        let alaw = [
            (0xD5, 8),
            (0x55, -8),
            (0xAA, 32256),
            (0x2A, -32256),
            (0xD4, 24),
            (0xC5, 264),
        ];
        for (code, linear) in alaw {
            assert_eq!(alaw_to_linear(code), linear, "A-law {code:#04x}");
        }
    }

    #[test]
    fn both_laws_are_symmetric() {
        for code in 0..=u8::MAX {
            assert_eq!(
                mulaw_to_linear(code),
                -mulaw_to_linear(code ^ SIGN),
                "µ-law {code:#04x}"
            );
            assert_eq!(
                alaw_to_linear(code),
                -alaw_to_linear(code ^ SIGN),
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn mulaw_encode_inverts_decode() {
        for code in 0..=u8::MAX {
            // Negative zero (0x7F) comes back as the positive zero every encoder emits.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                linear_to_mulaw(mulaw_to_linear(code)),
                expected,
                "code {code:#04x}"
            );
        }
    }

    #[test]
    fn alaw_encode_inverts_decode() {
        for code in 0..=u8::MAX {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "code {code:#04x}"
            );
        }
    }

    /// Checks G.711's decision rule for every 16-bit sample: the chosen level lies
    /// within half a step of the sample (the step of the level's segment; segments are
    /// intervals with their level in the middle), and levels never decrease as samples
    /// grow. Samples louder than `clip` get the loudest level.
    ///
    /// This is not "nearest level": at a segment boundary the next segment's level can
    /// be chosen though the previous one is closer, because G.711 places the decision
    /// threshold on the boundary, not midway between the levels.
    fn assert_g711_decisions(
        decode: fn(u8) -> i16,
        encode: fn(i16) -> u8,
        half_step: fn(u8) -> i32,
        clip: i32,
    ) {
        let top_level = i32::from(decode(encode(i16::MAX)));
        let mut previous = i32::MIN;
        for sample in i16::MIN..=i16::MAX {
            let code = encode(sample);
            let level = i32::from(decode(code));
            let sample = i32::from(sample);
            let error = (level - sample).abs();
            if sample.abs() <= clip {
                assert!(
                    error <= half_step(code),
                    "sample {sample} encoded to level {level}"
                );
            } else {
                assert_eq!(level.abs(), top_level, "sample {sample} should clip");
            }
            assert!(
                level >= previous,
                "sample {sample}: level {level} after {previous}"
            );
            previous = level;
        }
    }

    #[test]
    fn mulaw_encoder_follows_the_g711_decision_rule() {
        // Segment e steps by 8 << e (16-bit units); the top level is 32124, but samples
        // up to the clip level 32635 still lie within half a step of it.
        let half_step = |code: u8| 4 << ((!code >> 4) & 7);
        assert_g711_decisions(mulaw_to_linear, linear_to_mulaw, half_step, 32635);
    }

    #[test]
    fn alaw_encoder_follows_the_g711_decision_rule() {
        // Segments 0 and 1 step by 16, segment s ≥ 1 by 8 << s (16-bit units).
        let half_step = |code: u8| 4 << ((code ^ 0x55) >> 4 & 7).max(1);
        assert_g711_decisions(alaw_to_linear, linear_to_alaw, half_step, 32768);
    }
}
