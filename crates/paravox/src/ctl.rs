//! `paravox token` and `paravox ctl`: the API from a shell.

use anyhow::{Context, Result};
use paravox_api::client::Client;

use crate::cli::{CtlArgs, CtlCommand, TokenArgs};
use crate::serve::state_dir;

pub fn token(args: TokenArgs) -> Result<()> {
    let dir = state_dir(args.state_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let token = paravox_api::token::load_or_create(&dir)
        .with_context(|| format!("reading the token in {}", dir.display()))?;
    println!("{}", token.as_str());
    Ok(())
}

pub fn run(args: CtlArgs) -> Result<()> {
    let dir = state_dir(args.state_dir);
    let client = Client::from_state_dir(&args.url, &dir).with_context(|| {
        format!(
            "reading the API token in {} (see `paravox token`)",
            dir.display()
        )
    })?;
    let call = |what: &str| format!("{what} via {}", args.url);
    match args.command {
        CtlCommand::Cards => {
            for card in client.cards().with_context(|| call("listing cards"))? {
                println!("{}", serde_json_line(&card));
            }
        }
        CtlCommand::Streams => {
            for stream in client.streams().with_context(|| call("listing streams"))? {
                println!("{}", serde_json_line(&stream));
            }
        }
        CtlCommand::Endpoints => {
            for endpoint in client
                .endpoints()
                .with_context(|| call("listing endpoints"))?
            {
                println!("{}", serde_json_line(&endpoint));
            }
        }
        CtlCommand::SetVolume { stream, db } => {
            let view = client
                .set_volume(stream, db)
                .with_context(|| call("setting the volume"))?;
            println!("{}", serde_json_line(&view));
        }
        CtlCommand::Mute { stream, state } => {
            let view = client
                .mute(stream, state == "on")
                .with_context(|| call("muting"))?;
            println!("{}", serde_json_line(&view));
        }
        CtlCommand::Route { stream, endpoint } => {
            let target = (endpoint != "default").then_some(endpoint.as_str());
            let view = client
                .route(stream, target)
                .with_context(|| call("routing"))?;
            println!("{}", serde_json_line(&view));
        }
        CtlCommand::Monitors => {
            for monitor in client
                .monitors()
                .with_context(|| call("listing monitors"))?
            {
                println!("{}", serde_json_line(&monitor));
            }
        }
        CtlCommand::Listen {
            stream,
            endpoint,
            to,
            seconds,
        } => {
            let path = match (stream, endpoint) {
                (Some(id), _) => format!("/api/streams/{id}/listen"),
                (None, Some(name)) => format!("/api/endpoints/{name}/listen"),
                (None, None) => anyhow::bail!("say --stream ID or --endpoint NAME"),
            };
            let heard = listen(&client, &path, &to, seconds).with_context(|| call("listening"))?;
            eprintln!("{heard}");
        }
    }
    Ok(())
}

/// What `ctl listen` wrote.
struct Heard {
    target: String,
    path: std::path::PathBuf,
    rate: u32,
    channels: u32,
    frames: u64,
    dropped: u64,
    ended: Option<String>,
}

impl std::fmt::Display for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = |frames: u64| frames as f64 / f64::from(self.rate.max(1));
        write!(
            f,
            "wrote {:.2} s of {} ({} Hz, {} ch) to {}",
            seconds(self.frames),
            self.target,
            self.rate,
            self.channels,
            self.path.display()
        )?;
        if self.dropped > 0 {
            write!(
                f,
                "; {:.2} s the connection could not keep up with are silence",
                seconds(self.dropped)
            )?;
        }
        if let Some(reason) = &self.ended {
            write!(f, "; the server ended it: {reason}")?;
        }
        Ok(())
    }
}

