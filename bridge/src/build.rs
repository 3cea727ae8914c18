//! `bridge up --build` / `bridge build`: runs each component's build command
//! from `spin.toml`, like `spin build`, skipping components whose output is
//! newer than every file their `watch` globs match.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, bail};

use crate::manifest::{ComponentDecl, Manifest};

/// Builds every component that has a build command and changed sources.
/// With `force`, builds regardless of timestamps.
///
/// # Errors
/// When a build command fails or cannot be started.
pub fn build_all(manifest: &Manifest, force: bool) -> anyhow::Result<()> {
    for (id, decl) in &manifest.doc.component {
        let Some(build) = &decl.build else { continue };
        if !force && up_to_date(manifest, id, decl)? {
            tracing::info!(component = %id, "up to date");
            continue;
        }
        let workdir = match &build.workdir {
            Some(w) => manifest.base_dir.join(w),
            None => manifest.base_dir.clone(),
        };
        println!("Building component {id} with `{}`", build.command);
        let status = Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(&workdir)
            .status()
            .with_context(|| format!("starting the build of {id}"))?;
        if !status.success() {
            bail!("build of component {id} failed ({status})");
        }
    }
    Ok(())
}

/// True when the output exists and is newer than every watched input.
/// Without `watch` globs a component is always rebuilt (cargo itself then
/// decides quickly that nothing changed).
fn up_to_date(manifest: &Manifest, id: &str, decl: &ComponentDecl) -> anyhow::Result<bool> {
    let Some(build) = &decl.build else {
        return Ok(true);
    };
    if build.watch.is_empty() {
        return Ok(false);
    }
    let output = manifest.source_path(id, decl)?;
    let Some(built) = modified(&output) else {
        return Ok(false);
    };
    let base = match &build.workdir {
        Some(w) => manifest.base_dir.join(w),
        None => manifest.base_dir.clone(),
    };
    for pattern in &build.watch {
        let full = base.join(pattern);
        let pattern = full.to_string_lossy();
        let matches = glob::glob(&pattern).with_context(|| format!("watch glob {pattern}"))?;
        if matches
            .flatten()
            .any(|path| modified(&path).is_some_and(|m| m > built))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
