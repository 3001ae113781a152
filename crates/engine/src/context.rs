//! What a stream reaches beyond itself: the endpoints it may route to, the default
//! routes and plugin sets, and the event bus. The registry owns one and hands each stream
//! an `Arc` of it when the stream is made, so a stream never points back at the registry
//! that holds it (and `stream` does not import `registry`).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::Thread;

use tokio::sync::broadcast;

use crate::Direction;
use crate::endpoint::Endpoint;
use crate::error::{EngineError, Result};
use crate::event::{EVENT_BACKLOG, Event};
use crate::plugin::ChainPlugins;

/// Shared by the registry and every stream of one engine.
#[derive(Debug)]
pub(crate) struct StreamContext {
    /// Endpoints by name.
    pub endpoints: RwLock<BTreeMap<String, Arc<Endpoint>>>,
    /// The default endpoint of each direction.
    pub defaults: RwLock<[Option<String>; 2]>,
    /// The event bus.
    pub events: broadcast::Sender<Event>,
    /// The plugin set of streams without their own, per direction.
    pub plugins: RwLock<[ChainPlugins; 2]>,
    /// The housekeeping thread, which sleeps while no endpoint cycles.
    housekeeper: OnceLock<Thread>,
}

impl StreamContext {
    pub fn new() -> StreamContext {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        StreamContext {
            endpoints: RwLock::new(BTreeMap::new()),
            defaults: RwLock::new([None, None]),
            events,
            plugins: RwLock::new([ChainPlugins::default(), ChainPlugins::default()]),
            housekeeper: OnceLock::new(),
        }
    }

    pub fn set_housekeeper(&self, thread: Thread) {
        let _ = self.housekeeper.set(thread);
    }

    /// A stream started: what it makes the endpoint count must be looked at again.
    pub fn wake_housekeeping(&self) {
        if let Some(thread) = self.housekeeper.get() {
            thread.unpark();
        }
    }

    /// Sends `event` to every subscriber.
    pub fn publish(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// Publishes [`Event::BudgetExceeded`] when `error` is a budget refusal.
    pub(crate) fn publish_refusal(
        &self,
        error: &crate::EngineError,
        stream: Option<crate::StreamId>,
    ) {
        if let crate::EngineError::Budget { card, exceeded } = error {
            tracing::warn!(card, stream, %exceeded, "guest request refused by the card's budget");
            self.publish(Event::BudgetExceeded {
                card: *card,
                stream,
                limit: exceeded.limit.name().to_owned(),
                asked: exceeded.asked,
                allowed: exceeded.allowed,
            });
        }
    }

    /// The plugin set streams of `direction` use unless they have their own.
    pub fn default_plugins(&self, direction: Direction) -> ChainPlugins {
        read(&self.plugins)[direction.index()].clone()
    }

    /// The endpoint a stream of `direction` routed to `name` (or the default) uses.
    pub fn resolve_route(&self, name: Option<&str>, direction: Direction) -> Result<Arc<Endpoint>> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => read(&self.defaults)[direction.index()]
                .clone()
                .ok_or(EngineError::NoRoute(direction))?,
        };
        let endpoint = read(&self.endpoints)
            .get(&name)
            .cloned()
            .ok_or_else(|| EngineError::NoSuchEndpoint(name.clone()))?;
        if endpoint.direction() != direction {
            return Err(EngineError::WrongDirection {
                endpoint: name,
                wanted: direction,
                actual: endpoint.direction(),
            });
        }
        Ok(endpoint)
    }
}

/// A read guard, whether or not a writer panicked.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A write guard, whether or not a writer panicked.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
