//! The daemon confines itself: Landlock file-system rules before any thread starts, and
//! a seccomp-bpf allow-list once everything is open. `serve --no-sandbox` runs without
//! either, for debugging.
//!
//! - **Landlock** (kernel ≥ 5.13, best effort: what the kernel's ABI lacks is left
//!   open and logged). The daemon may read the system (`/usr`, `/etc`, `/proc`, `/sys`,
//!   `/run`, …), its configuration file's directory and the files its configuration
//!   reads; write only in its state directory, the runtime directory, the directories API
//!   paths are confined to, the directories of the sockets and WAV files its
//!   configuration names, the sndif shared-memory directory and `--sandbox-allow`
//!   directories; use devices under `/dev`; and execute nothing. A file a reload names
//!   outside these is refused (restart to widen the rules).
//! - **seccomp** (with `SECCOMP_FILTER_FLAG_TSYNC`, for every thread): the system calls an
//!   audio daemon makes are allowed; anything else fails with `EPERM`. That stops
//!   `execve`, new processes (`clone` only makes threads), `ptrace`, mounts, namespaces,
//!   module loading, `bpf`, `perf_event_open`, `io_uring`, keyrings and
//!   `process_vm_*`; sockets are limited to `AF_UNIX`, `AF_INET` and `AF_INET6`; signals
//!   go only to the daemon itself.
//!
//! The Wasm plugins stay inside wasmtime's own limits (memory, fuel-free deadlines) as
//! before; this adds the walls around the whole process.

#[cfg(target_arch = "x86_64")]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};
use paravox_control::Declaration;
use paravox_host_audio::spec::EndpointKind;
#[cfg(target_arch = "x86_64")]
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};
use tracing::{info, warn};

/// The system directories the daemon reads (libraries, ALSA's configuration, `/proc`).
const SYSTEM_READ: [&str; 11] = [
    "/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/run",
];

/// Where the daemon may read, write and use devices.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Read only (directories or single files).
    pub read: Vec<PathBuf>,
    /// Read and write, create and remove (directories).
    pub write: Vec<PathBuf>,
}

impl Paths {
    /// What a daemon with this state directory, declaration and extra directories needs.
    pub fn for_daemon(
        state_dir: &Path,
        config_file: Option<&Path>,
        declaration: &Declaration,
        extra_write: &[PathBuf],
    ) -> Paths {
        let mut paths = Paths {
            read: SYSTEM_READ.iter().map(PathBuf::from).collect(),
            write: vec![state_dir.to_owned()],
        };
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
            && home.parent().is_some()
        {
            // ~/.asoundrc, ~/.config/alsa (not when a service account's home is `/`).
            paths.read.push(home);
        }
        if let Some(files) = std::env::var_os("ALSA_CONFIG_PATH") {
            paths.read.extend(std::env::split_paths(&files));
        }
        if let Some(file) = config_file {
            // The directory, not the file: an editor replaces the file on save, and
            // SIGHUP must read the new one.
            paths
                .read
                .push(parent(&absolute(file)).unwrap_or_else(|| PathBuf::from("/")));
        }
        for endpoint in &declaration.endpoints {
            let specs = std::iter::once(&endpoint.spec).chain(endpoint.fallback.as_ref());
            for spec in specs {
                match spec.parse::<paravox_host_audio::spec::EndpointSpec>() {
                    Ok(parsed) => match parsed.kind {
                        EndpointKind::Wav { path } => paths.write.extend(parent(&absolute(&path))),
                        EndpointKind::WavSource { path, .. } => paths.read.push(absolute(&path)),
                        _ => {}
                    },
                    Err(_) => continue,
                }
            }
        }
        for card in &declaration.cards {
            paths
                .write
                .extend(parent(&absolute(Path::new(&card.socket))));
        }
        paths
            .write
            .extend(extra_write.iter().map(|dir| absolute(dir)));
        paths.read.sort();
        paths.read.dedup();
        paths.write.sort();
        paths.write.dedup();
        paths
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn parent(path: &Path) -> Option<PathBuf> {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(Path::to_owned)
}

/// Whether this process confined its file access (set once, by [`restrict_files`]).
static FILES_CONFINED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What to add to an error that may be the sandbox's doing: a path refused with
/// "Permission denied" while the file-system rules are in force.
pub fn hint_for(message: &str) -> &'static str {
    if FILES_CONFINED.load(std::sync::atomic::Ordering::Relaxed)
        && message.contains("Permission denied")
    {
        " (the sandbox allows only the directories named at start: restart paravox to \
         include this one, or start it with --sandbox-allow DIR)"
    } else {
        ""
    }
}

/// How far the Landlock rules are enforced, for the log and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Every right the daemon asked to restrict is restricted.
    Full,
    /// The kernel knows only part of the rights.
    Partial,
    /// The kernel has no Landlock (or it is disabled).
    None,
}

