//! A guest that gets everything wrong: every malformed request class is answered with the
//! protocol's status (or returned, when there is nowhere to write one), nothing hangs, and
//! afterwards the same connection still plays audio byte-exact.

mod support;

use std::time::Duration;

use paravox_virtio_snd::CardTopology;
use support::driver::TIMEOUT;
use support::signal::{find_frames, tone_s16_stereo};
use support::spec::{self, code, format, rate, size};
use support::virtqueue::{Segment, Used};
use support::{Driver, Host, Playback, SetParams, queue, status};
use vm_memory::GuestAddress;

/// Posts a hand-made chain and waits for it to come back.
fn round_trip(driver: &mut Driver, queue: u16, segments: &[Segment]) -> Used {
    let head = driver.post_raw(queue, segments);
    let used = driver
        .wait_raw(queue, TIMEOUT)
        .unwrap_or_else(|| panic!("queue {queue}: a malformed chain was never returned"));
    assert_eq!(used.head, head);
    used
}

/// Guest memory holding `bytes`.
fn placed(driver: &mut Driver, bytes: &[u8]) -> GuestAddress {
    let at = driver.ram().alloc(bytes.len() as u64, 8);
    driver.ram().write(at, bytes);
    at
}

/// A TX/RX message built by hand: the xfer header `xfer`, then `middle`, then an 8-byte
/// status; returns the used entry and the status word written (if the device wrote one).
fn io_round_trip(driver: &mut Driver, queue: u16, xfer: &[u8], middle: &[Segment]) -> (Used, u32) {
    let header = placed(driver, xfer);
    let status_at = driver.ram().alloc(8, 8);
    let mut segments = vec![Segment::readable(header, xfer.len())];
    segments.extend_from_slice(middle);
    segments.push(Segment::writable(status_at, size::PCM_STATUS));
    let used = round_trip(driver, queue, &segments);
    let written = driver.ram().read(status_at, 4);
    (
        used,
        u32::from_le_bytes(written.try_into().expect("4 bytes")),
    )
}

fn set_params(stream_id: u32) -> SetParams {
    SetParams::s16_stereo_48k(stream_id, 4)
}

/// One malformed control request and the status it must get.
struct Case {
    what: &'static str,
    request: Vec<u8>,
    response_len: usize,
    expected: u32,
}

impl Case {
    /// With a response buffer of `len` bytes instead of a bare status.
    fn answer(self, len: usize) -> Case {
        Case {
            response_len: len,
            ..self
        }
    }
}

fn bad(what: &'static str, request: Vec<u8>) -> Case {
    Case {
        what,
        request,
        response_len: 4,
        expected: status::BAD_MSG,
    }
}

fn not_supp(what: &'static str, request: Vec<u8>) -> Case {
    Case {
        what,
        request,
        response_len: 4,
        expected: status::NOT_SUPP,
    }
}

fn info(code: u32, start_id: u32, count: u32, item_size: u32) -> Vec<u8> {
    spec::query_info(code, start_id, count, item_size)
}

fn ctl(code: u32, control_id: u32) -> Vec<u8> {
    spec::ctl_hdr(code, control_id)
}

