//! `paravox play`: a WAV file through one engine stream, like aplay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use paravox_engine::{Direction, Engine, Stream, StreamSpec, Transport};
use paravox_host_audio::wav::WavReader;
use paravox_pcm::HwParams;
use tracing::info;

use crate::cli::PlayArgs;
use crate::{signals, usage};

/// How much audio the stream's ring holds.
const BUFFER_SECONDS: f64 = 0.5;

pub fn run(args: PlayArgs) -> Result<()> {
    let mut reader = WavReader::open(&args.file)
        .map_err(|error| usage(format!("{}: {error}", args.file.display())))?;
    let info = reader.info();
    let shutdown = signals::block_and_watch();
    let engine = Engine::new();
    paravox_control::endpoint::open(&engine, "play", &args.to, Direction::Playback)
        .map_err(crate::control_error)?;
    let stream = local_stream(&engine, Direction::Playback, "play", "play")?;
    let frame_bytes = info.frame_bytes();
    let params = stream_params(info.format, info.rate, info.channels, frame_bytes)?;
    stream
        .set_params(params)
        .map_err(|error| usage(format!("{}: {error}", args.file.display())))?;
    stream.set_volume_db(args.volume);
    if !args.plugin.is_empty() {
        let effects = args
            .plugin
            .iter()
            .map(|spec| crate::plugin::effect_from_spec(spec))
            .collect::<Result<Vec<_>>>()?;
        stream.set_plugins(Some(paravox_engine::plugin::ChainPlugins {
            effects,
            ..Default::default()
        }))?;
    }
    stream.prepare()?;

    let started = Instant::now();
    let mut chunk = vec![0u8; params.buffer_bytes as usize];
    let mut total: u64 = 0;
    let mut running = false;
    'feed: loop {
        let n = reader
            .read_bytes(&mut chunk)
            .context("reading the WAV file")?;
        let whole = n - n % frame_bytes as usize;
        if whole == 0 {
            break;
        }
        let mut pending = &chunk[..whole];
        while !pending.is_empty() {
            if shutdown.try_recv().is_ok() {
                info!("interrupted");
                break 'feed;
            }
            let written = stream.write(pending);
            pending = &pending[written..];
            total += written as u64;
            if !pending.is_empty() {
                // The ring is full: start (the buffer is primed, as aplay does) and wait
                // for the endpoint to play a period.
                if !running {
                    stream.start()?;
                    running = true;
                }
                let target = stream.position_bytes() + u64::from(params.period_bytes);
                stream.wait_position(target, Duration::from_secs(5));
            }
        }
    }
    if !running && total > 0 {
        stream.start()?;
    }
    stream.drain();
    wait_until_played(&stream, total, &shutdown)?;
    let xruns = stream.xruns();
    stream.release()?;
    engine.shutdown();
    let seconds = total as f64 / f64::from(frame_bytes) / f64::from(info.rate);
    info!(
        frames = total / u64::from(frame_bytes),
        audio_seconds = format!("{seconds:.3}"),
        wall_seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
        xruns,
        "played"
    );
    Ok(())
}

fn wait_until_played(
    stream: &Stream,
    total: u64,
    shutdown: &std::sync::mpsc::Receiver<i32>,
) -> Result<()> {
    while stream.position_bytes() < total {
        if shutdown.try_recv().is_ok() {
            return Ok(());
        }
        let before = stream.position_bytes();
        stream.wait_position(total, Duration::from_millis(200));
        if stream.position_bytes() == before && !stream.shared().is_running() {
            bail!("the stream stopped before the end of the file");
        }
    }
    Ok(())
}

/// A stream on a local card that accepts anything the engine can convert.
pub fn local_stream(
    engine: &Engine,
    direction: Direction,
    card: &str,
    route: &str,
) -> Result<Arc<Stream>> {
    let card = engine.create_card(card, Transport::Local)?;
    Ok(engine.create_stream(
        card.id(),
        StreamSpec {
            name: "main".into(),
            direction,
            constraints: paravox_pcm::HwConstraints {
                formats: paravox_pcm::FormatSet::convertible(),
                rates: paravox_pcm::RateSet::new(&paravox_pcm::VIRTIO_RATES)?,
                channels: paravox_pcm::Interval::new(1, paravox_engine::MAX_CHANNELS as u32)?,
                buffer_frames: paravox_pcm::Interval::new(1, 1 << 22)?,
                period_frames: paravox_pcm::Interval::new(1, 1 << 20)?,
            },
            route: Some(route.to_owned()),
        },
    )?)
}

/// Half a second of buffer in quarter-buffer periods.
pub fn stream_params(
    format: paravox_pcm::Format,
    rate: u32,
    channels: u32,
    frame_bytes: u32,
) -> Result<HwParams> {
    let period_frames = ((f64::from(rate) * BUFFER_SECONDS / 4.0) as u32).max(1);
    Ok(HwParams {
        format,
        rate,
        channels,
        buffer_bytes: period_frames
            .checked_mul(4 * frame_bytes)
            .ok_or_else(|| usage("the file's frames are too large"))?,
        period_bytes: period_frames * frame_bytes,
    })
}
