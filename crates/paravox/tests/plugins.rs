//! `paravox plugin add|list|remove` and the configuration's `dsp` and `chain`, as a user
//! runs them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn paravox(state_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paravox"));
    command
        .env("RUST_LOG", "warn")
        .env("PARAVOX_STATE_DIR", state_dir)
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("paravox runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An effect plugin called `name` (version `version`) that halves its input.
fn effect(name: &str, version: &str) -> Vec<u8> {
    let manifest = format!(
        r#"{{"name":"{name}","version":"{version}","kind":"effect","description":"halves","input_formats":["float_le"],"output_formats":["float_le"],"rates":[8000,192000],"input_channels":[1,18],"output_channels":[1,18],"params":[{{"name":"depth","min":0,"max":1,"default":1}}]}}"#
    );
    let escaped = manifest.replace('"', "\\\"");
    wat::parse_str(format!(
        r#"(module
  (memory (export "memory") 2)
  (data (i32.const 0) "{escaped}")
  (global $output (mut i32) (i32.const 0))
  (global $channels (mut i32) (i32.const 0))
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
  (func (export "paravox_set_param") (param i32 f32) (result i32) (i32.const 0))
  (func (export "paravox_process") (param $frames i32) (param i32) (result i32)
    (local $i i32) (local $n i32)
    (local.set $n (i32.shl (i32.mul (local.get $frames) (global.get $channels)) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (f32.store (i32.add (global.get $output) (local.get $i))
          (f32.mul (f32.load (i32.add (i32.const 4096) (local.get $i))) (f32.const 0.5)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next)))
    (local.get $frames)))"#,
        len = manifest.len()
    ))
    .expect("valid WAT")
}

#[test]
fn plugins_are_added_listed_replaced_and_removed() {
    let state = tempfile::tempdir().unwrap();
    let module = state.path().join("halver-build.wasm");
    std::fs::write(&module, effect("halver", "1.0.0")).unwrap();

    let added = run(paravox(state.path()).args(["plugin", "add"]).arg(&module));
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(
        text(&added.stdout).contains("installed halver 1.0.0 (effect)"),
        "{}",
        text(&added.stdout)
    );
    let installed = state.path().join("plugins/halver.wasm");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&module).unwrap()
    );

    let listed = run(paravox(state.path()).args(["plugin", "list"]));
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let list = text(&listed.stdout);
    for shipped in ["convert", "resample", "channel-map", "gain", "mix"] {
        assert!(
            list.lines()
                .any(|line| line.starts_with(shipped) && line.contains("shipped")),
            "{shipped} missing from:\n{list}"
        );
    }
    let line = list
        .lines()
        .find(|line| line.starts_with("halver"))
        .expect("the installed plugin is listed");
    assert!(
        line.contains("1.0.0") && line.contains("effect") && line.contains("installed"),
        "{line}"
    );

    // A new version replaces the old file under the same name.
    std::fs::write(&module, effect("halver", "2.0.0")).unwrap();
    let replaced = run(paravox(state.path()).args(["plugin", "add"]).arg(&module));
    assert!(replaced.status.success(), "{}", text(&replaced.stderr));
    let list = text(&run(paravox(state.path()).args(["plugin", "list"])).stdout);
    let versions: Vec<_> = list
        .lines()
        .filter(|line| line.starts_with("halver"))
        .collect();
    assert_eq!(versions.len(), 1, "{list}");
    assert!(versions[0].contains("2.0.0"), "{list}");

    let removed = run(paravox(state.path()).args(["plugin", "remove", "halver"]));
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    assert!(text(&removed.stdout).contains("removed halver"));
    assert!(!installed.exists());
    let list = text(&run(paravox(state.path()).args(["plugin", "list"])).stdout);
    assert!(!list.contains("halver"), "{list}");
}

#[test]
fn bad_plugins_and_names_exit_2_with_a_reason() {
    let state = tempfile::tempdir().unwrap();
    let garbage = state.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not a module").unwrap();
    let refused = run(paravox(state.path()).args(["plugin", "add"]).arg(&garbage));
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("garbage.wasm"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!state.path().join("plugins/garbage.wasm").exists());

    let missing = run(paravox(state.path()).args(["plugin", "add", "/nonexistent/x.wasm"]));
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));

    let absent = run(paravox(state.path()).args(["plugin", "remove", "nothing"]));
    assert_eq!(absent.status.code(), Some(2));
    assert!(
        text(&absent.stderr).contains("'nothing' is not installed"),
        "{}",
        text(&absent.stderr)
    );
}

