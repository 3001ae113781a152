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
    }
    Ok(())
}

/// One object per line, for grep and jq.
fn serde_json_line<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|error| format!("(unprintable: {error})"))
}
