//! Channel mixing: the gain matrix that folds one speaker layout into another, and the
//! real-time loop that applies it.
//!
//! [`mix_matrix`] decides, once per stream, how every source channel reaches the
//! destination speakers; [`MixMatrix::apply`] runs on the endpoint thread and allocates
//! nothing. The rules, applied to each source channel in turn:
//!
//! 1. **Same speaker**: a position the destination also has is copied 1:1 (gain 1.0).
//! 2. **Unknown speaker** (`NONE`/`NA`): copied to the destination channel with the same
//!    index, if there is one; nothing better is known about it.
//! 3. **Stand-in speaker**: side and rear surrounds stand in for each other (SL↔RL,
//!    SR↔RR), mono and front centre for each other, and LLFE/RLFE for LFE — at gain 1.0,
//!    but only when the source does not feed the stand-in itself.
//! 4. **Fold** into the destination's front pair: FL/FR at 1.0 to their side, mono at 1.0
//!    to both (a phantom centre), centre positions at −3 dB (0.7071) to both, every other
//!    left or right position at −3 dB to its side. LFE is dropped: small speakers cannot
//!    reproduce it and summing it into the mains muddies them.
//! 5. With no front pair but a single front speaker (MONO, FC, or only one of FL/FR), the
//!    fold's left and right gains are averaged into it: stereo → mono is 0.5 + 0.5.
//! 6. Anything else is dropped; destination channels nobody feeds are silent.
//!
//! The fold is not normalised (5.1 → stereo can sum to 1 + 0.7071 + 0.7071 per side), as
//! in ITU-R BS.775: loud surround content may clip, and the encoders clamp it.

use core::fmt;

use crate::channel::{ChannelMap, ChannelPosition, MAX_CHANNEL_MAP, Side};

/// −3 dB: the gain at which a speaker's signal is shared between two others.
const MINUS_3_DB: f32 = core::f32::consts::FRAC_1_SQRT_2;

/// Gains from each source channel to each destination channel, row-major `outputs ×
/// inputs`, in a fixed array so it can be copied into real-time code.
#[derive(Clone, PartialEq)]
pub struct MixMatrix {
    gains: [[f32; MAX_CHANNEL_MAP]; MAX_CHANNEL_MAP],
    outputs: u8,
    inputs: u8,
}

impl MixMatrix {
    /// An all-zero matrix; channel counts are capped at [`MAX_CHANNEL_MAP`].
    pub fn silent(outputs: usize, inputs: usize) -> MixMatrix {
        MixMatrix {
            gains: [[0.0; MAX_CHANNEL_MAP]; MAX_CHANNEL_MAP],
            outputs: clamp_channels(outputs),
            inputs: clamp_channels(inputs),
        }
    }

    /// The matrix copying `channels` channels unchanged.
    pub fn identity(channels: usize) -> MixMatrix {
        let mut matrix = MixMatrix::silent(channels, channels);
        for channel in 0..matrix.inputs() {
            matrix.set(channel, channel, 1.0);
        }
        matrix
    }

    pub fn outputs(&self) -> usize {
        usize::from(self.outputs)
    }

    pub fn inputs(&self) -> usize {
        usize::from(self.inputs)
    }

    /// The gain from source channel `input` to destination channel `output`; 0.0 for
    /// channels outside the matrix.
    pub fn gain(&self, output: usize, input: usize) -> f32 {
        self.row(output)
            .and_then(|row| row.get(input))
            .copied()
            .unwrap_or(0.0)
    }

    /// The gains into destination channel `output`, one per source channel.
    pub fn row(&self, output: usize) -> Option<&[f32]> {
        if output >= self.outputs() {
            return None;
        }
        self.gains
            .get(output)
            .and_then(|row| row.get(..self.inputs()))
    }

    /// Sets one gain; ignored outside the matrix.
    pub fn set(&mut self, output: usize, input: usize, gain: f32) {
        if output < self.outputs()
            && input < self.inputs()
            && let Some(slot) = self
                .gains
                .get_mut(output)
                .and_then(|row| row.get_mut(input))
        {
            *slot = gain;
        }
    }

