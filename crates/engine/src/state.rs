//! The stream state machine, shared by every transport.
//!
//! `Idle → Configured → Prepared → Running ⇄ Paused → Released`. virtio-snd's
//! SET_PARAMS/PREPARE/START/STOP/RELEASE and sndif's OPEN/TRIGGER/CLOSE both map onto
//! these operations; [`transition`] is the one place that decides what is legal, so an
//! odd guest request becomes an error reply and never a panic.

use std::fmt;

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamState {
    /// Created, no parameters yet.
    Idle,
    /// Parameters set, no resources yet.
    Configured,
    /// Ring and chain allocated, attached to the endpoint, not moving.
    Prepared,
    /// Moving: the endpoint consumes (or produces) audio every cycle.
    Running,
    /// Held: attached, position kept, not moving.
    Paused,
    /// Resources freed; parameters kept so the stream can be prepared again.
    Released,
}

/// What a transport asks of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Set (or change) the hardware parameters.
    SetParams,
    /// Allocate the ring and chain, reset the position.
    Prepare,
    /// Begin moving from the prepared state.
    Start,
    /// Hold a running stream.
    Pause,
    /// Continue a held stream.
    Resume,
    /// Stop moving and return to the prepared state, dropping queued audio.
    Stop,
    /// Free the resources.
    Release,
}

impl StreamState {
    /// Every state, for tables.
    pub const ALL: [StreamState; 6] = [
        StreamState::Idle,
        StreamState::Configured,
        StreamState::Prepared,
        StreamState::Running,
        StreamState::Paused,
        StreamState::Released,
    ];

    /// The lower-case name used in logs and the API.
    pub fn name(self) -> &'static str {
        match self {
            StreamState::Idle => "idle",
            StreamState::Configured => "configured",
            StreamState::Prepared => "prepared",
            StreamState::Running => "running",
            StreamState::Paused => "paused",
            StreamState::Released => "released",
        }
    }

    /// Whether the stream holds a ring and is attached to its endpoint.
    pub fn is_attached(self) -> bool {
        matches!(
            self,
            StreamState::Prepared | StreamState::Running | StreamState::Paused
        )
    }
}

impl Operation {
    /// Every operation, for tables.
    pub const ALL: [Operation; 7] = [
        Operation::SetParams,
        Operation::Prepare,
        Operation::Start,
        Operation::Pause,
        Operation::Resume,
        Operation::Stop,
        Operation::Release,
    ];

    /// The lower-case name used in logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Operation::SetParams => "set-params",
            Operation::Prepare => "prepare",
            Operation::Start => "start",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Stop => "stop",
            Operation::Release => "release",
        }
    }
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The state after `operation` in `state`, or `None` when the operation is illegal there.
///
/// Parameters may change whenever the stream is not moving. Prepare is idempotent and
/// also revives a released stream (its parameters are kept), as virtio-snd allows.
/// Release is accepted from every state that holds or held resources, including a
/// running stream whose guest vanished; releasing twice is harmless.
pub fn transition(state: StreamState, operation: Operation) -> Option<StreamState> {
    use Operation as O;
    use StreamState as S;
    match (state, operation) {
        (S::Idle | S::Configured | S::Prepared | S::Released, O::SetParams) => Some(S::Configured),
        (S::Configured | S::Prepared | S::Released, O::Prepare) => Some(S::Prepared),
        (S::Prepared, O::Start) => Some(S::Running),
        (S::Running, O::Pause) => Some(S::Paused),
        (S::Paused, O::Resume) => Some(S::Running),
        (S::Running | S::Paused, O::Stop) => Some(S::Prepared),
        (S::Configured | S::Prepared | S::Running | S::Paused | S::Released, O::Release) => {
            Some(S::Released)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation as O;
    use StreamState as S;

    /// The whole table: every (state, operation) pair and its outcome.
    const TABLE: [(StreamState, [Option<StreamState>; 7]); 6] = [
        //            SetParams            Prepare              Start            Pause            Resume           Stop                 Release
        (
            S::Idle,
            [Some(S::Configured), None, None, None, None, None, None],
        ),
        (
            S::Configured,
            [
                Some(S::Configured),
                Some(S::Prepared),
                None,
                None,
                None,
                None,
                Some(S::Released),
            ],
        ),
        (
            S::Prepared,
            [
                Some(S::Configured),
                Some(S::Prepared),
                Some(S::Running),
                None,
                None,
                None,
                Some(S::Released),
            ],
        ),
        (
            S::Running,
            [
                None,
                None,
                None,
                Some(S::Paused),
                None,
                Some(S::Prepared),
                Some(S::Released),
            ],
        ),
        (
            S::Paused,
            [
                None,
                None,
                None,
                None,
                Some(S::Running),
                Some(S::Prepared),
                Some(S::Released),
            ],
        ),
        (
            S::Released,
            [
                Some(S::Configured),
                Some(S::Prepared),
                None,
                None,
                None,
                None,
                Some(S::Released),
            ],
        ),
    ];

    #[test]
    fn every_state_operation_pair() {
        assert_eq!(TABLE.len(), StreamState::ALL.len());
        for (state, outcomes) in TABLE {
            for (operation, expected) in O::ALL.into_iter().zip(outcomes) {
                assert_eq!(
                    transition(state, operation),
                    expected,
                    "{operation} while {state}"
                );
            }
        }
    }

    #[test]
    fn attached_states_are_those_holding_a_ring() {
        let attached: Vec<_> = S::ALL.into_iter().filter(|s| s.is_attached()).collect();
        assert_eq!(attached, [S::Prepared, S::Running, S::Paused]);
    }
}