#[test]
fn every_malformed_request_gets_its_status_and_the_device_keeps_serving() {
    // With controls, so that malformed control requests reach the control code.
    let host = Host::new().wav_output().serve(CardTopology {
        controls: true,
        budget: None,
        ..CardTopology::quick_start()
    });
    let mut driver = Driver::connect(host.socket());
    driver.post_event_buffers(4);
    let streams = driver.config().streams;
    let params = set_params(0);
    // One line per case reads as a table.
    #[rustfmt::skip]
    let cases = [
        bad("a truncated request (2 bytes)", vec![0x00, 0x01]),
        bad("an empty request", vec![]),
        not_supp("an unknown code", spec::pcm_hdr(0x7777, 0)),
        bad("a truncated SET_PARAMS", params.encode()[..12].to_vec()),
        bad("PREPARE past the last stream", spec::pcm_hdr(code::PCM_PREPARE, streams)),
        bad("START of stream u32::MAX", spec::pcm_hdr(code::PCM_START, u32::MAX)),
        bad("SET_PARAMS past the last stream", set_params(streams).encode()),
        bad("PCM_INFO with count u32::MAX", info(code::PCM_INFO, 1, u32::MAX, 32)),
        bad("PCM_INFO from start_id u32::MAX", info(code::PCM_INFO, u32::MAX, 2, 32)).answer(68),
        bad("PCM_INFO past the last stream", info(code::PCM_INFO, 1, 2, 32)).answer(68),
        bad("PCM_INFO with a wrong item size", info(code::PCM_INFO, 0, 2, 16)).answer(36),
        bad("JACK_INFO with a wrong item size", info(code::JACK_INFO, 0, 1, 32)).answer(36),
        bad("CTL_INFO of no items past the end", info(code::CTL_INFO, 5, 0, 96)),
        bad("PCM_INFO into a response too small", info(code::PCM_INFO, 0, 2, 32)).answer(36),
        bad("CTL_TLV_READ into a response too small", ctl(code::CTL_TLV_READ, 0)).answer(8),
        not_supp("SET_PARAMS of IEC958 subframes", SetParams { format: format::IEC958_SUBFRAME, ..params }.encode()),
        not_supp("SET_PARAMS of format 200", SetParams { format: 200, ..params }.encode()),
        not_supp("SET_PARAMS of an undefined rate", SetParams { rate: rate::UNDEFINED, ..params }.encode()),
        not_supp("SET_PARAMS of 3 channels (stereo stream)", SetParams { channels: 3, ..params }.encode()),
        not_supp("SET_PARAMS of a feature not offered", SetParams { features: 1, ..params }.encode()),
        bad("SET_PARAMS of a partial last period", SetParams { buffer_bytes: 4 * 1920 + 4, ..params }.encode()),
        bad("SET_PARAMS of period 0", SetParams { period_bytes: 0, ..params }.encode()),
        bad("SET_PARAMS of partial frames", SetParams { period_bytes: 1922, buffer_bytes: 4 * 1922, ..params }.encode()),
        bad("START without parameters", spec::pcm_hdr(code::PCM_START, 0)),
        bad("STOP without parameters", spec::pcm_hdr(code::PCM_STOP, 0)),
        bad("PREPARE without parameters", spec::pcm_hdr(code::PCM_PREPARE, 0)),
        bad("CTL_WRITE of volume 241", spec::ctl_write(0, 241)),
        bad("CTL_WRITE of switch 2", spec::ctl_write(1, 2)),
        bad("CTL_WRITE past the last control", spec::ctl_write(4, 0)),
        bad("CTL_WRITE without a value", ctl(code::CTL_WRITE, 0)),
        bad("CTL_READ past the last control", ctl(code::CTL_READ, 4)).answer(4 + size::CTL_VALUE),
        bad("CTL_ENUM_ITEMS of an integer control", ctl(code::CTL_ENUM_ITEMS, 0)).answer(68),
        bad("CTL_TLV_READ of a switch", ctl(code::CTL_TLV_READ, 1)).answer(68),
    ];
    for case in cases {
        let got = spec::response_status(&driver.control(&case.request, case.response_len));
        let (what, expected) = (case.what, case.expected);
        assert_eq!(
            got,
            expected,
            "{what}: {} instead of {}",
            status::name(got),
            status::name(expected)
        );
    }
    assert_eq!(
        driver.ctl_read(0),
        (status::OK, Some(240)),
        "refused writes changed nothing"
    );

    // START before PREPARE, with parameters set.
    assert_eq!(driver.set_params(&set_params(0)), status::OK);
    assert_eq!(
        driver.start(0),
        status::BAD_MSG,
        "START of a configured, unprepared stream"
    );

    // Control chains the device cannot answer in the normal way still come back.
    let request = placed(&mut driver, &spec::pcm_hdr(code::PCM_STOP, 0));
    let used = round_trip(
        &mut driver,
        queue::CONTROL,
        &[Segment::readable(request, 8)],
    );
    assert_eq!(
        used.len, 0,
        "a request without a response buffer: nothing written"
    );
    let response = driver.ram().alloc(4, 8);
    let outside = driver.ram().end();
    let used = round_trip(
        &mut driver,
        queue::CONTROL,
        &[
            Segment::readable(outside, 8),
            Segment::writable(response, 4),
        ],
    );
    assert_eq!(used.len, 4, "a request outside guest memory is answered");
    assert_eq!(
        driver.ram().read(response, 4),
        status::BAD_MSG.to_le_bytes()
    );
    let response = driver.ram().alloc(4, 8);
    let used = round_trip(
        &mut driver,
        queue::CONTROL,
        &[
            Segment::writable(response, 4),
            Segment::readable(request, 8),
        ],
    );
    assert!(
        used.len == 0 || driver.ram().read(response, 4) == status::BAD_MSG.to_le_bytes(),
        "a readable descriptor after a writable one: returned unanswered or with BAD_MSG"
    );

    // An event buffer too small for an event is given back at once.
    let small = driver.ram().alloc(4, 8);
    let used = round_trip(&mut driver, queue::EVENT, &[Segment::writable(small, 4)]);
    assert_eq!(used.len, 0);

    // I/O messages no stream can take are completed with an error, not held.
    let period = vec![0u8; spec::PERIOD_10MS_BYTES as usize];
    let pcm = placed(&mut driver, &period);
    let pcm_segment = [Segment::readable(pcm, period.len())];
    let refused = [status::BAD_MSG, status::IO_ERR];
    // (Framing is free: a 2-byte first descriptor followed by PCM is a valid header, so
    // the short-header case carries nothing else readable.)
    let io_cases: Vec<(&str, Vec<u8>, &[Segment], u32)> = vec![
        (
            "TX before PREPARE",
            0u32.to_le_bytes().to_vec(),
            &pcm_segment,
            status::IO_ERR,
        ),
        (
            "TX for the capture stream",
            1u32.to_le_bytes().to_vec(),
            &pcm_segment,
            0,
        ),
        (
            "TX for a stream past the last",
            streams.to_le_bytes().to_vec(),
            &pcm_segment,
            status::BAD_MSG,
        ),
        (
            "TX of 2 readable bytes in all",
            vec![0, 0],
            &[],
            status::BAD_MSG,
        ),
    ];
    for (what, xfer, middle, expected) in io_cases {
        let (used, got) = io_round_trip(&mut driver, queue::TX, &xfer, middle);
        assert_eq!(used.len, 8, "{what}: the status is written");
        if expected == 0 {
            assert!(refused.contains(&got), "{what}: {}", status::name(got));
        } else {
            assert_eq!(
                got,
                expected,
                "{what}: {} instead of {}",
                status::name(got),
                status::name(expected)
            );
        }
    }
    let rx_space = driver.ram().alloc(period.len() as u64, 8);
    let (used, got) = io_round_trip(
        &mut driver,
        queue::RX,
        &0u32.to_le_bytes(),
        &[Segment::writable(rx_space, period.len())],
    );
    assert!(
        refused.contains(&got),
        "RX for the playback stream: {}",
        status::name(got)
    );
    assert_eq!(
        used.len, 8,
        "RX refused: nothing captured, the status written"
    );

    // A running stream refuses to be reconfigured; then messages with bad descriptors.
    assert_eq!(driver.prepare(0), status::OK);
    assert_eq!(driver.start(0), status::OK);
    assert_eq!(
        driver.start(0),
        status::BAD_MSG,
        "START of a running stream"
    );
    assert_eq!(
        driver.set_params(&params),
        status::BAD_MSG,
        "SET_PARAMS of a running stream"
    );
    assert_eq!(
        driver.prepare(0),
        status::BAD_MSG,
        "PREPARE of a running stream"
    );
    let header = placed(&mut driver, &0u32.to_le_bytes());
    let used = round_trip(
        &mut driver,
        queue::TX,
        &[
            Segment::readable(header, 4),
            pcm_segment[0],
            Segment::writable(outside, 8),
        ],
    );
    assert_eq!(
        used.len, 0,
        "a status outside guest memory: returned, nothing written"
    );

    let status_at = driver.ram().alloc(8, 8);
    let used = round_trip(
        &mut driver,
        queue::TX,
        &[
            Segment::readable(header, 4),
            Segment::writable(status_at, 8),
            pcm_segment[0],
        ],
    );
    assert!(
        used.len == 0 || driver.ram().read(status_at, 4) == status::BAD_MSG.to_le_bytes(),
        "a TX chain with readable PCM after the writable status: returned unanswered or BAD_MSG"
    );
    assert_eq!(driver.stop(0), status::OK);
    assert_eq!(driver.release(0), status::OK);
    assert!(
        driver
            .wait_raw(queue::TX, Duration::from_millis(200))
            .is_none(),
        "no stray completions"
    );

    // After all that, the same connection plays byte-exact.
    let params = set_params(0);
    driver.configure(&params);
    let tone = tone_s16_stereo(440.0, 0.5, 0.5);
    let mut playback = Playback::new(&params, &tone);
    playback.fill(&mut driver);
    assert_eq!(driver.start(0), status::OK);
    playback.run(&mut driver);
    assert!(
        playback
            .completions
            .iter()
            .all(|c| c.status == status::OK && c.in_order)
    );
    assert_eq!(driver.stop(0), status::OK);
    assert_eq!(driver.release(0), status::OK);
    assert!(
        find_frames(&host.wav_data(), &tone).is_some(),
        "the tone reached the file intact"
    );
}

