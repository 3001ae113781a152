//! Builds the small C handler that routes libasound's error messages into the log
//! (`csrc/alsa_log.c`).

fn main() {
    println!("cargo:rerun-if-changed=csrc/alsa_log.c");
    let alsa = pkg_config_include("alsa");
    let mut build = cc::Build::new();
    build.file("csrc/alsa_log.c").warnings(true);
    for dir in alsa {
        build.include(dir);
    }
    build.compile("paravox_alsa_log");
}

/// The include directories `pkg-config` gives for `library` (none when it is not there:
/// the compiler's defaults then apply, and the alsa crate's own build reports a missing
/// library more clearly).
fn pkg_config_include(library: &str) -> Vec<String> {
    let Ok(output) = std::process::Command::new("pkg-config")
        .args(["--cflags-only-I", library])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-I").map(str::to_owned))
        .collect()
}
