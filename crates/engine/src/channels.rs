//! The standard up/down-mix between channel counts, built from `paravox_pcm`'s channel
//! maps. Counts without a standard layout (5, 7, 9+) map channel by channel: channel `i`
//! to channel `i`, extra inputs dropped, extra outputs silent.

use paravox_pcm::{ChannelMap, mix_matrix};

/// Row-major `outputs × inputs` coefficients.
pub(crate) fn standard_matrix(inputs: usize, outputs: usize) -> Box<[f32]> {
    let mut matrix = vec![0.0f32; inputs * outputs];
    match (
        ChannelMap::standard(inputs as u32),
        ChannelMap::standard(outputs as u32),
    ) {
        (Some(from), Some(to)) => {
            let mix = mix_matrix(&from, &to);
            for output in 0..outputs {
                for input in 0..inputs {
                    matrix[output * inputs + input] = mix.gain(output, input);
                }
            }
        }
        _ => {
            for channel in 0..inputs.min(outputs) {
                matrix[channel * inputs + channel] = 1.0;
            }
        }
    }
    matrix.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChannelMapper;

    #[test]
    fn mono_to_stereo_copies_to_both_sides() {
        let mapper = ChannelMapper::new(1, 2).expect("mapper");
        let mut out = [0.0f32; 4];
        mapper.apply(&[0.5, -0.25], &mut out);
        assert_eq!(out, [0.5, 0.5, -0.25, -0.25]);
    }

    #[test]
    fn stereo_to_mono_averages() {
        let mapper = ChannelMapper::new(2, 1).expect("mapper");
        let mut out = [0.0f32; 2];
        mapper.apply(&[0.5, 0.25, -1.0, 1.0], &mut out);
        assert_eq!(out, [0.375, 0.0]);
    }

    #[test]
    fn stereo_to_stereo_is_identity() {
        let mapper = ChannelMapper::new(2, 2).expect("mapper");
        let input = [0.1f32, -0.7, 0.3, 0.9];
        let mut out = [0.0f32; 4];
        mapper.apply(&input, &mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn counts_without_a_layout_map_channel_by_channel() {
        let matrix = standard_matrix(9, 2);
        let mut expected = [0.0f32; 18];
        expected[0] = 1.0;
        expected[9 + 1] = 1.0;
        assert_eq!(&matrix[..], &expected[..]);
    }

    #[test]
    fn refuses_impossible_counts() {
        assert!(ChannelMapper::new(0, 2).is_err());
        assert!(ChannelMapper::new(2, 19).is_err());
    }
}
