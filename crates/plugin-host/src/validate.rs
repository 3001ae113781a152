//! Static checks of a compiled module against the ABI: imports, exports, memory.
//!
//! Run before anything of the plugin executes; each refusal names what is wrong.

use wasmtime::{ExternType, Module, ValType};

use crate::abi::{EXPORTS, LOG_MODULE, LOG_NAME, MAX_MEMORY_BYTES, Need, WASI_MODULES};
use crate::error::{PluginError, Result};
use crate::manifest::Kind;

fn signature(params: &[ValType], results: &[ValType]) -> String {
    let list = |types: &[ValType]| {
        types
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn same(expected: &[ValType], actual: impl ExactSizeIterator<Item = ValType>) -> bool {
    actual.len() == expected.len() && actual.zip(expected).all(|(a, e)| ValType::eq(&a, e))
}

/// Checks the imports and the shape of the exports. The kind-specific exports are checked
/// by [`check_kind`] once the manifest is known.
pub fn check_module(module: &Module) -> Result<()> {
    for import in module.imports() {
        let (from, name) = (import.module(), import.name());
        if WASI_MODULES.contains(&from) || from.starts_with("wasi:") {
            return Err(PluginError::Rejected(format!(
                "imports {from}.{name}: WASI is not offered to plugins (no files, clocks or network)"
            )));
        }
        if (from, name) != (LOG_MODULE, LOG_NAME) {
            return Err(PluginError::Rejected(format!(
                "imports {from}.{name}: the only import offered is {LOG_MODULE}.{LOG_NAME}"
            )));
        }
        match import.ty() {
            ExternType::Func(func)
                if same(&[ValType::I32, ValType::I32], func.params())
                    && func.results().len() == 0 => {}
            _ => {
                return Err(PluginError::Rejected(format!(
                    "imports {LOG_MODULE}.{LOG_NAME} with the wrong type; it is (i32 ptr, i32 len) -> ()"
                )));
            }
        }
    }
    let memory = module
        .exports()
        .find(|export| export.name() == "memory")
        .ok_or_else(|| PluginError::Rejected("missing export 'memory'".into()))?;
    match memory.ty() {
        ExternType::Memory(memory) => {
            if memory.is_64() || memory.is_shared() {
                return Err(PluginError::Rejected(
                    "'memory' must be an unshared 32-bit memory".into(),
                ));
            }
            let minimum = memory.minimum().saturating_mul(memory.page_size());
            if minimum > MAX_MEMORY_BYTES as u64 {
                return Err(PluginError::Rejected(format!(
                    "'memory' starts at {minimum} bytes, more than the {MAX_MEMORY_BYTES} allowed"
                )));
            }
        }
        _ => {
            return Err(PluginError::Rejected(
                "export 'memory' is not a memory".into(),
            ));
        }
    }
    let mut memories = 0;
    for export in module.exports() {
        if let ExternType::Memory(_) = export.ty() {
            memories += 1;
        }
    }
    if memories != 1 {
        return Err(PluginError::Rejected(format!(
            "exports {memories} memories; exactly one, 'memory', is allowed"
        )));
    }
    for (name, params, results, need) in EXPORTS {
        let export = module.exports().find(|export| export.name() == *name);
        match (export.map(|e| e.ty()), need) {
            (None, Need::Always) => {
                return Err(PluginError::Rejected(format!(
                    "missing export '{name}' {}",
                    signature(params, results)
                )));
            }
            (None, _) => {}
            (Some(ExternType::Func(func)), _)
                if same(params, func.params()) && same(results, func.results()) => {}
            (Some(_), _) => {
                return Err(PluginError::Rejected(format!(
                    "export '{name}' must be a function {}",
                    signature(params, results)
                )));
            }
        }
    }
    Ok(())
}

/// Checks that the exports a plugin of `kind` needs are there.
pub fn check_kind(module: &Module, kind: Kind) -> Result<()> {
    for (name, params, results, need) in EXPORTS {
        let needed = match need {
            Need::Always => false,
            Need::NotMixer => kind != Kind::Mixer,
            Need::Mixer => kind == Kind::Mixer,
            Need::Resampler => kind == Kind::Resampler,
        };
        if needed && module.exports().all(|export| export.name() != *name) {
            return Err(PluginError::Rejected(format!(
                "a {} must export '{name}' {}",
                kind.name(),
                signature(params, results)
            )));
        }
    }
    Ok(())
}
