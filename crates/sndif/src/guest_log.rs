//! The warnings a frontend causes, limited per frontend domain (see
//! `paravox_engine::guest_log`): a guest that reconnects in a loop, writes odd XenStore
//! values or corrupts its rings over and over cannot flood the daemon's log.
//!
//! Code that handles one domain's device runs inside [`for_domain`]; [`guest_warn!`]
//! there logs through that domain's limit, with the count held back since the last line.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use paravox_engine::guest_log::GuestWarnings;

/// Domains whose limits are remembered; beyond this the oldest state is dropped (it
/// only costs a few lines of log).
const MAX_DOMAINS: usize = 4096;

static LIMITS: LazyLock<Mutex<HashMap<u32, GuestWarnings>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

thread_local! {
    static DOMAIN: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Runs `work` with its guest warnings counted against `domid`.
pub(crate) fn for_domain<R>(domid: u32, work: impl FnOnce() -> R) -> R {
    let outer = DOMAIN.with(|domain| domain.replace(Some(domid)));
    let result = work();
    DOMAIN.with(|domain| domain.set(outer));
    result
}

/// Whether a warning may be logged now (and how many were held back before it). Outside
/// [`for_domain`] every warning may.
pub(crate) fn allow() -> Option<u64> {
    let Some(domid) = DOMAIN.with(Cell::get) else {
        return Some(0);
    };
    let mut limits = LIMITS.lock().unwrap_or_else(PoisonError::into_inner);
    if limits.len() >= MAX_DOMAINS && !limits.contains_key(&domid) {
        limits.clear();
    }
    limits.entry(domid).or_default().allow()
}

/// `tracing::warn!` through the current domain's limit; adds a `suppressed` field.
macro_rules! guest_warn {
    ($($field:tt)*) => {
        if let Some(suppressed) = $crate::guest_log::allow() {
            tracing::warn!(suppressed, $($field)*);
        }
    };
}
pub(crate) use guest_warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_domain_has_its_own_limit() {
        let allowed = |domid| for_domain(domid, || (0..20).filter(|_| allow().is_some()).count());
        assert_eq!(allowed(900_001), 10);
        assert_eq!(allowed(900_002), 10);
        // Outside a domain nothing is limited.
        assert!((0..20).all(|_| allow().is_some()));
    }
}