    fn add(&mut self, output: usize, input: usize, gain: f32) {
        let sum = self.gain(output, input) + gain;
        self.set(output, input, sum);
    }

    /// True when [`apply`](Self::apply) would copy its input unchanged, so the caller
    /// can skip it.
    pub fn is_identity(&self) -> bool {
        self.outputs == self.inputs
            && (0..self.outputs()).all(|output| {
                (0..self.inputs()).all(|input| {
                    self.gain(output, input) == if input == output { 1.0 } else { 0.0 }
                })
            })
    }

    /// Mixes interleaved `src` frames (`inputs` samples each) into interleaved `dst`
    /// frames (`outputs` samples each), overwriting `dst`. Returns the frames mixed:
    /// as many whole frames as both buffers hold.
    ///
    /// Real-time safe: no allocation, no panics.
    pub fn apply(&self, src: &[f32], dst: &mut [f32]) -> usize {
        let (inputs, outputs) = (self.inputs(), self.outputs());
        if inputs == 0 || outputs == 0 {
            return 0;
        }
        let mut frames = 0;
        for (in_frame, out_frame) in src.chunks_exact(inputs).zip(dst.chunks_exact_mut(outputs)) {
            for (out, row) in out_frame.iter_mut().zip(&self.gains) {
                *out = row
                    .iter()
                    .zip(in_frame)
                    .map(|(gain, sample)| gain * sample)
                    .sum();
            }
            frames += 1;
        }
        frames
    }
}

fn clamp_channels(channels: usize) -> u8 {
    // MAX_CHANNEL_MAP is 18, so the clamped value fits a u8.
    channels.min(MAX_CHANNEL_MAP) as u8
}

impl fmt::Debug for MixMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<&[f32]> = (0..self.outputs())
            .filter_map(|output| self.row(output))
            .collect();
        f.debug_struct("MixMatrix")
            .field("outputs", &self.outputs)
            .field("inputs", &self.inputs)
            .field("gains", &rows)
            .finish()
    }
}

/// The matrix mixing channels laid out as `from` into the layout `to`, by the rules in the
/// module documentation.
pub fn mix_matrix(from: &ChannelMap, to: &ChannelMap) -> MixMatrix {
    let mut matrix = MixMatrix::silent(to.channels(), from.channels());
    for (input, &position) in from.positions().iter().enumerate() {
        route(&mut matrix, from, to, input, position);
    }
    matrix
}

/// Adds the gains that carry source channel `input` (at `position`) into `to`.
fn route(
    matrix: &mut MixMatrix,
    from: &ChannelMap,
    to: &ChannelMap,
    input: usize,
    position: ChannelPosition,
) {
    if position.side() == Side::Unknown {
        matrix.add(input, input, 1.0);
        return;
    }
    if let Some(output) = to.index_of(position) {
        matrix.add(output, input, 1.0);
        return;
    }
    if let Some(stand_in) = stand_in(position).filter(|stand_in| !from.contains(*stand_in))
        && let Some(output) = to.index_of(stand_in)
    {
        matrix.add(output, input, 1.0);
        return;
    }
    let (left, right) = fold_gains(position);
    match (
        to.index_of(ChannelPosition::Fl),
        to.index_of(ChannelPosition::Fr),
    ) {
        (Some(front_left), Some(front_right)) => {
            matrix.add(front_left, input, left);
            matrix.add(front_right, input, right);
        }
        (Some(single), None) | (None, Some(single)) => {
            matrix.add(single, input, (left + right) / 2.0)
        }
        (None, None) => {
            let centre = to
                .index_of(ChannelPosition::Mono)
                .or(to.index_of(ChannelPosition::Fc));
            if let Some(centre) = centre {
                matrix.add(centre, input, (left + right) / 2.0);
            }
        }
    }
}

