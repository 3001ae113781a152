//! The few parts of libpipewire-0.3's C ABI that the PipeWire endpoint uses, loaded with
//! `dlopen` at run time so that paravox neither links against PipeWire nor needs it
//! installed.
//!
//! Layouts and values are those of the libpipewire 0.3 / 1.x and SPA 0.2 headers
//! (`pipewire/stream.h`, `pipewire/thread-loop.h`, `spa/utils/hook.h`, `spa/utils/dict.h`,
//! `spa/buffer/buffer.h`); the compile-time assertions below pin the sizes and offsets
//! this module depends on for x86-64 and aarch64 (LP64).

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Once, OnceLock};

use libloading::Library;

/// The library's soname, as Debian's `libpipewire-0.3-0` (or `-0t64`) installs it.
pub(super) const LIBRARY_NAME: &str = "libpipewire-0.3.so.0";

/// `PW_ID_ANY`: no explicit target; `target.object` or the session manager decides.
pub(super) const PW_ID_ANY: u32 = 0xffff_ffff;

/// `enum spa_direction`.
pub(super) const SPA_DIRECTION_INPUT: u32 = 0;
pub(super) const SPA_DIRECTION_OUTPUT: u32 = 1;

/// `enum pw_stream_flags`.
pub(super) const PW_STREAM_FLAG_AUTOCONNECT: u32 = 1 << 0;
pub(super) const PW_STREAM_FLAG_MAP_BUFFERS: u32 = 1 << 2;
pub(super) const PW_STREAM_FLAG_RT_PROCESS: u32 = 1 << 4;

/// `enum pw_stream_state`.
pub(super) const PW_STREAM_STATE_ERROR: c_int = -1;
pub(super) const PW_STREAM_STATE_UNCONNECTED: c_int = 0;
pub(super) const PW_STREAM_STATE_PAUSED: c_int = 2;
pub(super) const PW_STREAM_STATE_STREAMING: c_int = 3;

/// `PW_VERSION_STREAM_EVENTS`.
pub(super) const PW_VERSION_STREAM_EVENTS: u32 = 2;

/// Opaque `struct pw_thread_loop`.
#[repr(C)]
pub(super) struct PwThreadLoop {
    _opaque: [u8; 0],
}

/// Opaque `struct pw_loop`.
#[repr(C)]
pub(super) struct PwLoop {
    _opaque: [u8; 0],
}

/// Opaque `struct pw_context`.
#[repr(C)]
pub(super) struct PwContext {
    _opaque: [u8; 0],
}

/// Opaque `struct pw_core`.
#[repr(C)]
pub(super) struct PwCore {
    _opaque: [u8; 0],
}

/// Opaque `struct pw_properties` (only ever handed back to the library).
#[repr(C)]
pub(super) struct PwProperties {
    _opaque: [u8; 0],
}

/// Opaque `struct pw_stream`.
#[repr(C)]
pub(super) struct PwStream {
    _opaque: [u8; 0],
}

/// Opaque `struct spa_pod` (a built pod is passed as bytes; see `pod.rs`).
#[repr(C)]
pub(super) struct SpaPod {
    _opaque: [u8; 0],
}

/// `struct spa_dict_item`.
#[repr(C)]
pub(super) struct SpaDictItem {
    pub key: *const c_char,
    pub value: *const c_char,
}

/// `struct spa_dict`.
#[repr(C)]
pub(super) struct SpaDict {
    pub flags: u32,
    pub n_items: u32,
    pub items: *const SpaDictItem,
}

/// `struct spa_list`.
#[repr(C)]
#[derive(Debug)]
pub(super) struct SpaList {
    pub next: *mut SpaList,
    pub prev: *mut SpaList,
}

/// `struct spa_callbacks`.
#[repr(C)]
#[derive(Debug)]
pub(super) struct SpaCallbacks {
    pub funcs: *const c_void,
    pub data: *mut c_void,
}

/// `struct spa_hook`: a listener registration, owned by the caller and filled in by the
/// library. It must stay at one address until the object it listens to is destroyed.
#[repr(C)]
#[derive(Debug)]
pub(super) struct SpaHook {
    pub link: SpaList,
    pub cb: SpaCallbacks,
    pub removed: Option<unsafe extern "C" fn(*mut SpaHook)>,
    pub private: *mut c_void,
}

