//! The two platforms the backend runs on: real Xen, and the shared-memory transport.
//!
//! A [`Platform`] supplies what the protocol code needs from below — grant mapping and
//! event channels — so the backend itself is the same code on both.

use std::sync::Arc;

use crate::error::Result;
use crate::evtchn::{EventChannels, XenEventChannels};
use crate::grant::{GrantMapper, XenGrantMapper};
use crate::shm::ShmHub;

/// Grant mapping and event channels.
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// The grant mapper.
    fn grant_mapper(&self) -> Arc<dyn GrantMapper>;
    /// A fresh set of event channels (one per connected frontend device).
    fn event_channels(&self) -> Result<Arc<dyn EventChannels>>;
}

/// Xen: `/dev/xen/gntdev` and `/dev/xen/evtchn`.
#[derive(Debug, Clone)]
pub struct XenPlatform {
    grants: Arc<XenGrantMapper>,
}

impl XenPlatform {
    /// Opens `/dev/xen/gntdev` (each device opens its own `/dev/xen/evtchn` later).
    pub fn open() -> Result<XenPlatform> {
        Ok(XenPlatform {
            grants: Arc::new(XenGrantMapper::open()?),
        })
    }
}

impl Platform for XenPlatform {
    fn grant_mapper(&self) -> Arc<dyn GrantMapper> {
        self.grants.clone()
    }

    fn event_channels(&self) -> Result<Arc<dyn EventChannels>> {
        Ok(Arc::new(XenEventChannels::open()?))
    }
}

impl Platform for ShmHub {
    fn grant_mapper(&self) -> Arc<dyn GrantMapper> {
        Arc::new(ShmHub::grant_mapper(self))
    }

    fn event_channels(&self) -> Result<Arc<dyn EventChannels>> {
        Ok(Arc::new(ShmHub::event_channels(self)?))
    }
}

/// Everything the shared-memory transport runs on the host: the in-process XenStore
/// and the hub, as two sockets in one directory.
#[derive(Debug)]
pub struct SharedMemoryHost {
    xenstore: crate::xenstore::XsServer,
    hub: Arc<ShmHub>,
}

impl SharedMemoryHost {
    /// The XenStore socket's file name inside the directory.
    pub const XENSTORE_SOCKET: &'static str = "xenstore.sock";
    /// The hub socket's file name inside the directory.
    pub const HUB_SOCKET: &'static str = "sndif-hub.sock";

    /// Listens on `dir/xenstore.sock` and `dir/sndif-hub.sock` (the directory is created).
    pub fn bind(dir: &std::path::Path) -> Result<SharedMemoryHost> {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::Error::io(format!("creating {}", dir.display()), e))?;
        Ok(SharedMemoryHost {
            xenstore: crate::xenstore::XsServer::bind(&dir.join(Self::XENSTORE_SOCKET))?,
            hub: Arc::new(ShmHub::bind(&dir.join(Self::HUB_SOCKET))?),
        })
    }

    /// The XenStore socket (frontends and toolstacks connect here).
    pub fn xenstore_path(&self) -> &std::path::Path {
        self.xenstore.path()
    }

    /// The hub socket (frontends register grant tables and ports here).
    pub fn hub_path(&self) -> &std::path::Path {
        self.hub.path()
    }

    /// Starts a backend on this transport.
    pub fn start_backend(
        &self,
        engine: Arc<paravox_engine::Engine>,
        options: crate::BackendOptions,
    ) -> Result<crate::Backend> {
        let xenstore = crate::xenstore::XsClient::connect_socket(self.xenstore_path())?;
        crate::Backend::start(engine, xenstore, self.hub.clone(), options)
    }

    /// Stops both servers.
    pub fn shutdown(&self) {
        self.hub.shutdown();
        self.xenstore.shutdown();
    }
}
