//! `paravox record`: one engine capture stream into a WAV file, like arecord.

use std::time::Duration;

use anyhow::{Context, Result};
use paravox_engine::{Direction, Engine};
use paravox_host_audio::wav::WavWriter;
use paravox_pcm::Format;
use tracing::info;

use crate::cli::RecordArgs;
use crate::play::{local_stream, stream_params};
use crate::{signals, usage};

pub fn run(args: RecordArgs) -> Result<()> {
    let format = Format::parse(&args.format).ok_or_else(|| {
        usage(format!(
            "unknown format '{}': use e.g. s16_le, s24_3le, s32_le, float_le",
            args.format
        ))
    })?;
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 86_400.0) {
        return Err(usage(format!(
            "--seconds {} must be more than 0 and at most 86400",
            args.seconds
        )));
    }
    let frame_bytes = paravox_pcm::frame_bytes(format, args.channels)
        .map_err(|error| usage(error.to_string()))?;
    let shutdown = signals::block_and_watch();
    let engine = Engine::new();
    paravox_control::endpoint::open(&engine, "record", &args.from, Direction::Capture)
        .map_err(crate::control_error)?;
    let stream = local_stream(&engine, Direction::Capture, "record", "record")?;
    let params = stream_params(format, args.rate, args.channels, frame_bytes)?;
    stream
        .set_params(params)
        .map_err(|error| usage(error.to_string()))?;
    let mut writer = WavWriter::create(&args.file, format, args.rate, args.channels)
        .map_err(|error| usage(format!("{}: {error}", args.file.display())))?;
    let total = (args.seconds * f64::from(args.rate)).round() as u64 * u64::from(frame_bytes);
    stream.prepare()?;
    stream.start()?;
    let mut buffer = vec![0u8; params.buffer_bytes as usize];
    let mut received: u64 = 0;
    while received < total {
        if shutdown.try_recv().is_ok() {
            info!("interrupted");
            break;
        }
        let want = (total - received).min(buffer.len() as u64) as usize;
        let n = stream.read(&mut buffer[..want]);
        if n == 0 {
            let target =
                stream.transport_bytes() + u64::from(params.period_bytes).min(total - received);
            stream.wait_position(target, Duration::from_secs(5));
            continue;
        }
        writer
            .write_bytes(&buffer[..n])
            .context("writing the WAV file")?;
        received += n as u64;
    }
    let xruns = stream.xruns();
    stream.release()?;
    engine.shutdown();
    writer.finalize().context("finishing the WAV file")?;
    info!(
        frames = received / u64::from(frame_bytes),
        seconds = format!("{:.3}", received as f64 / f64::from(frame_bytes) / f64::from(args.rate)),
        xruns,
        file = %args.file.display(),
        "recorded"
    );
    Ok(())
}
