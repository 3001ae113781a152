//! Writes the seed corpus, `fuzz/corpus/<target>/<name>`: requests laid out as the real
//! guest drivers send them (Linux's `virtio_snd` and `xen-snd-front`), the e2e Xen
//! card's XenStore configuration, the default config file, the shipped plugins and
//! the API tests' bodies.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml -p paravox-fuzz-seeds -- [FUZZ_DIR]`

use std::fs;
use std::path::{Path, PathBuf};

use paravox_fuzz_seeds::sndif_ring;
use paravox_fuzz_seeds::virtio_queue::Builder;
use paravox_pcm::{Format, rate_from_virtio};
use paravox_sndif::backend::{FRONTEND_TOKEN, ROOT_TOKEN};
use paravox_sndif::wire::{
    HwParamBlock, OpenRequest, Request, RwRequest, TriggerKind, WireRange, encode_request,
};
use paravox_sndif::xenstore::wire::{Message, Op, nul_terminated};
use paravox_virtio_snd::wire::{
    self, CtlHeader, PcmHeader, PcmSetParams, PcmXfer, QueryInfo, QueueIndex, RequestCode,
};
use vm_memory::ByteValued;

type Seeds = Vec<(&'static str, Vec<u8>)>;

fn main() -> std::io::Result<()> {
    let fuzz_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let root = fuzz_dir.join("..");
    let targets: Vec<(&str, Seeds)> = vec![
        ("virtio_request", virtio_requests()),
        ("virtio_queue", virtio_queues()),
        ("sndif_request", sndif_requests()),
        ("sndif_ring", sndif_rings()),
        ("xenstore_config", xenstore_configs()),
        ("xenstore_watch", xenstore_watches()),
        ("xenstore_reply", xenstore_replies()),
        ("plugin_module", plugin_modules(&root)),
        ("plugin_manifest", plugin_manifests(&root)),
        ("config", configs(&root)),
        ("api_body", api_bodies()),
    ];
    for (target, seeds) in targets {
        let dir = fuzz_dir.join("corpus").join(target);
        fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}

// ----- virtio-snd, as Linux's virtio_snd driver sends it --------------------------------

fn virtio_format_s16() -> u8 {
    Format::S16Le.to_virtio().unwrap_or(5)
}

fn virtio_rate(rate: u32) -> u8 {
    (0..=u8::MAX)
        .find(|&index| rate_from_virtio(index) == Some(rate))
        .unwrap_or(7)
}

fn query(request_code: RequestCode, count: u32, size: usize) -> Vec<u8> {
    QueryInfo {
        hdr: request_code.into(),
        start_id: 0.into(),
        count: count.into(),
        size: (size as u32).into(),
    }
    .as_slice()
    .to_vec()
}

fn pcm(request_code: RequestCode, stream_id: u32) -> Vec<u8> {
    PcmHeader {
        hdr: request_code.into(),
        stream_id: stream_id.into(),
    }
    .as_slice()
    .to_vec()
}

/// S16 stereo 48 kHz, 4 periods of 1024 frames: what ALSA's defaults end up asking.
fn set_params(stream_id: u32) -> Vec<u8> {
    PcmSetParams {
        hdr: PcmHeader {
            hdr: RequestCode::PcmSetParams.into(),
            stream_id: stream_id.into(),
        },
        buffer_bytes: (4 * 4096).into(),
        period_bytes: 4096.into(),
        features: 0.into(),
        channels: 2,
        format: virtio_format_s16(),
        rate: virtio_rate(48_000),
        padding: 0,
    }
    .as_slice()
    .to_vec()
}

fn ctl(request_code: RequestCode, control_id: u32) -> Vec<u8> {
    CtlHeader {
        hdr: request_code.into(),
        control_id: control_id.into(),
    }
    .as_slice()
    .to_vec()
}

fn virtio_requests() -> Seeds {
    vec![
        (
            "jack_info",
            query(RequestCode::JackInfo, 2, size_of::<wire::JackInfo>()),
        ),
        (
            "pcm_info",
            query(RequestCode::PcmInfo, 2, size_of::<wire::PcmInfo>()),
        ),
        (
            "chmap_info",
            query(RequestCode::ChmapInfo, 2, size_of::<wire::ChmapInfo>()),
        ),
        (
            "ctl_info",
            query(RequestCode::CtlInfo, 4, size_of::<wire::CtlInfo>()),
        ),
        ("set_params", set_params(0)),
        ("prepare", pcm(RequestCode::PcmPrepare, 0)),
        ("start", pcm(RequestCode::PcmStart, 0)),
        ("stop", pcm(RequestCode::PcmStop, 0)),
        ("release", pcm(RequestCode::PcmRelease, 0)),
        ("ctl_read", ctl(RequestCode::CtlRead, 0)),
        ("ctl_tlv_read", ctl(RequestCode::CtlTlvRead, 0)),
        ("ctl_write", {
            let mut bytes = ctl(RequestCode::CtlWrite, 0);
            bytes.extend_from_slice(&[0; wire::CTL_VALUE_SIZE]);
            bytes
        }),
    ]
}

/// A control request with room for the status and `answer` bytes of payload.
fn control(builder: &mut Builder, request: &[u8], answer: usize) {
    builder.chain(
        QueueIndex::Control.into(),
        &[(request, false), (&vec![0; 4 + answer], true)],
    );
}

/// A TX message: xfer header, `frames` S16 stereo frames of a ramp, status.
fn tx(builder: &mut Builder, stream_id: u32, frames: usize) {
    let xfer = PcmXfer {
        stream_id: stream_id.into(),
    };
    let audio: Vec<u8> = (0..frames * 4).map(|i| i as u8).collect();
    builder.chain(
        QueueIndex::Tx.into(),
        &[(xfer.as_slice(), false), (&audio, false), (&[0; 8], true)],
    );
}

fn virtio_queues() -> Seeds {
    let mut seeds = Seeds::new();
    let mut probe = Builder::default();
    control(
        &mut probe,
        &query(RequestCode::JackInfo, 2, size_of::<wire::JackInfo>()),
        48,
    );
    control(
        &mut probe,
        &query(RequestCode::PcmInfo, 2, size_of::<wire::PcmInfo>()),
        64,
    );
    control(
        &mut probe,
        &query(RequestCode::ChmapInfo, 2, size_of::<wire::ChmapInfo>()),
        48,
    );
    control(
        &mut probe,
        &query(RequestCode::CtlInfo, 4, size_of::<wire::CtlInfo>()),
        4 * 96,
    );
    probe.chain(QueueIndex::Event.into(), &[(&[0; 8], true)]);
    seeds.extend(probe.build().map(|input| ("probe", input)));

    let mut playback = Builder::default();
    control(&mut playback, &set_params(0), 0);
    control(&mut playback, &pcm(RequestCode::PcmPrepare, 0), 0);
    tx(&mut playback, 0, 256);
    control(&mut playback, &pcm(RequestCode::PcmStart, 0), 0);
    tx(&mut playback, 0, 256);
    control(&mut playback, &pcm(RequestCode::PcmStop, 0), 0);
    control(&mut playback, &pcm(RequestCode::PcmRelease, 0), 0);
    seeds.extend(playback.build().map(|input| ("playback", input)));

    let mut capture = Builder::default();
    control(&mut capture, &set_params(1), 0);
    control(&mut capture, &pcm(RequestCode::PcmPrepare, 1), 0);
    control(&mut capture, &pcm(RequestCode::PcmStart, 1), 0);
    let xfer = PcmXfer {
        stream_id: 1.into(),
    };
    capture.chain(
        QueueIndex::Rx.into(),
        &[
            (xfer.as_slice(), false),
            (&[0; 1024], true),
            (&[0; 8], true),
        ],
    );
    control(&mut capture, &pcm(RequestCode::PcmStop, 1), 0);
    control(&mut capture, &pcm(RequestCode::PcmRelease, 1), 0);
    seeds.extend(capture.build().map(|input| ("capture", input)));

    let mut controls = Builder::default();
    control(
        &mut controls,
        &ctl(RequestCode::CtlRead, 0),
        wire::CTL_VALUE_SIZE,
    );
    control(&mut controls, &ctl(RequestCode::CtlTlvRead, 0), 64);
    let mut write = ctl(RequestCode::CtlWrite, 1);
    write.extend_from_slice(&[1; wire::CTL_VALUE_SIZE]);
    control(&mut controls, &write, 0);
    controls.chain(QueueIndex::Event.into(), &[(&[0; 8], true)]);
    seeds.extend(controls.build().map(|input| ("controls", input)));
    seeds
}

// ----- sndif, as Linux's xen-snd-front sends it -----------------------------------------

const GREF_DIRECTORY: u32 = 20;

fn open() -> Request {
    Request::Open(OpenRequest {
        pcm_rate: 48_000,
        pcm_format: Format::S16Le.to_sndif().unwrap_or(3),
        pcm_channels: 2,
        reserved: 0,
        buffer_sz: 16 * 1024,
        gref_directory: GREF_DIRECTORY,
        period_sz: 4096,
    })
}

fn query_block() -> Request {
    let range = |min, max| WireRange { min, max };
    Request::HwParamQuery(HwParamBlock {
        formats: u64::MAX,
        rates: range(5512, 48_000),
        channels: range(1, 2),
        buffer: range(64, 64 * 1024),
        period: range(64, 64 * 1024),
    })
}

/// A stream's life as xen-snd-front drives it.
fn sndif_session(read: bool) -> Vec<Request> {
    let range = RwRequest {
        offset: 0,
        length: 4096,
    };
    vec![
        query_block(),
        open(),
        Request::Trigger(TriggerKind::Start),
        if read {
            Request::Read(range)
        } else {
            Request::Write(range)
        },
        Request::SetVolume(RwRequest {
            offset: 8192,
            length: 8,
        }),
        Request::Mute(RwRequest {
            offset: 8192,
            length: 8,
        }),
        Request::GetVolume(RwRequest {
            offset: 8192,
            length: 8,
        }),
        Request::Trigger(TriggerKind::Pause),
        Request::Trigger(TriggerKind::Resume),
        Request::Trigger(TriggerKind::Stop),
        Request::Close,
    ]
}

fn slots(requests: &[Request]) -> Vec<u8> {
    requests
        .iter()
        .enumerate()
        .flat_map(|(id, request)| encode_request(id as u16, request))
        .collect()
}

fn sndif_requests() -> Seeds {
    let mut seeds: Seeds = sndif_session(false)
        .iter()
        .zip([
            "hw_param_query",
            "open",
            "trigger_start",
            "write",
            "set_volume",
            "mute",
            "get_volume",
            "trigger_pause",
            "trigger_resume",
            "trigger_stop",
            "close",
        ])
        .map(|(request, name)| (name, encode_request(1, request).to_vec()))
        .collect();
    seeds.push(("session", slots(&sndif_session(false))));
    seeds
}

fn sndif_ring(direction: u8, requests: &[Request]) -> Vec<u8> {
    let mut input = vec![0u8; sndif_ring::GRANT_AT];
    input[0] = direction;
    let ring = &mut input[sndif_ring::RING_AT..sndif_ring::GRANT_AT];
    // req_prod: every request published; the other indexes start at 0.
    ring[0..4].copy_from_slice(&(requests.len() as u32).to_le_bytes());
    ring[4..8].copy_from_slice(&1u32.to_le_bytes());
    ring[12..16].copy_from_slice(&1u32.to_le_bytes());
    let entries = slots(requests);
    ring[64..64 + entries.len()].copy_from_slice(&entries);
    // The granted page: a one-page directory listing buffer pages 21, 22, 23, 24.
    let mut page = vec![0u8; sndif_ring::PAGE];
    for (slot, gref) in (21u32..25).enumerate() {
        page[4 + slot * 4..8 + slot * 4].copy_from_slice(&gref.to_le_bytes());
    }
    input.extend_from_slice(&page);
    input
}

fn sndif_rings() -> Seeds {
    vec![
        ("playback", sndif_ring(0, &sndif_session(false))),
        ("capture", sndif_ring(1, &sndif_session(true))),
    ]
}

// ----- XenStore -------------------------------------------------------------------------

/// The e2e Xen guest's card (`cargo xtask e2e xen`: `vsnd = [['CARD, short-name=paravox,
/// sample-rates=44100;48000, sample-formats=s16_le, channels-min=1, channels-max=2',
/// 'PCM, name=Main', 'STREAM, unique-id=pcm0p, type=P', 'STREAM, unique-id=pcm0c,
/// type=C']]`) as libxl writes it, with the rings xen-snd-front publishes.
fn e2e_card() -> String {
    let mut lines = vec![
        "short-name=paravox".to_owned(),
        "sample-rates=44100,48000".to_owned(),
        "sample-formats=s16_le".to_owned(),
        "channels-min=1".to_owned(),
        "channels-max=2".to_owned(),
        "0/name=Main".to_owned(),
    ];
    for (stream, (kind, id)) in [("p", "pcm0p"), ("c", "pcm0c")].into_iter().enumerate() {
        let at = format!("0/{stream}");
        lines.push(format!("{at}/type={kind}"));
        lines.push(format!("{at}/unique-id={id}"));
        for (field, value) in [
            ("ring-ref", 8 + stream * 2),
            ("event-channel", 10 + stream * 2),
            ("evt-ring-ref", 9 + stream * 2),
            ("evt-event-channel", 11 + stream * 2),
        ] {
            lines.push(format!("{at}/{field}={value}"));
        }
    }
    lines.join("\n") + "\n"
}

fn xenstore_configs() -> Seeds {
    let e2e = e2e_card();
    let narrowed =
        e2e.clone() + "0/0/sample-rates=48000\n0/0/buffer-size=65536\n0/1/channels-max=1\n";
    vec![
        ("e2e_card", e2e.into_bytes()),
        ("narrowed", narrowed.into_bytes()),
    ]
}

fn xenstore_watches() -> Seeds {
    vec![
        (
            "root",
            nul_terminated(&[
                b"/local/domain/0/backend/vsnd/1/0/state",
                ROOT_TOKEN.as_bytes(),
            ]),
        ),
        (
            "frontend",
            nul_terminated(&[
                b"/local/domain/1/device/vsnd/0/state",
                format!("{FRONTEND_TOKEN}1/0").as_bytes(),
            ]),
        ),
    ]
}

fn reply(op: Op, req_id: u32, payload: Vec<u8>) -> Vec<u8> {
    Message::new(op, req_id, 0, payload)
        .encode()
        .unwrap_or_default()
}

fn xenstore_replies() -> Seeds {
    let stream: Vec<u8> = [
        reply(Op::Watch, 1, b"OK\0".to_vec()),
        reply(
            Op::WatchEvent,
            0,
            nul_terminated(&[b"/local/domain/0/backend/vsnd", ROOT_TOKEN.as_bytes()]),
        ),
        reply(Op::Directory, 2, nul_terminated(&[b"1", b"2"])),
        reply(Op::Read, 3, b"4".to_vec()),
        reply(Op::GetPerms, 4, nul_terminated(&[b"n0", b"r1"])),
        reply(Op::TransactionStart, 5, b"17\0".to_vec()),
        reply(Op::Error, 6, b"EAGAIN\0".to_vec()),
        reply(Op::GetDomainPath, 7, b"/local/domain/1\0".to_vec()),
    ]
    .concat();
    vec![("session", stream)]
}

// ----- plugins, config, API -------------------------------------------------------------

const SHIPPED: [&str; 5] = ["channel_map", "convert", "gain", "mix", "resample"];

/// The shipped plugins as `cargo xtask test` builds them (empty until they are built).
fn shipped_wasm(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    SHIPPED
        .iter()
        .filter_map(|name| {
            let path = target.join(format!("wasm32-unknown-unknown/release/{name}.wasm"));
            fs::read(&path).ok().map(|bytes| (*name, bytes))
        })
        .collect()
}

fn plugin_modules(root: &Path) -> Seeds {
    shipped_wasm(root)
}

/// Each shipped plugin's manifest, found in its data section (`{"name":` to the brace
/// that closes it).
fn plugin_manifests(root: &Path) -> Seeds {
    shipped_wasm(root)
        .into_iter()
        .filter_map(|(name, wasm)| {
            let start = wasm.windows(8).position(|w| w == b"{\"name\":")?;
            let mut depth = 0usize;
            for (offset, &byte) in wasm[start..].iter().enumerate() {
                match byte {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some((name, wasm[start..=start + offset].to_vec()));
                        }
                    }
                    _ => {}
                }
            }
            None
        })
        .collect()
}

