//! Entry points for the fuzz targets in `fuzz/` (built only with the `fuzzing` feature):
//! the real request path of one stream — ring indexes, request parsing, the handlers and
//! the shared buffer's page directory — over pages whose every byte the fuzzer chose.

use std::sync::Arc;

use paravox_engine::{Direction, Engine, StreamSpec, Transport};

use crate::config::{HwConfig, StreamConfig, StreamTransport};
use crate::error::Result;
use crate::event::EventRing;
use crate::evtchn::{EventChannels, Port};
use crate::grant::{DomId, GrantMapper, GrantRef, Mapping};
use crate::position::Reporter;
use crate::ring::BackRing;
use crate::route;
use crate::stream::{StreamChannel, StreamParts};
use crate::wire::PAGE_SIZE;

/// Every grant maps a copy of the same page: directory walks, cycles included, and
/// buffer pages all read what the fuzzer put there.
#[derive(Debug)]
struct SamePageGrants {
    page: Vec<u8>,
}

impl GrantMapper for SamePageGrants {
    fn map(&self, _domid: DomId, grefs: &[GrantRef], _writable: bool) -> Result<Mapping> {
        let mapping = Mapping::anonymous(grefs.len() * PAGE_SIZE)?;
        for index in 0..grefs.len() {
            mapping.write(index * PAGE_SIZE, &self.page)?;
        }
        Ok(mapping)
    }
}

/// Event channels that go nowhere.
#[derive(Debug)]
struct QuietChannels;

impl EventChannels for QuietChannels {
    fn bind_interdomain(&self, _domid: DomId, remote_port: Port) -> Result<Port> {
        Ok(remote_port)
    }
    fn unbind(&self, _port: Port) -> Result<()> {
        Ok(())
    }
    fn notify(&self, _port: Port) -> Result<()> {
        Ok(())
    }
    fn unmask(&self, _port: Port) -> Result<()> {
        Ok(())
    }
    fn fd(&self) -> std::os::fd::RawFd {
        -1
    }
    fn pending(&self) -> Result<Vec<Port>> {
        Ok(Vec::new())
    }
}

/// Serves one stream of `direction` whose request ring page holds `ring_page` (indexes
/// and request slots as a frontend wrote them) and whose other granted pages all hold
/// `grant_page`. Returns what [`StreamChannel::step`] returned (an error only for a
/// corrupted ring); the card is removed from `engine` afterwards.
pub fn serve_ring(
    engine: &Arc<Engine>,
    direction: Direction,
    ring_page: &[u8],
    grant_page: &[u8],
) -> Result<()> {
    let card = engine.create_card(
        "fuzz",
        Transport::Sndif {
            frontend_domid: 1,
            devid: 0,
        },
    )?;
    let result = serve_on_card(engine, card.id(), direction, ring_page, grant_page);
    engine.remove_card(card.id())?;
    result
}

fn serve_on_card(
    engine: &Arc<Engine>,
    card: u32,
    direction: Direction,
    ring_page: &[u8],
    grant_page: &[u8],
) -> Result<()> {
    let label = "fuzz/pcm0/stream0".to_owned();
    let config = StreamConfig {
        path: "/local/domain/1/device/vsnd/0/0/0".into(),
        pcm: 0,
        index: 0,
        direction,
        unique_id: None,
        hw: HwConfig::default(),
        transport: StreamTransport {
            ring_ref: 8,
            event_channel: 1,
            evt_ring_ref: 9,
            evt_event_channel: 2,
        },
    };
    let stream = engine.create_stream(
        card,
        StreamSpec {
            name: label.clone(),
            direction,
            constraints: config.hw.constraints(),
            route: route::resolve(engine, None, direction, &label),
        },
    )?;
    let page = |bytes: &[u8]| -> Result<Mapping> {
        let mapping = Mapping::anonymous(PAGE_SIZE)?;
        mapping.write(0, &bytes[..bytes.len().min(PAGE_SIZE)])?;
        Ok(mapping)
    };
    let mut grant_copy = grant_page[..grant_page.len().min(PAGE_SIZE)].to_vec();
    grant_copy.resize(PAGE_SIZE, 0);
    let channels: Arc<dyn EventChannels> = Arc::new(QuietChannels);
    let events = EventRing::attach(page(&[])?)?;
    let reporter = Reporter::new(label.clone(), events, channels.clone(), 2);
    let mut channel = StreamChannel::new(StreamParts {
        label,
        config,
        engine: stream,
        domid: 1,
        grants: Arc::new(SamePageGrants { page: grant_copy }),
        ring: BackRing::attach(page(ring_page)?)?,
        req_port: 1,
        channels,
        reporter,
    });
    // One step, as the device's loop takes after a kick: every request answered, up to a
    // WRITE or READ that must wait for the endpoint, which parks (and goes with the
    // channel: no fuzz input can make this wait).
    channel.step().map(drop)
}