/// Records the monitor at `path` into the WAV file `to`, for `seconds` or until the
/// server ends it.
fn listen(
    client: &Client,
    path: &str,
    to: &std::path::Path,
    seconds: Option<f64>,
) -> Result<Heard> {
    use tungstenite::Message;
    use tungstenite::client::IntoClientRequest;

    let mut request = client
        .websocket_url(path)
        .into_client_request()
        .context("the API's address")?;
    request.headers_mut().insert(
        "Authorization",
        client
            .authorization()
            .parse()
            .context("the token as a header")?,
    );
    let (mut socket, _) = tungstenite::connect(request).map_err(|error| match error {
        tungstenite::Error::Http(response) => anyhow::anyhow!(
            "refused with {}: {}",
            response.status(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
        ),
        other => anyhow::anyhow!(other),
    })?;
    let mut writer: Option<paravox_host_audio::wav::WavWriter> = None;
    let mut heard = Heard {
        target: path.to_owned(),
        path: to.to_path_buf(),
        rate: 0,
        channels: 0,
        frames: 0,
        dropped: 0,
        ended: None,
    };
    let mut next_frame = None;
    // Frames wanted, once the first message says the rate.
    let wanted = |rate: u32| seconds.map(|s| (s * f64::from(rate)) as u64);
    loop {
        if heard.rate > 0
            && wanted(heard.rate).is_some_and(|wanted| heard.frames + heard.dropped >= wanted)
        {
            break;
        }
        let message = match socket.read() {
            Ok(message) => message,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(error) => return Err(error.into()),
        };
        match message {
            Message::Text(text) => {
                let value: serde_json::Value =
                    serde_json::from_str(text.as_str()).unwrap_or_default();
                match value["type"].as_str() {
                    Some("listening") => {
                        heard.target = value["target"].as_str().unwrap_or(path).to_owned();
                    }
                    Some("ended") => {
                        heard.ended = value["reason"].as_str().map(str::to_owned);
                        break;
                    }
                    _ => {}
                }
            }
            Message::Binary(bytes) => {
                let Some(chunk) = MonitorMessage::parse(&bytes) else {
                    anyhow::bail!("the server sent a malformed audio message");
                };
                let writer = match writer.as_mut() {
                    Some(writer) => {
                        if (chunk.rate, chunk.channels) != (heard.rate, heard.channels) {
                            // A WAV file has one format: stop where the stream changed.
                            heard.ended = Some(format!(
                                "the format changed to {} Hz, {} ch",
                                chunk.rate, chunk.channels
                            ));
                            break;
                        }
                        writer
                    }
                    None => {
                        heard.rate = chunk.rate;
                        heard.channels = chunk.channels;
                        writer.insert(paravox_host_audio::wav::WavWriter::create(
                            to,
                            paravox_pcm::Format::S16Le,
                            chunk.rate,
                            chunk.channels,
                        )?)
                    }
                };
                let frame_bytes = 2 * chunk.channels as usize;
                if let Some(expected) = next_frame
                    && chunk.first_frame > expected
                {
                    // Dropped for this connection: silence keeps the file in real time.
                    let gap = chunk.first_frame - expected;
                    writer.write_bytes(&vec![0u8; gap as usize * frame_bytes])?;
                    heard.dropped += gap;
                }
                let mut samples = chunk.samples;
                if let Some(wanted) = wanted(heard.rate) {
                    let left = wanted.saturating_sub(heard.frames + heard.dropped);
                    samples = &samples[..samples.len().min(left as usize * frame_bytes)];
                }
                writer.write_bytes(samples)?;
                let frames = (samples.len() / frame_bytes) as u64;
                heard.frames += frames;
                next_frame = Some(chunk.first_frame + frames);
            }
            _ => {}
        }
    }
    if let Some(writer) = writer.as_mut() {
        writer.finalize()?;
    }
    let _ = socket.close(None);
    Ok(heard)
}

/// One binary monitor message in s16 (the default format).
struct MonitorMessage<'a> {
    rate: u32,
    channels: u32,
    first_frame: u64,
    samples: &'a [u8],
}

impl<'a> MonitorMessage<'a> {
    fn parse(bytes: &'a [u8]) -> Option<MonitorMessage<'a>> {
        let header = bytes.get(..16)?;
        let rate = u32::from_le_bytes(header[0..4].try_into().ok()?);
        let channels = u32::from(u16::from_le_bytes(header[4..6].try_into().ok()?));
        let format = u16::from_le_bytes(header[6..8].try_into().ok()?);
        let first_frame = u64::from_le_bytes(header[8..16].try_into().ok()?);
        let samples = &bytes[16..];
        let whole = channels > 0 && samples.len().is_multiple_of(2 * channels as usize);
        (format == 1 && rate > 0 && whole).then_some(MonitorMessage {
            rate,
            channels,
            first_frame,
            samples,
        })
    }
}

/// One object per line, for grep and jq.
fn serde_json_line<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|error| format!("(unprintable: {error})"))
}