fn configs(root: &Path) -> Seeds {
    let mut seeds = Seeds::new();
    if let Ok(text) = fs::read(root.join("crates/paravox/src/default.toml")) {
        seeds.push(("default", text));
    }
    let full = r#"
[[output]]
name = "speakers"
spec = "alsa:default"
fallback = "wav:${state_dir}/output.wav"

[[input]]
name = "mic"
spec = "tone:440"

[defaults]
output = "speakers"
input = "mic"

[[virtio]]
name = "vm1"
socket = "${state_dir}/vm1.sock"
controls = true

[[virtio.stream]]
direction = "playback"
route = "speakers"
formats = ["s16_le", "float_le"]
rates = [44100, 48000]
channels = [1, 2]

[[virtio.stream]]
direction = "capture"
"#;
    seeds.push(("full", full.as_bytes().to_vec()));
    seeds
}

fn api_bodies() -> Seeds {
    let body = |kind: u8, json: &str| {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(json.as_bytes());
        bytes
    };
    vec![
        (
            "card",
            body(
                0,
                r#"{"name":"vm2","socket":"/run/paravox/vm2.sock","streams":[{"direction":"playback","route":"out","formats":["s16_le","float_le"],"rates":[44100,48000],"channels":[1,2]},{"name":"mic","direction":"capture"}]}"#,
            ),
        ),
        (
            "card_minimal",
            body(0, r#"{"name":"vm3","socket":"vm3.sock","controls":false}"#),
        ),
        (
            "endpoint",
            body(
                1,
                r#"{"name":"rec","direction":"playback","spec":"wav:take.wav"}"#,
            ),
        ),
        (
            "endpoint_null",
            body(
                1,
                r#"{"name":"spare","direction":"playback","spec":"null"}"#,
            ),
        ),
        ("patch_volume", body(2, r#"{"volume_db":-6.5}"#)),
        (
            "patch_channels",
            body(2, r#"{"volume_db":[-3,-12],"muted":true}"#),
        ),
        ("patch_route", body(2, r#"{"route":"out"}"#)),
        ("patch_unroute", body(2, r#"{"route":null}"#)),
    ]
}
