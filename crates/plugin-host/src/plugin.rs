//! A loaded plugin: compiled, checked, pre-instantiated, its manifest read. It builds
//! kernels for the engine ([`KernelFactory`]).

use std::sync::Arc;

use paravox_engine::plugin::{KernelFactory, KernelSetup, PluginKernel, StageRole};
use sha2::{Digest, Sha256};
use wasmtime::{InstancePre, Module, Store};

use crate::abi::{ABI_VERSION, MAX_MANIFEST_BYTES};
use crate::error::{PluginError, Result};
use crate::kernel::Kernel;
use crate::manifest::Manifest;
use crate::runtime::{CodeSource, HostState, PluginRuntime, base_ticks};
use crate::validate::{check_kind, check_module};

/// How long setting an instance up (init, the warm-up call) may take, in milliseconds.
pub(crate) const SETUP_MS: u64 = 1000;

/// A plugin ready to be instantiated.
pub struct Plugin {
    runtime: Arc<PluginRuntime>,
    pre: InstancePre<HostState>,
    manifest: Manifest,
    sha256: [u8; 32],
    source: CodeSource,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("kind", &self.manifest.kind)
            .finish()
    }
}

impl Plugin {
    pub(crate) fn new(
        runtime: Arc<PluginRuntime>,
        module: Module,
        source: CodeSource,
        wasm: &[u8],
    ) -> Result<Plugin> {
        check_module(&module)?;
        let pre = runtime
            .linker()
            .instantiate_pre(&module)
            .map_err(|error| PluginError::Rejected(format!("{error:#}")))?;
        let manifest = read_manifest(&runtime, &pre)?;
        check_kind(&module, manifest.kind)?;
        Ok(Plugin {
            runtime,
            pre,
            manifest,
            sha256: Sha256::digest(wasm).into(),
            source,
        })
    }

    /// What the plugin declared.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the module.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Whether the code came from the cache.
    pub fn code_source(&self) -> CodeSource {
        self.source
    }

    /// A fresh store and instance with the limits in place (setup deadline).
    pub(crate) fn instantiate_raw(&self) -> Result<(Store<HostState>, wasmtime::Instance)> {
        let mut store = Store::new(
            self.runtime.engine(),
            self.runtime.host_state(&self.manifest.name),
        );
        store.limiter(|state| &mut state.limits);
        crate::deadline::arm(&mut store);
        store.set_epoch_deadline(store.data().deadline_ticks(base_ticks(SETUP_MS)));
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|error| PluginError::Setup(format!("instantiating: {error:#}")))?;
        Ok((store, instance))
    }

    /// An initialized, warmed kernel for `role` (see the [`kernel`](crate::kernel) module).
    pub fn kernel(self: &Arc<Self>, role: StageRole, setup: &KernelSetup) -> Result<Kernel> {
        self.manifest.check_setup(role, setup)?;
        Kernel::new(self, setup)
    }
}

fn read_manifest(runtime: &PluginRuntime, pre: &InstancePre<HostState>) -> Result<Manifest> {
    let mut store = Store::new(runtime.engine(), runtime.host_state("(loading)"));
    store.limiter(|state| &mut state.limits);
    crate::deadline::arm(&mut store);
    store.set_epoch_deadline(store.data().deadline_ticks(base_ticks(SETUP_MS)));
    let instance = pre
        .instantiate(&mut store)
        .map_err(|error| PluginError::Rejected(format!("instantiating: {error:#}")))?;
    let call_error =
        |what: &str, error: wasmtime::Error| PluginError::Rejected(format!("{what}: {error:#}"));
    let version = instance
        .get_typed_func::<(), i32>(&mut store, "paravox_abi_version")
        .and_then(|f| f.call(&mut store, ()))
        .map_err(|e| call_error("paravox_abi_version", e))?;
    if version != ABI_VERSION {
        return Err(PluginError::Rejected(format!(
            "ABI version {version}; this host speaks version {ABI_VERSION}"
        )));
    }
    let packed = instance
        .get_typed_func::<(), i64>(&mut store, "paravox_manifest")
        .and_then(|f| f.call(&mut store, ()))
        .map_err(|e| call_error("paravox_manifest", e))?;
    let (ptr, len) = (
        (packed as u64 >> 32) as usize,
        (packed as u64 & 0xffff_ffff) as usize,
    );
    if len > MAX_MANIFEST_BYTES {
        return Err(PluginError::Manifest(format!(
            "{len} bytes, more than the {MAX_MANIFEST_BYTES} allowed"
        )));
    }
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| PluginError::Rejected("missing export 'memory'".into()))?;
    let bytes = memory
        .data(&store)
        .get(ptr..ptr.saturating_add(len))
        .ok_or_else(|| {
            PluginError::Manifest(format!(
                "{ptr:#x}+{len} lies outside the plugin's {} bytes of memory",
                memory.data_size(&store)
            ))
        })?;
    Manifest::parse(bytes)
}

impl KernelFactory for Plugin {
    fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The shipped `mix`, byte for byte: at its defaults (no soft clipping, every input
    /// at unity) its output is the native sum, so one input comes back as it went in.
    fn sums_plainly(&self) -> bool {
        static SHIPPED_MIX: std::sync::LazyLock<[u8; 32]> =
            std::sync::LazyLock::new(|| Sha256::digest(crate::shipped::MIX).into());
        self.sha256 == *SHIPPED_MIX
    }

    fn instantiate(
        &self,
        role: StageRole,
        setup: &KernelSetup,
    ) -> std::result::Result<Box<dyn PluginKernel>, String> {
        self.manifest
            .check_setup(role, setup)
            .map_err(|error| error.to_string())?;
        Kernel::new(self, setup)
            .map(|kernel| Box::new(kernel) as Box<dyn PluginKernel>)
            .map_err(|error| error.to_string())
    }
}
