//! `cargo xtask run [-- ARGS]`: builds the daemon in release mode and replaces this
//! process with `paravox serve ARGS`, so signals such as Ctrl-C reach the daemon directly.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cmd, prereqs};

const PACKAGE: &str = "paravox";

pub fn run(args: &[String]) -> Result<()> {
    prereqs::ensure_prereqs()?;
    let workspace = Workspace::read()?;
    if workspace.has_package(PACKAGE) {
        cmd::run(&mut cmd::cargo([
            "build",
            "--release",
            "--package",
            PACKAGE,
        ]))?;
    } else {
        println!("package `{PACKAGE}` is not in the workspace yet: building the workspace instead");
        cmd::run(&mut cmd::cargo(["build", "--release", "--workspace"]))?;
    }

    let binary = workspace.target_directory.join("release").join(PACKAGE);
    if !binary.is_file() {
        bail!(
            "{} was not built, so there is nothing to run",
            binary.display()
        );
    }
    let mut daemon = Command::new(&binary);
    daemon.arg("serve").args(args);
    println!("$ {}", cmd::display(&daemon));
    // `exec` only returns on failure.
    let error = daemon.exec();
    Err(error).with_context(|| format!("could not start {}", binary.display()))
}

/// What `cargo metadata --no-deps` says about the workspace.
#[derive(Debug)]
struct Workspace {
    package_names: Vec<String>,
    target_directory: PathBuf,
}

impl Workspace {
    fn read() -> Result<Self> {
        let output = cmd::output(&mut cmd::cargo([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
        ]))?;
        let metadata: Value =
            serde_json::from_str(&output).context("`cargo metadata` printed invalid JSON")?;
        let package_names = metadata["packages"]
            .as_array()
            .context("`cargo metadata` has no packages")?
            .iter()
            .filter_map(|package| package["name"].as_str())
            .map(str::to_owned)
            .collect();
        // Honours CARGO_TARGET_DIR and build.target-dir, unlike a hard-coded `target/`.
        let target_directory = metadata["target_directory"]
            .as_str()
            .context("`cargo metadata` has no target_directory")?
            .into();
        Ok(Self {
            package_names,
            target_directory,
        })
    }

    fn has_package(&self, name: &str) -> bool {
        self.package_names.iter().any(|package| package == name)
    }
}
