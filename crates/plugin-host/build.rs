//! Builds the shipped plugins (`plugins/`, a separate cargo workspace) for
//! `wasm32-unknown-unknown` with SIMD, so the host can embed them with `include_bytes!`.
//!
//! The nested cargo gets its own target directory under `OUT_DIR` (never the outer one,
//! whose lock the outer cargo holds) and a clean set of flags: the outer build's
//! `RUSTFLAGS` are for the host, not for wasm32.

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [&str; 5] = ["convert", "resample", "channel_map", "gain", "mix"];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("crates/plugin-host sits two levels below the workspace root")
        .to_owned();
    let plugins = root.join("plugins");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    for path in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", plugins.join(path).display());
    }
    for plugin in ["convert", "resample", "channel-map", "gain", "mix"] {
        println!(
            "cargo:rerun-if-changed={}",
            plugins.join(plugin).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            plugins.join(plugin).join("Cargo.toml").display()
        );
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("crates/plugin-sdk/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("crates/plugin-sdk/Cargo.toml").display()
    );

    let target_dir = out.join("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&plugins)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let status = command.status().unwrap_or_else(|error| {
        panic!(
            "could not run cargo to build the plugins in {}: {error}",
            plugins.display()
        )
    });
    if !status.success() {
        panic!(
            "building the plugins in {} for wasm32-unknown-unknown failed ({status}); \
             is the target installed? `rustup target add wasm32-unknown-unknown`",
            plugins.display()
        );
    }
    let built = target_dir.join("wasm32-unknown-unknown/release");
    let embedded = out.join("plugins");
    std::fs::create_dir_all(&embedded).expect("creating OUT_DIR/plugins");
    for plugin in PLUGINS {
        let from = built.join(format!("{plugin}.wasm"));
        std::fs::copy(&from, embedded.join(format!("{plugin}.wasm")))
            .unwrap_or_else(|error| panic!("{}: {error}", from.display()));
    }
}