/// The speaker that may play `position`'s signal when the destination lacks it.
fn stand_in(position: ChannelPosition) -> Option<ChannelPosition> {
    use ChannelPosition::{Fc, Lfe, Llfe, Mono, Rl, Rlfe, Rr, Sl, Sr};
    match position {
        Sl => Some(Rl),
        Rl => Some(Sl),
        Sr => Some(Rr),
        Rr => Some(Sr),
        Fc => Some(Mono),
        Mono => Some(Fc),
        Llfe | Rlfe => Some(Lfe),
        _ => Option::None,
    }
}

/// Gains (left, right) with which `position` folds into a front pair.
fn fold_gains(position: ChannelPosition) -> (f32, f32) {
    match (position, position.side()) {
        (ChannelPosition::Fl, _) => (1.0, 0.0),
        (ChannelPosition::Fr, _) => (0.0, 1.0),
        (ChannelPosition::Mono, _) => (1.0, 1.0),
        (_, Side::Left) => (MINUS_3_DB, 0.0),
        (_, Side::Right) => (0.0, MINUS_3_DB),
        (_, Side::Centre) => (MINUS_3_DB, MINUS_3_DB),
        (_, Side::Lfe | Side::Unknown) => (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelPosition::*;

    const G: f32 = MINUS_3_DB;

    fn map(positions: &[ChannelPosition]) -> ChannelMap {
        ChannelMap::new(positions).unwrap()
    }

    /// Asserts the matrix equals `expected` (one row per destination channel).
    fn assert_matrix(matrix: &MixMatrix, expected: &[&[f32]]) {
        assert_eq!(matrix.outputs(), expected.len(), "{matrix:?}");
        for (output, row) in expected.iter().enumerate() {
            assert_eq!(matrix.row(output), Some(*row), "row {output} of {matrix:?}");
        }
    }

    #[test]
    fn mono_to_stereo_copies_to_both_at_unity() {
        let matrix = mix_matrix(&ChannelMap::mono(), &ChannelMap::stereo());
        assert_matrix(&matrix, &[&[1.0], &[1.0]]);
        let mut out = [0.0; 4];
        assert_eq!(matrix.apply(&[0.25, -0.5], &mut out), 2);
        assert_eq!(out, [0.25, 0.25, -0.5, -0.5]);
    }

    #[test]
    fn stereo_to_mono_averages() {
        let matrix = mix_matrix(&ChannelMap::stereo(), &ChannelMap::mono());
        assert_matrix(&matrix, &[&[0.5, 0.5]]);
        let mut out = [0.0; 2];
        assert_eq!(matrix.apply(&[1.0, 0.0, 0.5, -0.5], &mut out), 2);
        assert_eq!(out, [0.5, 0.0]);
    }

    #[test]
    fn surround_5_1_to_stereo_folds_centre_and_rear_at_minus_3_db_and_drops_lfe() {
        // Source order: FL FR RL RR FC LFE.
        let matrix = mix_matrix(&ChannelMap::surround_5_1(), &ChannelMap::stereo());
        assert_matrix(
            &matrix,
            &[&[1.0, 0.0, G, 0.0, G, 0.0], &[0.0, 1.0, 0.0, G, G, 0.0]],
        );
        // A signal only on LFE is silent in stereo.
        let mut out = [1.0; 2];
        matrix.apply(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0], &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn surround_7_1_to_stereo_folds_sides_too() {
        // Source order: FL FR RL RR FC LFE SL SR.
        let matrix = mix_matrix(&ChannelMap::surround_7_1(), &ChannelMap::stereo());
        assert_matrix(
            &matrix,
            &[
                &[1.0, 0.0, G, 0.0, G, 0.0, G, 0.0],
                &[0.0, 1.0, 0.0, G, G, 0.0, 0.0, G],
            ],
        );
    }

    #[test]
    fn surround_5_1_to_mono_averages_the_stereo_fold() {
        let matrix = mix_matrix(&ChannelMap::surround_5_1(), &ChannelMap::mono());
        // FC stands in for MONO; the rest fold to a virtual pair, then average.
        assert_matrix(&matrix, &[&[0.5, 0.5, G / 2.0, G / 2.0, 1.0, 0.0]]);
    }

    #[test]
    fn upmix_leaves_missing_speakers_silent() {
        let matrix = mix_matrix(&ChannelMap::stereo(), &ChannelMap::surround_5_1());
        assert_matrix(
            &matrix,
            &[
                &[1.0, 0.0],
                &[0.0, 1.0],
                &[0.0; 2],
                &[0.0; 2],
                &[0.0; 2],
                &[0.0; 2],
            ],
        );
    }

    #[test]
    fn mono_to_surround_uses_the_centre_speaker() {
        let matrix = mix_matrix(&ChannelMap::mono(), &ChannelMap::surround_5_1());
        assert_matrix(&matrix, &[&[0.0], &[0.0], &[0.0], &[0.0], &[1.0], &[0.0]]);
    }

    #[test]
    fn side_and_rear_surrounds_stand_in_for_each_other() {
        let side = map(&[Fl, Fr, Fc, Lfe, Sl, Sr]);
        let matrix = mix_matrix(&ChannelMap::surround_5_1(), &side);
        // Source FL FR RL RR FC LFE → destination FL FR FC LFE SL SR.
        assert_matrix(
            &matrix,
            &[
                &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                &[0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            ],
        );
    }

    #[test]
    fn stand_in_is_not_used_when_the_source_feeds_it_itself() {
        // 7.1 → 5.1: SL cannot take RL's place because RL is already there.
        let matrix = mix_matrix(&ChannelMap::surround_7_1(), &ChannelMap::surround_5_1());
        assert_eq!(matrix.gain(0, 6), G, "SL folds into FL");
        assert_eq!(matrix.gain(2, 6), 0.0, "SL does not land on RL");
        assert_eq!(matrix.gain(2, 2), 1.0, "RL stays on RL");
    }

    #[test]
    fn unknown_positions_keep_their_index() {
        let matrix = mix_matrix(&map(&[Na, Na]), &ChannelMap::stereo());
        assert_matrix(&matrix, &[&[1.0, 0.0], &[0.0, 1.0]]);
        let matrix = mix_matrix(&map(&[Na, Na, Na]), &ChannelMap::stereo());
        assert_matrix(&matrix, &[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]]);
    }

    #[test]
    fn same_layout_is_identity() {
        for channels in 1..=8 {
            let layout = ChannelMap::standard(channels).unwrap();
            let matrix = mix_matrix(&layout, &layout);
            assert!(matrix.is_identity(), "{channels} channels: {matrix:?}");
            assert_eq!(matrix, MixMatrix::identity(channels as usize));
        }
        assert!(!mix_matrix(&ChannelMap::stereo(), &ChannelMap::mono()).is_identity());
        // Same positions in another order is a permutation, not an identity.
        let swapped = map(&[Fr, Fl]);
        let matrix = mix_matrix(&ChannelMap::stereo(), &swapped);
        assert!(!matrix.is_identity());
        assert_matrix(&matrix, &[&[0.0, 1.0], &[1.0, 0.0]]);
    }

    #[test]
    fn apply_stops_at_the_shorter_buffer_and_ignores_partial_frames() {
        let matrix = mix_matrix(&ChannelMap::stereo(), &ChannelMap::mono());
        let mut out = [9.0; 1];
        assert_eq!(matrix.apply(&[1.0, 1.0, 1.0, 1.0, 1.0], &mut out), 1);
        assert_eq!(out, [1.0]);
        let mut out = [9.0; 4];
        assert_eq!(matrix.apply(&[1.0, 1.0, 1.0], &mut out), 1);
        assert_eq!(out, [1.0, 9.0, 9.0, 9.0]);
        assert_eq!(MixMatrix::silent(0, 0).apply(&[1.0], &mut out), 0);
    }

    #[test]
    fn accessors_are_safe_outside_the_matrix() {
        let mut matrix = MixMatrix::silent(2, 1);
        matrix.set(5, 0, 1.0);
        matrix.set(0, 5, 1.0);
        assert_eq!(matrix.gain(5, 0), 0.0);
        assert_eq!(matrix.gain(0, 5), 0.0);
        assert_eq!(matrix.row(2), Option::None);
        assert_eq!(MixMatrix::silent(100, 100).outputs(), MAX_CHANNEL_MAP);
    }
}
