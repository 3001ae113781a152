//! What the configuration file and the command line declare: the part of the desired
//! state an operator writes down, as opposed to what the API creates at run time. The
//! binary parses its TOML and flags into a [`Declaration`]; the reconciler makes the
//! engine match it, at start and on every reload.

use paravox_engine::Direction;

use crate::dsp::DspPlan;
use crate::model::{BudgetRequest, CardRequest};

/// Everything the configuration file and the command line declare.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declaration {
    /// Host endpoints, in the order written.
    pub endpoints: Vec<DeclaredEndpoint>,
    /// The default playback endpoint's name, if declared.
    pub default_output: Option<String>,
    /// The default capture endpoint's name, if declared.
    pub default_input: Option<String>,
    /// virtio-snd cards, their sockets absolute.
    pub cards: Vec<CardRequest>,
    /// `dsp`, `mixer` and `chain` settings.
    pub dsp: DspPlan,
    /// The budget every card gets unless it has its own, laid over the built-in default.
    pub budget: BudgetRequest,
}

/// One declared endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredEndpoint {
    /// Unique name streams are routed by.
    pub name: String,
    /// Playback or capture.
    pub direction: Direction,
    /// ENDPOINT spec.
    pub spec: String,
    /// ENDPOINT spec used when `spec` cannot be opened.
    pub fallback: Option<String>,
}

impl Declaration {
    /// The declared default endpoint of `direction`.
    pub fn default_endpoint(&self, direction: Direction) -> Option<&str> {
        match direction {
            Direction::Playback => self.default_output.as_deref(),
            Direction::Capture => self.default_input.as_deref(),
        }
    }

    /// The declared endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Option<&DeclaredEndpoint> {
        self.endpoints.iter().find(|endpoint| endpoint.name == name)
    }

    /// The declared card called `name`.
    pub fn card(&self, name: &str) -> Option<&CardRequest> {
        self.cards.iter().find(|card| card.name == name)
    }
}