impl SpaHook {
    /// A zeroed hook, as the C API expects before `*_add_listener`.
    pub(super) fn zeroed() -> SpaHook {
        SpaHook {
            link: SpaList {
                next: std::ptr::null_mut(),
                prev: std::ptr::null_mut(),
            },
            cb: SpaCallbacks {
                funcs: std::ptr::null(),
                data: std::ptr::null_mut(),
            },
            removed: None,
            private: std::ptr::null_mut(),
        }
    }
}

/// `struct spa_chunk`: the valid region of a data plane.
#[repr(C)]
pub(super) struct SpaChunk {
    pub offset: u32,
    pub size: u32,
    pub stride: i32,
    pub flags: i32,
}

/// `struct spa_data`: one data plane of a buffer.
#[repr(C)]
pub(super) struct SpaData {
    pub kind: u32,
    pub flags: u32,
    pub fd: i64,
    pub mapoffset: u32,
    pub maxsize: u32,
    pub data: *mut c_void,
    pub chunk: *mut SpaChunk,
}

/// `struct spa_buffer`.
#[repr(C)]
pub(super) struct SpaBuffer {
    pub n_metas: u32,
    pub n_datas: u32,
    pub metas: *mut c_void,
    pub datas: *mut SpaData,
}

/// `struct pw_buffer`, up to `requested` (the 1.0.5 `time` field follows; it is not read,
/// and the struct is only ever used through the library's pointer).
#[repr(C)]
pub(super) struct PwBuffer {
    pub buffer: *mut SpaBuffer,
    pub user_data: *mut c_void,
    pub size: u64,
    pub requested: u64,
}

/// `struct spa_fraction`.
#[repr(C)]
#[derive(Default)]
pub(super) struct SpaFraction {
    pub num: u32,
    pub denom: u32,
}

/// `struct pw_time` up to `avail_buffers` (0.3.50); `pw_stream_get_time_n` fills as much
/// as the size it is given.
#[repr(C)]
#[derive(Default)]
pub(super) struct PwTime {
    pub now: i64,
    pub rate: SpaFraction,
    pub ticks: u64,
    pub delay: i64,
    pub queued: u64,
    pub buffered: u64,
    pub queued_buffers: u32,
    pub avail_buffers: u32,
}

/// `struct pw_stream_events`, version 2.
#[repr(C)]
pub(super) struct PwStreamEvents {
    pub version: u32,
    pub destroy: Option<unsafe extern "C" fn(data: *mut c_void)>,
    pub state_changed: Option<
        unsafe extern "C" fn(data: *mut c_void, old: c_int, state: c_int, error: *const c_char),
    >,
    pub control_info:
        Option<unsafe extern "C" fn(data: *mut c_void, id: u32, control: *const c_void)>,
    pub io_changed:
        Option<unsafe extern "C" fn(data: *mut c_void, id: u32, area: *mut c_void, size: u32)>,
    pub param_changed:
        Option<unsafe extern "C" fn(data: *mut c_void, id: u32, param: *const SpaPod)>,
    pub add_buffer: Option<unsafe extern "C" fn(data: *mut c_void, buffer: *mut PwBuffer)>,
    pub remove_buffer: Option<unsafe extern "C" fn(data: *mut c_void, buffer: *mut PwBuffer)>,
    pub process: Option<unsafe extern "C" fn(data: *mut c_void)>,
    pub drained: Option<unsafe extern "C" fn(data: *mut c_void)>,
    pub command: Option<unsafe extern "C" fn(data: *mut c_void, command: *const c_void)>,
    pub trigger_done: Option<unsafe extern "C" fn(data: *mut c_void)>,
}

