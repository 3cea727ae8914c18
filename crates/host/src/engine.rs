//! The one wasmtime `Engine` and the on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes hundreds of milliseconds; a
//! fresh instance per request is only cheap when that happens once. The
//! engine uses the pooling allocator (instances reuse pre-reserved, copy-on-
//! write memory slots) and epoch interruption (a counter bump per tick, far
//! cheaper than fuel). Compiled code is serialized to disk keyed by the wasm
//! bytes and the engine's compatibility hash, so a restart maps it back in
//! with no compilation.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::HostConfig;

/// How often the epoch advances; per-request deadlines are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Builds the engine: pooling allocator sized for `max_concurrency`
/// instances, each with at most `max_memory` bytes of linear memory.
///
/// # Errors
/// When wasmtime rejects the configuration.
pub fn build_engine(config: &HostConfig) -> anyhow::Result<Engine> {
    let mut wasm = Config::new();
    wasm.epoch_interruption(true);
    wasm.wasm_component_model(true);

    let slots = config.max_concurrency.max(1) as u32;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .total_memories(slots * 4)
        .total_tables(slots * 8)
        .total_stacks(slots)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_memory_size(config.max_memory_bytes)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .table_elements(100_000)
        // Reset used pages with memcpy/memset (found via PAGEMAP_SCAN where
        // the kernel has it) instead of madvise: the slot's pages stay mapped,
        // so the next request takes no page faults and no TLB shootdowns.
        .linear_memory_keep_resident(16 << 20)
        .table_keep_resident(1 << 20)
        .pagemap_scan(wasmtime::Enabled::Auto);
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Reserve only what the limit needs (plus guard), not 4 GiB a memory:
    // keeps the pool's virtual footprint proportional to the memory limit.
    wasm.memory_reservation(config.max_memory_bytes as u64);
    wasm.memory_guard_size(64 << 10);
    match Engine::new(&wasm) {
        Ok(engine) => Ok(engine),
        Err(err) => {
            tracing::warn!(error = %err, "pooling allocator unavailable, using on-demand allocation");
            let mut plain = Config::new();
            plain.epoch_interruption(true);
            plain.wasm_component_model(true);
            Engine::new(&plain)
                .map_err(anyhow::Error::from)
                .context("creating the wasmtime engine")
        }
    }
}

/// Loads a component, from the compile cache when possible.
///
/// # Errors
/// When the file cannot be read or is not a valid component.
pub fn load_component(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: Option<&Path>,
) -> anyhow::Result<Component> {
    let bytes = std::fs::read(wasm_path)
        .with_context(|| format!("reading component {}", wasm_path.display()))?;
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("compiling {}", wasm_path.display()));
    };
    let cached = cache_path(engine, cache_dir, &bytes);
    if cached.exists() {
        // The one unsafe call in the bridge: wasmtime cannot check that a
        // serialized artefact is trustworthy, so the caller vouches for it.
        #[allow(unsafe_code)]
        // SAFETY: the file was written by `Component::serialize` of an engine
        // with the same compatibility hash (part of its name) and lives in a
        // cache directory only this host writes to.
        let loaded = unsafe { Component::deserialize_file(engine, &cached) };
        match loaded {
            Ok(component) => return Ok(component),
            Err(err) => {
                tracing::warn!(path = %cached.display(), error = %err, "ignoring stale compile cache entry")
            }
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling {}", wasm_path.display()))?;
    if let Err(err) = store_cache(&component, &cached) {
        tracing::warn!(error = %err, "could not write compile cache");
    }
    Ok(component)
}

fn cache_path(engine: &Engine, dir: &Path, wasm: &[u8]) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = Sha256::new()
        .chain_update(wasm)
        .chain_update(engine_hash.finish().to_le_bytes())
        .finalize();
    dir.join(format!("{}.cwasm", hex::encode(&digest[..16])))
}

/// Writes atomically (temp file + rename) so concurrent hosts never read a
/// half-written entry.
fn store_cache(component: &Component, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = component.serialize()?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The default cache directory: `$XDG_CACHE_HOME/spinmesh` or `~/.cache/spinmesh`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("spinmesh").join("compiled"))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
pub fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