/// Bytes a message claims outside guest memory can be neither played nor captured: the
/// message must fail, not complete as if its audio had moved.
#[test]
fn tx_pcm_outside_guest_memory_is_refused_not_reported_played() {
    let host = Host::new().null_output().serve(CardTopology::quick_start());
    let mut driver = Driver::connect(host.socket());
    driver.configure(&set_params(0));
    assert_eq!(driver.start(0), status::OK);
    let outside = driver.ram().end();
    let (used, got) = io_round_trip(
        &mut driver,
        queue::TX,
        &0u32.to_le_bytes(),
        &[Segment::readable(outside, spec::PERIOD_10MS_BYTES as usize)],
    );
    assert_eq!(used.len, 8, "the status is written");
    assert!(
        [status::BAD_MSG, status::IO_ERR].contains(&got),
        "a period outside guest memory completed with {}: the guest believes it was played",
        status::name(got)
    );
    assert_eq!(
        host.stream(0).transport_bytes(),
        0,
        "nothing was taken from it"
    );
}

#[test]
fn rx_pcm_outside_guest_memory_is_refused_not_reported_captured() {
    let host = Host::new()
        .null_output()
        .tone_input(440)
        .serve(CardTopology::quick_start());
    let mut driver = Driver::connect(host.socket());
    driver.configure(&set_params(1));
    assert_eq!(driver.start(1), status::OK);
    let outside = driver.ram().end();
    let (used, got) = io_round_trip(
        &mut driver,
        queue::RX,
        &1u32.to_le_bytes(),
        &[Segment::writable(outside, spec::PERIOD_10MS_BYTES as usize)],
    );
    assert!(
        got != status::OK || used.len == 8,
        "a period outside guest memory came back OK claiming {} bytes captured",
        used.len.saturating_sub(8)
    );
    assert!(
        [status::BAD_MSG, status::IO_ERR].contains(&got),
        "a period outside guest memory completed with {} (used length {})",
        status::name(got),
        used.len
    );
    assert_eq!(driver.stop(1), status::OK);
}