// The offsets the library reads and writes through these structs (LP64).
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<SpaDictItem>() == 16);
    assert!(size_of::<SpaDict>() == 16);
    assert!(offset_of!(SpaDict, items) == 8);
    assert!(size_of::<SpaHook>() == 48);
    assert!(offset_of!(SpaHook, cb) == 16);
    assert!(offset_of!(SpaHook, removed) == 32);
    assert!(size_of::<SpaChunk>() == 16);
    assert!(size_of::<SpaData>() == 40);
    assert!(offset_of!(SpaData, fd) == 8);
    assert!(offset_of!(SpaData, maxsize) == 20);
    assert!(offset_of!(SpaData, data) == 24);
    assert!(offset_of!(SpaData, chunk) == 32);
    assert!(size_of::<SpaBuffer>() == 24);
    assert!(offset_of!(SpaBuffer, datas) == 16);
    assert!(offset_of!(PwBuffer, size) == 16);
    assert!(offset_of!(PwBuffer, requested) == 24);
    assert!(offset_of!(PwTime, rate) == 8);
    assert!(offset_of!(PwTime, ticks) == 16);
    assert!(offset_of!(PwTime, delay) == 24);
    assert!(offset_of!(PwTime, queued) == 32);
    assert!(offset_of!(PwTime, buffered) == 40);
    assert!(size_of::<PwTime>() == 56);
    assert!(offset_of!(PwStreamEvents, destroy) == 8);
    assert!(offset_of!(PwStreamEvents, state_changed) == 16);
    assert!(offset_of!(PwStreamEvents, process) == 64);
    assert!(size_of::<PwStreamEvents>() == 96);
};

/// The entry points paravox calls, resolved once from the loaded library.
#[derive(Debug)]
pub(super) struct Api {
    pub pw_init: unsafe extern "C" fn(argc: *mut c_int, argv: *mut *mut *mut c_char),
    pub pw_thread_loop_new:
        unsafe extern "C" fn(name: *const c_char, props: *const SpaDict) -> *mut PwThreadLoop,
    pub pw_thread_loop_destroy: unsafe extern "C" fn(thread_loop: *mut PwThreadLoop),
    pub pw_thread_loop_start: unsafe extern "C" fn(thread_loop: *mut PwThreadLoop) -> c_int,
    pub pw_thread_loop_stop: unsafe extern "C" fn(thread_loop: *mut PwThreadLoop),
    pub pw_thread_loop_lock: unsafe extern "C" fn(thread_loop: *mut PwThreadLoop),
    pub pw_thread_loop_unlock: unsafe extern "C" fn(thread_loop: *mut PwThreadLoop),
    pub pw_thread_loop_signal:
        unsafe extern "C" fn(thread_loop: *mut PwThreadLoop, wait_for_accept: bool),
    pub pw_thread_loop_get_time: unsafe extern "C" fn(
        thread_loop: *mut PwThreadLoop,
        abstime: *mut libc::timespec,
        timeout_ns: i64,
    ) -> c_int,
    pub pw_thread_loop_timed_wait_full: unsafe extern "C" fn(
        thread_loop: *mut PwThreadLoop,
        abstime: *const libc::timespec,
    ) -> c_int,
    pub pw_thread_loop_get_loop:
        unsafe extern "C" fn(thread_loop: *mut PwThreadLoop) -> *mut PwLoop,
    pub pw_context_new: unsafe extern "C" fn(
        main_loop: *mut PwLoop,
        props: *mut PwProperties,
        user_data_size: usize,
    ) -> *mut PwContext,
    pub pw_context_destroy: unsafe extern "C" fn(context: *mut PwContext),
    pub pw_context_connect: unsafe extern "C" fn(
        context: *mut PwContext,
        props: *mut PwProperties,
        user_data_size: usize,
    ) -> *mut PwCore,
    pub pw_core_disconnect: unsafe extern "C" fn(core: *mut PwCore) -> c_int,
    pub pw_properties_new_dict: unsafe extern "C" fn(dict: *const SpaDict) -> *mut PwProperties,
    pub pw_stream_new: unsafe extern "C" fn(
        core: *mut PwCore,
        name: *const c_char,
        props: *mut PwProperties,
    ) -> *mut PwStream,
    pub pw_stream_destroy: unsafe extern "C" fn(stream: *mut PwStream),
    pub pw_stream_add_listener: unsafe extern "C" fn(
        stream: *mut PwStream,
        listener: *mut SpaHook,
        events: *const PwStreamEvents,
        data: *mut c_void,
    ),
    pub pw_stream_connect: unsafe extern "C" fn(
        stream: *mut PwStream,
        direction: u32,
        target_id: u32,
        flags: u32,
        params: *mut *const SpaPod,
        n_params: u32,
    ) -> c_int,
    pub pw_stream_state_as_string: unsafe extern "C" fn(state: c_int) -> *const c_char,
    pub pw_stream_get_node_id: unsafe extern "C" fn(stream: *mut PwStream) -> u32,
    pub pw_stream_dequeue_buffer: unsafe extern "C" fn(stream: *mut PwStream) -> *mut PwBuffer,
    pub pw_stream_queue_buffer:
        unsafe extern "C" fn(stream: *mut PwStream, buffer: *mut PwBuffer) -> c_int,
    pub pw_stream_set_active: unsafe extern "C" fn(stream: *mut PwStream, active: bool) -> c_int,
    pub pw_stream_get_time_n:
        unsafe extern "C" fn(stream: *mut PwStream, time: *mut PwTime, size: usize) -> c_int,
}

