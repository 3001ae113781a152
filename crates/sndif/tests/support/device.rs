//! Frontend domains and devices, and the toolstack's XenStore writes.

use super::*;

/// One frontend domain: its grant table and hub connection.
pub struct FrontDomain {
    pub domid: u32,
    pub table: Arc<GrantTable>,
    pub hub: HubLink,
}

impl FrontDomain {
    pub fn new(host: &SharedMemoryHost, domid: u32) -> Arc<FrontDomain> {
        FrontDomain::connect(host.hub_path(), domid)
    }

    /// A domain on the hub at `hub` (another process's transport, e.g. `paravox serve
    /// --sndif-shm DIR`).
    pub fn connect(hub: &Path, domid: u32) -> Arc<FrontDomain> {
        FrontDomain::connect_with_pages(hub, domid, 4096)
    }

    /// [`FrontDomain::connect`] with a grant table of `pages` pages.
    pub fn connect_with_pages(hub: &Path, domid: u32, pages: usize) -> Arc<FrontDomain> {
        let table = GrantTable::new(pages);
        let hub = HubLink::connect(hub, domid);
        assert_eq!(hub.register_table(&table), 0);
        Arc::new(FrontDomain { domid, table, hub })
    }
}

pub struct FrontDevice {
    pub domain: Arc<FrontDomain>,
    pub devid: u32,
    pub fe_path: String,
    pub be_path: String,
    pub xs: XsClient,
    watch: Mutex<Receiver<WatchEvent>>,
    layout: Vec<(u32, u32, Direction)>,
    pub streams: Vec<FrontStream>,
}

impl FrontDevice {
    /// Writes the device the way `xl` does (both directories in one transaction) and
    /// watches the backend's state, as the frontend's xenbus driver does.
    pub fn create(
        host: &SharedMemoryHost,
        domain: &Arc<FrontDomain>,
        devid: u32,
        card: &[(&str, &str)],
        layout: &[(u32, u32, Direction)],
    ) -> FrontDevice {
        FrontDevice::create_at(host.xenstore_path(), domain, devid, card, layout)
    }

    /// [`FrontDevice::create`] through the XenStore socket at `xenstore`.
    pub fn create_at(
        xenstore: &Path,
        domain: &Arc<FrontDomain>,
        devid: u32,
        card: &[(&str, &str)],
        layout: &[(u32, u32, Direction)],
    ) -> FrontDevice {
        let xs = XsClient::connect_socket(xenstore).unwrap();
        let domid = domain.domid;
        let fe_path = format!("/local/domain/{domid}/device/vsnd/{devid}");
        let be_path = format!("{BACKEND_ROOT}/{domid}/{devid}");
        loop {
            let tx = xs.transaction_start().unwrap();
            let mut nodes: Vec<(String, String)> = vec![
                (format!("{be_path}/frontend"), fe_path.clone()),
                (format!("{be_path}/frontend-id"), domid.to_string()),
                (format!("{be_path}/online"), "1".into()),
                (format!("{be_path}/state"), "1".into()),
                (format!("{fe_path}/backend"), be_path.clone()),
                (format!("{fe_path}/backend-id"), "0".into()),
                (format!("{fe_path}/state"), "1".into()),
            ];
            for (path, value) in card {
                nodes.push((format!("{fe_path}/{path}"), (*value).to_owned()));
            }
            for (pcm, index, direction) in layout {
                let kind = if *direction == Direction::Playback {
                    "p"
                } else {
                    "c"
                };
                nodes.push((format!("{fe_path}/{pcm}/{index}/type"), kind.into()));
            }
            for (path, value) in &nodes {
                xs.write(tx, path, value.as_bytes()).unwrap();
            }
            if xs.transaction_end(tx, true).unwrap() {
                break;
            }
        }
        let watch = xs.watch_events().unwrap();
        xs.watch(&format!("{be_path}/state"), "otherend").unwrap();
        FrontDevice {
            domain: domain.clone(),
            devid,
            fe_path,
            be_path,
            xs,
            watch: Mutex::new(watch),
            layout: layout.to_vec(),
            streams: Vec::new(),
        }
    }

    pub fn backend_state(&self) -> XenbusState {
        self.xs
            .read_string(NO_TX, &format!("{}/state", self.be_path))
            .unwrap()
            .map_or(XenbusState::Unknown, |s| XenbusState::parse(&s))
    }

    pub fn wait_backend_state(&self, wanted: XenbusState, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.backend_state() == wanted {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = lock(&self.watch).recv_timeout(left.min(Duration::from_millis(200)));
        }
    }

    pub fn set_state(&self, state: XenbusState) {
        self.xs
            .write(
                NO_TX,
                &format!("{}/state", self.fe_path),
                state.code().to_string().as_bytes(),
            )
            .unwrap();
    }

    /// `sndback_initwait` + `sndback_connect`: on backend InitWait allocate rings and
    /// channels, publish them in a transaction, go Initialised; on Connected go Connected.
    pub fn connect(&mut self) {
        self.publish();
        assert!(
            self.wait_backend_state(XenbusState::Connected, Duration::from_secs(10)),
            "backend never connected (it is {}; error: {:?})",
            self.backend_state(),
            self.backend_error()
        );
        self.set_state(XenbusState::Connected);
    }

    /// `sndback_initwait`: waits for InitWait, allocates and publishes the rings and
    /// channels, and goes Initialised.
    pub fn publish(&mut self) {
        assert!(
            self.wait_backend_state(XenbusState::InitWait, Duration::from_secs(10)),
            "backend never reached InitWait (it is {})",
            self.backend_state()
        );
        self.streams.clear();
        for &(pcm, index, direction) in &self.layout {
            let path = format!("{}/{pcm}/{index}", self.fe_path);
            self.streams.push(FrontStream::new(
                self.domain.table.clone(),
                &self.domain.hub,
                path,
                pcm,
                index,
                direction,
            ));
        }
        loop {
            let tx = self.xs.transaction_start().unwrap();
            for stream in &self.streams {
                for (field, value) in [
                    ("ring-ref", stream.ring_gref),
                    ("event-channel", stream.req.port),
                    ("evt-ring-ref", stream.evt_gref),
                    ("evt-event-channel", stream.evt.port),
                ] {
                    self.xs
                        .write(
                            tx,
                            &format!("{}/{field}", stream.path),
                            value.to_string().as_bytes(),
                        )
                        .unwrap();
                }
            }
            if self.xs.transaction_end(tx, true).unwrap() {
                break;
            }
        }
        self.set_state(XenbusState::Initialised);
    }

    pub fn stream(&self, pcm: u32, index: u32) -> &FrontStream {
        self.streams
            .iter()
            .find(|s| s.pcm == pcm && s.index == index)
            .expect("stream")
    }

    pub fn backend_error(&self) -> Option<String> {
        self.xs
            .read_string(NO_TX, &format!("{}/error", self.be_path))
            .unwrap()
    }
}