/// Confines this thread and every thread and process it starts from now on to `paths`.
/// Call it before any thread exists: Landlock does not reach threads already running.
pub fn restrict_files(paths: &Paths) -> Result<Enforcement> {
    let abi = ABI::V5;
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi) & !AccessFs::Execute;
    // Everything but running programs and making device nodes.
    let write = all & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock);
    let devices = read | AccessFs::WriteFile | AccessFs::IoctlDev;
    let status = Ruleset::default()
        .handle_access(all)
        .context("preparing the Landlock rules")?
        .create()
        .context("creating the Landlock ruleset")?
        .add_rules(path_beneath_rules(&paths.read, read))
        .context("adding Landlock read rules")?
        .add_rules(path_beneath_rules(["/dev"], devices))
        .context("adding the Landlock device rule")?
        .add_rules(path_beneath_rules(&paths.write, write))
        .context("adding Landlock write rules")?
        .restrict_self()
        .context("enforcing the Landlock rules")?;
    let enforcement = match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::None,
    };
    FILES_CONFINED.store(
        enforcement != Enforcement::None,
        std::sync::atomic::Ordering::Relaxed,
    );
    match enforcement {
        Enforcement::None => warn!(
            "Landlock is not available in this kernel: the file-system rules are not enforced"
        ),
        _ => info!(
            enforcement = ?enforcement,
            read = ?paths.read,
            write = ?paths.write,
            "file-system access confined (Landlock)"
        ),
    }
    Ok(enforcement)
}

/// Every system call the daemon makes, unconditionally allowed (x86-64 numbers; other
/// architectures run without the filter, which the log says).
#[cfg(target_arch = "x86_64")]
const ALLOWED: &[libc::c_long] = &[
    // Files and descriptors.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlinkat,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_linkat,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fadvise64,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_sync_file_range,
    libc::SYS_copy_file_range,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_utimensat,
    libc::SYS_umask,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_pipe2,
    libc::SYS_ioctl,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_rm_watch,
    libc::SYS_memfd_create,
    // Memory (wasmtime compiles plugins to machine code: mprotect).
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_munlock,
    libc::SYS_membarrier,
    libc::SYS_mincore,
    // ALSA's dmix and friends share memory between processes (System V IPC).
    libc::SYS_shmget,
    libc::SYS_shmat,
    libc::SYS_shmdt,
    libc::SYS_shmctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_semctl,
    // Threads, scheduling and time.
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_set_tid_address,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_setparam,
    libc::SYS_sched_getparam,
    libc::SYS_sched_setattr,
    libc::SYS_sched_getattr,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_getpriority,
    libc::SYS_setpriority,
    libc::SYS_getcpu,
    libc::SYS_prctl,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_timerfd_gettime,
    libc::SYS_timer_create,
    libc::SYS_timer_settime,
    libc::SYS_timer_gettime,
    libc::SYS_timer_delete,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
    // Signals.
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigsuspend,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd4,
    // Waiting for events.
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    // Sockets (`socket` itself is limited to three families below).
    libc::SYS_socketpair,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_shutdown,
    // Identity and limits.
    libc::SYS_getrandom,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getgroups,
    libc::SYS_getrlimit,
    libc::SYS_getrusage,
    libc::SYS_times,
    libc::SYS_capget,
    // The older forms x86-64 still has.
    libc::SYS_open,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_readlink,
    libc::SYS_mkdir,
    libc::SYS_unlink,
    libc::SYS_rename,
    libc::SYS_link,
    libc::SYS_chmod,
    libc::SYS_dup2,
    libc::SYS_pipe,
    libc::SYS_epoll_wait,
    libc::SYS_poll,
    libc::SYS_select,
    libc::SYS_arch_prctl,
];

#[cfg(target_arch = "x86_64")]
fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .context("building a seccomp condition")
}

#[cfg(target_arch = "x86_64")]
fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule> {
    SeccompRule::new(conditions).context("building a seccomp rule")
}