/// Starts `serve` with `config` (written into `state`), its log going to `stderr`.
fn spawn_serve(state: &Path, config: &str, stderr: Stdio) -> Child {
    let path = state.join("paravox.toml");
    std::fs::write(&path, config).unwrap();
    paravox(state)
        .env("RUST_LOG", "info")
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Runs `serve` with `config` for three seconds (or until it exits), then stops it.
fn serve(state: &Path, config: &str) -> Output {
    let mut child = spawn_serve(state, config, Stdio::piped());
    for _ in 0..60 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serve_runs_conversion_and_mixing_in_wasm_when_configured() {
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(state.path().join("plugins")).unwrap();
    std::fs::write(
        state.path().join("plugins/halver.wasm"),
        effect("halver", "1.0.0"),
    )
    .unwrap();
    let output = serve(
        state.path(),
        "[[output]]\nname = \"file\"\nspec = \"wav:${state_dir}/out.wav\"\n\
         [[output]]\nname = \"quiet\"\nspec = \"null\"\ndsp = \"native\"\n\
         [defaults]\noutput = \"file\"\ndsp = \"wasm\"\nchain = [\"halver:depth=0.5\", \"gain:volume=0.5\"]\n",
    );
    let log = text(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("paravox ready"), "{log}");
    let wasm_mixers: Vec<_> = log
        .lines()
        .filter(|line| line.contains("mixing in a wasm plugin"))
        .collect();
    assert_eq!(wasm_mixers.len(), 1, "{log}");
    assert!(wasm_mixers[0].contains("file"), "{log}");
}

#[test]
fn by_default_outputs_mix_in_wasm_and_a_mixer_takes_parameters() {
    let state = tempfile::tempdir().unwrap();
    let output = serve(
        state.path(),
        "[[output]]\nname = \"plain\"\nspec = \"null\"\n\
         [[output]]\nname = \"soft\"\nspec = \"null\"\nmixer = \"mix:soft_clip=1,knee=0.8\"\n\
         [[output]]\nname = \"native\"\nspec = \"null\"\ndsp = \"native\"\n",
    );
    let log = text(&output.stderr);
    assert!(output.status.success(), "{log}");
    let mixers: Vec<_> = log
        .lines()
        .filter(|line| line.contains("mixing in a wasm plugin"))
        .collect();
    assert_eq!(mixers.len(), 2, "{log}");
    assert!(mixers.iter().any(|line| line.contains("plain")), "{log}");
    assert!(mixers.iter().any(|line| line.contains("soft")), "{log}");
    assert!(!log.contains("run natively"), "{log}");
}

#[test]
fn check_config_and_serve_refuse_a_mixer_that_is_not_one() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "mixer = \"gain\"\n",
            &[
                "line 4",
                "mixer 'gain'",
                "is an effect plugin",
                "only a mixer fits",
            ],
        ),
        (
            "mixer = \"mix:loudness=2\"\n",
            &["line 4", "mix has no parameter 'loudness'"],
        ),
        (
            "mixer = \"mix:knee=2\"\n",
            &["line 4", "knee = 2 is outside"],
        ),
    ];
    for (mixer, expected) in cases {
        let state = tempfile::tempdir().unwrap();
        let config = format!("[[output]]\nname = \"out\"\nspec = \"null\"\n{mixer}");
        let path = state.path().join("paravox.toml");
        std::fs::write(&path, &config).unwrap();
        let checked = run(paravox(state.path()).arg("check-config").arg(&path));
        let served = serve(state.path(), &config);
        for output in [checked, served] {
            let log = text(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{config}: {log}");
            for fragment in expected {
                assert!(
                    log.contains(fragment),
                    "{config}: '{log}' lacks '{fragment}'"
                );
            }
        }
    }
}

#[test]
fn serve_refuses_unknown_chain_plugins_and_parameters() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "[defaults]\nchain = [\"gain\", \"nope\"]\n",
            &[
                "line 5",
                "chain entry 'nope'",
                "no plugin named 'nope'",
                "shipped",
            ],
        ),
        (
            "[defaults]\nchain = [\"gain:loudness=2\"]\n",
            &["line 5", "gain has no parameter 'loudness'", "volume"],
        ),
        (
            "[defaults]\nchain = [\"gain:volume=99\"]\n",
            &["line 5", "volume = 99 is outside 0 to 16"],
        ),
    ];
    for (config, expected) in cases {
        let state = tempfile::tempdir().unwrap();
        let output = serve(
            state.path(),
            &format!("[[output]]\nname = \"out\"\nspec = \"null\"\n{config}"),
        );
        let log = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{config}: {log}");
        for fragment in expected {
            assert!(
                log.contains(fragment),
                "{config}: '{log}' lacks '{fragment}'"
            );
        }
    }
}

/// The voluntary context switches of `pid`'s thread called `name`, if it has one.
fn thread_switches(pid: u32, name: &str) -> Option<u64> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).ok()?;
        return status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|count| count.trim().parse().ok());
    }
    None
}

#[test]
fn an_idle_daemon_with_plugins_set_up_lets_the_epoch_ticker_sleep() {
    let state = tempfile::tempdir().unwrap();
    let mut child = spawn_serve(
        state.path(),
        "[[output]]\nname = \"out\"\nspec = \"null\"\n[defaults]\noutput = \"out\"\n",
        Stdio::piped(),
    );
    // The mixer plugin is set up at start (which calls it); then no stream plays.
    let log = BufReader::new(child.stderr.take().expect("stderr"));
    let mut lines = log.lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("paravox ready"));
    assert!(ready, "serve never got ready");
    std::thread::spawn(move || lines.for_each(drop));
    std::thread::sleep(Duration::from_secs(1));
    let before = thread_switches(child.id(), "paravox-epoch");
    std::thread::sleep(Duration::from_secs(2));
    let after = thread_switches(child.id(), "paravox-epoch");
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let (Some(before), Some(after)) = (before, after) else {
        panic!("no paravox-epoch thread: the default mixer plugin was not set up");
    };
    // Ticking at full rate (10 ms) would be ~200 wake-ups in these two seconds; asleep
    // until a plugin is called, none.
    assert!(
        after - before <= 2,
        "the idle epoch ticker woke {} times in 2 s",
        after - before
    );
}