/// The loaded library, kept for the life of the process: the function pointers in [`Api`]
/// point into it, and PipeWire's own threads may outlive any one device.
static LIBRARY: OnceLock<Result<(Library, Api), String>> = OnceLock::new();
static INIT: Once = Once::new();

/// The library's entry points, loading it (and calling `pw_init`) on first use.
pub(super) fn api() -> Result<&'static Api, String> {
    let loaded = LIBRARY.get_or_init(load).as_ref().map_err(Clone::clone)?;
    let api = &loaded.1;
    INIT.call_once(|| {
        // SAFETY: `pw_init` accepts null argc/argv; `Once` makes this the only call.
        unsafe { (api.pw_init)(std::ptr::null_mut(), std::ptr::null_mut()) };
    });
    Ok(api)
}

/// Whether the library can be loaded (without initialising it).
pub(super) fn library_loads() -> bool {
    LIBRARY.get_or_init(load).is_ok()
}

fn load() -> Result<(Library, Api), String> {
    // SAFETY: loading libpipewire runs its ELF constructors, which only register
    // PipeWire's own static state; nothing in this process depends on their order.
    let library = unsafe { Library::new(LIBRARY_NAME) }.map_err(|error| {
        format!("{LIBRARY_NAME} is not installed (apt install libpipewire-0.3-0): {error}")
    })?;
    macro_rules! symbol {
        ($name:ident) => {{
            let name = concat!(stringify!($name), "\0");
            // SAFETY: the symbol's C prototype, from the libpipewire 0.3/1.x headers, is
            // the type of the `Api` field this pointer is stored in.
            let symbol = unsafe { library.get(name.as_bytes()) }
                .map_err(|error| format!("{LIBRARY_NAME} lacks {}: {error}", stringify!($name)))?;
            *symbol
        }};
    }
    let api = Api {
        pw_init: symbol!(pw_init),
        pw_thread_loop_new: symbol!(pw_thread_loop_new),
        pw_thread_loop_destroy: symbol!(pw_thread_loop_destroy),
        pw_thread_loop_start: symbol!(pw_thread_loop_start),
        pw_thread_loop_stop: symbol!(pw_thread_loop_stop),
        pw_thread_loop_lock: symbol!(pw_thread_loop_lock),
        pw_thread_loop_unlock: symbol!(pw_thread_loop_unlock),
        pw_thread_loop_signal: symbol!(pw_thread_loop_signal),
        pw_thread_loop_get_time: symbol!(pw_thread_loop_get_time),
        pw_thread_loop_timed_wait_full: symbol!(pw_thread_loop_timed_wait_full),
        pw_thread_loop_get_loop: symbol!(pw_thread_loop_get_loop),
        pw_context_new: symbol!(pw_context_new),
        pw_context_destroy: symbol!(pw_context_destroy),
        pw_context_connect: symbol!(pw_context_connect),
        pw_core_disconnect: symbol!(pw_core_disconnect),
        pw_properties_new_dict: symbol!(pw_properties_new_dict),
        pw_stream_new: symbol!(pw_stream_new),
        pw_stream_destroy: symbol!(pw_stream_destroy),
        pw_stream_add_listener: symbol!(pw_stream_add_listener),
        pw_stream_connect: symbol!(pw_stream_connect),
        pw_stream_state_as_string: symbol!(pw_stream_state_as_string),
        pw_stream_get_node_id: symbol!(pw_stream_get_node_id),
        pw_stream_dequeue_buffer: symbol!(pw_stream_dequeue_buffer),
        pw_stream_queue_buffer: symbol!(pw_stream_queue_buffer),
        pw_stream_set_active: symbol!(pw_stream_set_active),
        pw_stream_get_time_n: symbol!(pw_stream_get_time_n),
    };
    Ok((library, api))
}
