//! `paravox plugin add|list|remove` and plugin specs on the command line.
//!
//! Installed plugins live in `STATE_DIR/plugins/NAME.wasm`, named by their manifest. The
//! daemon checks that directory every second (a cheap `stat` of each file, no inotify)
//! and hot-swaps a changed plugin on every stream that uses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use paravox_engine::plugin::KernelFactory;
use paravox_plugin_host::shipped;

pub use paravox::plugins::{effect_from_spec, plugins_dir, runtime};

use crate::cli::{PluginArgs, PluginCommand};
use crate::usage;

pub fn run(args: PluginArgs) -> Result<()> {
    let state_dir = crate::serve::state_dir(args.state_dir);
    let dir = plugins_dir(&state_dir);
    match args.command {
        PluginCommand::Add { file } => {
            paravox_control::plugins::private_dir(&dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            let wasm =
                std::fs::read(&file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
            let plugin = runtime(Some(&state_dir))?
                .load(&wasm)
                .map_err(|error| usage(format!("{}: {error}", file.display())))?;
            let name = &plugin.manifest().name;
            let target = dir.join(format!("{name}.wasm"));
            let temporary = dir.join(format!(".{name}.wasm.tmp"));
            std::fs::write(&temporary, &wasm)
                .with_context(|| format!("writing {}", temporary.display()))?;
            std::fs::rename(&temporary, &target)
                .with_context(|| format!("installing {}", target.display()))?;
            println!(
                "installed {name} {} ({}) as {}",
                plugin.manifest().version,
                plugin.manifest().kind.name(),
                target.display()
            );
        }
        PluginCommand::List => {
            let runtime = runtime(Some(&state_dir))?;
            for (name, module) in shipped::SHIPPED {
                let plugin = runtime.load(module)?;
                let manifest = plugin.manifest();
                println!(
                    "{name:12} {:8} {:10} shipped    {}",
                    manifest.version,
                    manifest.kind.name(),
                    manifest.description
                );
            }
            for path in installed(&dir) {
                match runtime.load_file(&path) {
                    Ok(plugin) => {
                        let manifest = plugin.manifest();
                        println!(
                            "{:12} {:8} {:10} installed  {}",
                            manifest.name,
                            manifest.version,
                            manifest.kind.name(),
                            manifest.description
                        );
                    }
                    Err(error) => println!("{:12} refused: {error}", path.display()),
                }
            }
        }
        PluginCommand::Remove { name } => {
            let target = dir.join(format!("{name}.wasm"));
            std::fs::remove_file(&target).map_err(|error| {
                usage(format!(
                    "plugin '{name}' is not installed ({}: {error})",
                    target.display()
                ))
            })?;
            println!("removed {name}");
        }
    }
    Ok(())
}

/// The installed modules.
pub fn installed(dir: &Path) -> Vec<PathBuf> {
    paravox_control::plugins::installed_files(dir)
}

/// Serve: watches the plugins directory and hot-swaps a plugin whose file changed on
/// every stream and mixer that uses it. The thread sleeps in a read of the directory's
/// inotify descriptor until a file in it is written, moved in or touched; where inotify
/// is not available (or the directory is replaced) it looks once a second instead.
pub fn watch(engine: Arc<paravox_engine::Engine>, state_dir: PathBuf) -> Result<()> {
    let runtime = runtime(Some(&state_dir))?;
    let dir = plugins_dir(&state_dir);
    // Set up here, before the daemon's system-call filter applies.
    let mut events = DirEvents::watch(&dir);
    std::thread::Builder::new()
        .name("paravox-plugins".into())
        .spawn(move || {
            let mut seen: std::collections::BTreeMap<PathBuf, std::time::SystemTime> =
                Default::default();
            loop {
                for path in installed(&dir) {
                    let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
                        continue;
                    };
                    if seen.insert(path.clone(), modified) == Some(modified) {
                        continue;
                    }
                    match runtime.load_file(&path) {
                        Ok(plugin) => {
                            let factory: Arc<dyn KernelFactory> = plugin.clone();
                            match engine.replace_plugin(&factory) {
                                Ok(moved) => tracing::info!(plugin = plugin.manifest().name, version = plugin.manifest().version, moved, "plugin loaded"),
                                Err(error) => tracing::warn!(plugin = plugin.manifest().name, %error, "plugin swap failed"),
                            }
                        }
                        Err(error) => tracing::warn!(path = %path.display(), %error, "plugin refused"),
                    }
                }
                match events.as_ref().map(DirEvents::wait) {
                    Some(true) => {}
                    Some(false) => {
                        tracing::debug!(dir = %dir.display(), "plugins directory no longer watched; looking once a second");
                        events = None;
                    }
                    None => std::thread::sleep(std::time::Duration::from_secs(1)),
                }
            }
        })
        .context("starting the plugin watcher")?;
    Ok(())
}

/// An inotify descriptor watching one directory for files written, moved in or touched.
struct DirEvents(std::os::fd::OwnedFd);

impl DirEvents {
    const MASK: u32 = libc::IN_CLOSE_WRITE
        | libc::IN_MOVED_TO
        | libc::IN_ATTRIB
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF;

    /// `None` when inotify is not available or `dir` cannot be watched.
    fn watch(dir: &Path) -> Option<DirEvents> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: no pointers; the result is checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a descriptor just returned to us and owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: `fd` is open and `path` is a NUL-terminated string that outlives the call.
        let watch = unsafe {
            libc::inotify_add_watch(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                path.as_ptr(),
                Self::MASK,
            )
        };
        (watch >= 0).then_some(DirEvents(fd))
    }

    /// Blocks until something in the directory changed: true, so it is looked at again;
    /// false when the watch has ended (the directory was removed or moved) or failed.
    fn wait(&self) -> bool {
        let mut buffer = [0u8; 4096];
        loop {
            // SAFETY: `buffer` is writable for its whole length; the descriptor is open.
            let read = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&self.0),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            let Ok(read) = usize::try_from(read) else {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return false;
            };
            // Each event: wd (i32), mask (u32), cookie (u32), len (u32), then `len`
            // bytes of name.
            let mut at = 0;
            while let Some(header) = buffer.get(at..at + 16).filter(|_| at + 16 <= read) {
                let mask = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
                let len = u32::from_ne_bytes([header[12], header[13], header[14], header[15]]);
                if mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
                    return false;
                }
                at += 16 + len as usize;
            }
            return read > 0;
        }
    }
}