#[cfg(target_arch = "x86_64")]
/// The allow-list: unconditional entries, and the calls allowed only with some
/// arguments.
fn allow_list() -> Result<BTreeMap<i64, Vec<SeccompRule>>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED.iter().map(|&call| (call, Vec::new())).collect();
    let pid = u64::from(std::process::id());
    // clone makes threads only (no new process: no fork, no vfork+exec).
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![condition(
            0,
            SeccompCmpOp::MaskedEq(thread),
            thread,
        )?])?],
    );
    // Sockets of three families.
    rules.insert(
        libc::SYS_socket,
        [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6]
            .into_iter()
            .map(|family| rule(vec![condition(0, SeccompCmpOp::Eq, family as u64)?]))
            .collect::<Result<_>>()?,
    );
    // Signals to this process only.
    rules.insert(
        libc::SYS_kill,
        vec![rule(vec![condition(0, SeccompCmpOp::Eq, pid)?])?],
    );
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![condition(0, SeccompCmpOp::Eq, pid)?])?],
    );
    // Limits of this process only (pid 0).
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![condition(0, SeccompCmpOp::Eq, 0)?])?],
    );
    Ok(rules)
}

/// Installs the allow-list on every thread of the process (and every thread started
/// later). `clone3` answers `ENOSYS`, so the C library falls back to `clone`, whose flags
/// the filter can read.
#[cfg(target_arch = "x86_64")]
pub fn restrict_calls() -> Result<()> {
    let arch = seccompiler::TargetArch::x86_64;
    let clone3: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let no_clone3 = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .context("building the clone3 filter")?;
    let mut allowed = allow_list()?;
    allowed.insert(libc::SYS_clone3, Vec::new());
    let allow = SeccompFilter::new(
        allowed,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .context("building the seccomp allow-list")?;
    for filter in [no_clone3, allow] {
        let program: seccompiler::BpfProgram =
            filter.try_into().context("compiling a seccomp filter")?;
        seccompiler::apply_filter_all_threads(&program)
            .context("installing a seccomp filter on every thread")?;
    }
    info!(
        calls = ALLOWED.len() + 5,
        "system calls confined (seccomp allow-list; anything else fails with EPERM)"
    );
    Ok(())
}

/// No allow-list is built for this architecture yet: the daemon says so and goes on with
/// its file-system rules alone.
#[cfg(not(target_arch = "x86_64"))]
pub fn restrict_calls() -> Result<()> {
    warn!("no seccomp allow-list for this architecture: system calls are not confined");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use paravox_control::DeclaredEndpoint;
    use paravox_control::model::CardRequest;
    use paravox_engine::Direction;

    #[test]
    fn the_paths_are_what_the_configuration_names() {
        let declaration = Declaration {
            endpoints: vec![
                DeclaredEndpoint {
                    name: "out".into(),
                    direction: Direction::Playback,
                    spec: "alsa:default".into(),
                    fallback: Some("wav:/srv/audio/out.wav,rate=48000".into()),
                },
                DeclaredEndpoint {
                    name: "in".into(),
                    direction: Direction::Capture,
                    spec: "wavsrc:/srv/in/loop.wav,loop=1".into(),
                    fallback: None,
                },
            ],
            cards: vec![CardRequest {
                name: "vm".into(),
                socket: "/run/vms/vm.sock".into(),
                streams: Vec::new(),
                controls: None,
                budget: None,
            }],
            ..Declaration::default()
        };
        let paths = Paths::for_daemon(
            Path::new("/var/lib/paravox"),
            Some(Path::new("/etc/paravox/paravox.toml")),
            &declaration,
            &[PathBuf::from("/srv/extra")],
        );
        for dir in ["/var/lib/paravox", "/srv/audio", "/run/vms", "/srv/extra"] {
            assert!(
                paths.write.contains(&PathBuf::from(dir)),
                "{dir}: {paths:?}"
            );
        }
        for path in ["/etc/paravox", "/srv/in/loop.wav", "/usr"] {
            assert!(
                paths.read.contains(&PathBuf::from(path)),
                "{path}: {paths:?}"
            );
        }
        assert!(!paths.write.iter().any(|p| p == Path::new("/srv")));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_allow_list_compiles_and_leaves_out_what_it_must() {
        let rules = allow_list().expect("rules");
        for forbidden in [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_process_vm_readv,
            libc::SYS_io_uring_setup,
            libc::SYS_init_module,
            libc::SYS_keyctl,
            libc::SYS_fork,
            libc::SYS_vfork,
        ] {
            assert!(!rules.contains_key(&forbidden), "{forbidden} allowed");
        }
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            seccompiler::TargetArch::x86_64,
        )
        .expect("filter");
        let program: seccompiler::BpfProgram = filter.try_into().expect("program");
        assert!(!program.is_empty());
    }
}