#[cfg(test)]
#[path = "../../engine/tests/support/mod.rs"]
mod support;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use paravox_engine::Direction;
    use paravox_engine::plugin::{ChainPlugins, EffectPlugin};
    use paravox_pcm::Format;

    use super::support::{engine_with_sink, format, prepared_stream, write_all};
    use super::*;

    const MANIFEST: &str = r#"{"name":"scale","version":"VERSION","kind":"effect","input_formats":["float_le"],"output_formats":["float_le"],"rates":[8000,192000],"input_channels":[1,18],"output_channels":[1,18]}"#;

    /// An effect called `scale` that multiplies by `factor` (version `version`).
    fn scale(version: &str, factor: f32) -> Vec<u8> {
        let manifest = MANIFEST.replace("VERSION", version).replace('"', "\\\"");
        let len = manifest.replace("\\\"", "\"").len();
        wat::parse_str(format!(
            r#"(module
  (memory (export "memory") 2)
  (data (i32.const 0) "{manifest}")
  (global $channels (mut i32) (i32.const 0))
  (global $output (mut i32) (i32.const 0))
  (func (export "paravox_abi_version") (result i32) (i32.const 1))
  (func (export "paravox_manifest") (result i64) (i64.const {len}))
  (func (export "paravox_init")
    (param i32 i32) (param $in_ch i32) (param i32 i32 i32) (param $max i32) (param i32)
    (result i32)
    (global.set $channels (local.get $in_ch))
    (global.set $output (i32.add (i32.const 4096)
      (i32.shl (i32.mul (local.get $max) (local.get $in_ch)) (i32.const 2))))
    (i32.const 0))
  (func (export "paravox_input_ptr") (param i32) (result i32) (i32.const 4096))
  (func (export "paravox_output_ptr") (result i32) (global.get $output))
  (func (export "paravox_set_param") (param i32 f32) (result i32) (i32.const -1))
  (func (export "paravox_process") (param $frames i32) (param i32) (result i32)
    (local $i i32) (local $n i32)
    (local.set $n (i32.shl (i32.mul (local.get $frames) (global.get $channels)) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (f32.store (i32.add (global.get $output) (local.get $i))
          (f32.mul (f32.load (i32.add (i32.const 4096) (local.get $i))) (f32.const {factor})))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next)))
    (local.get $frames)))"#
        ))
        .expect("valid WAT")
    }

    /// Installs `wasm` as `plugins/scale.wasm` the way `paravox plugin add` does.
    fn install(dir: &Path, wasm: &[u8]) {
        let temporary = dir.join(".scale.wasm.tmp");
        std::fs::write(&temporary, wasm).expect("write");
        std::fs::rename(&temporary, dir.join("scale.wasm")).expect("install");
    }

    #[test]
    fn a_new_version_in_the_plugins_dir_replaces_the_running_one_without_a_gap() {
        const PERIOD: usize = 480;
        let state = tempfile::tempdir().expect("state dir");
        let dir = plugins_dir(state.path());
        std::fs::create_dir_all(&dir).expect("plugins dir");
        install(&dir, &scale("1.0.0", 0.5));

        let (engine, recording) = engine_with_sink(format(48_000, 1, PERIOD as u32));
        let engine = Arc::new(engine);
        watch(engine.clone(), state.path().to_owned()).expect("watcher");
        let runtime = runtime(Some(state.path())).expect("runtime");
        let first = runtime
            .load_file(&dir.join("scale.wasm"))
            .expect("version 1");
        let stream = prepared_stream(
            &engine,
            Direction::Playback,
            Format::F32Le,
            48_000,
            1,
            48 * PERIOD as u32,
        );
        stream
            .set_plugins(Some(ChainPlugins {
                effects: vec![EffectPlugin {
                    factory: first,
                    params: Vec::new(),
                }],
                ..ChainPlugins::default()
            }))
            .expect("plugins");

        // Four seconds of a ramp that never repeats a value, played in real time.
        let frames = 400 * PERIOD;
        let signal: Vec<f32> = (0..frames)
            .map(|n| (n as f32 + 1.0) / (frames as f32 * 2.0))
            .collect();
        let bytes: Vec<u8> = signal.iter().flat_map(|s| s.to_le_bytes()).collect();
        let player = {
            let stream = stream.clone();
            std::thread::spawn(move || {
                let primed = stream.write(&bytes);
                stream.start().expect("start");
                write_all(&stream, &bytes[primed..]);
                stream.drain();
                let end = bytes.len() as u64;
                while stream.position_bytes() < end {
                    stream.wait_position(end, Duration::from_secs(5));
                }
            })
        };
        // A second in, version 2 lands in the directory; the watcher finds it within its
        // one-second poll and swaps it in while the ramp plays.
        while stream.position_bytes() < 100 * PERIOD as u64 * 4 {
            std::thread::sleep(Duration::from_millis(5));
        }
        install(&dir, &scale("2.0.0", 0.25));
        player.join().expect("player");

        let recorded = recording.lock().expect("recording").clone();
        let start = recorded
            .iter()
            .position(|&s| s != 0.0)
            .expect("something played");
        let out = &recorded[start..(start + frames).min(recorded.len())];
        assert_eq!(out.len(), frames, "frames went missing");
        let switch = out
            .iter()
            .zip(&signal)
            .position(|(o, s)| *o != s * 0.5)
            .expect("version 2 never took over");
        assert!(switch >= 100 * PERIOD, "swapped before it was installed");
        assert_eq!(switch % PERIOD, 0, "the swap happened mid-cycle");
        for (n, (o, s)) in out.iter().zip(&signal).enumerate() {
            let factor = if n < switch { 0.5 } else { 0.25 };
            assert_eq!(
                *o,
                s * factor,
                "frame {n}: missing or repeated (switch at {switch})"
            );
        }
    }
}
