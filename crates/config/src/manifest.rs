//! The Spin application manifest (`spin.toml`, manifest version 2).
//!
//! Only what the embedded host acts on is modelled; the rest of Spin's schema
//! is accepted so that one manifest serves `spin up` and `bridge up` alike.
//! Tables under `tool` are Spin's extension point: Spin ignores them and the
//! bridge reads its own (`tool.bridge`) from there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// A parsed `spin.toml` plus the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Directory containing the manifest; component sources are relative to it.
    pub base_dir: PathBuf,
    /// The raw, validated document.
    pub doc: ManifestDoc,
}

/// The document as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDoc {
    /// Must be 2.
    pub spin_manifest_version: u32,
    /// Name, version and description.
    pub application: Application,
    /// Application variables, referenced from component variables as `{{ name }}`.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    /// Triggers by type; only `http` is served by the host.
    #[serde(default)]
    pub trigger: Triggers,
    /// Components by id.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    /// Application name, printed on start.
    pub name: String,
    /// Version string, informational.
    #[serde(default)]
    pub version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Everything else Spin allows here (authors, trigger settings).
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

/// An application variable declaration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value used when nothing overrides it.
    #[serde(default)]
    pub default: Option<String>,
    /// A required variable has no default and must be provided.
    #[serde(default)]
    pub required: bool,
    /// Secret values are never printed.
    #[serde(default)]
    pub secret: bool,
}

/// `[[trigger.<type>]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Triggers {
    /// HTTP triggers in declaration order.
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    /// Other trigger types (redis, cron…) which the host does not serve.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// Optional trigger id.
    #[serde(default)]
    pub id: Option<String>,
    /// `"/path"`, `"/path/..."`, or `{ private = true }` for no route.
    pub route: RouteDecl,
    /// The component id this route invokes (inline components are not supported).
    pub component: String,
    /// Spin's executor table; only the default (`spin`) is supported.
    #[serde(default)]
    pub executor: Option<toml::Value>,
}

/// A trigger route: a path pattern, or private (reachable only internally).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteDecl {
    /// A path pattern.
    Path(String),
    /// `{ private = true }`.
    Private {
        /// Always true.
        private: bool,
    },
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    /// Path of the `.wasm`, relative to the manifest.
    pub source: ComponentSource,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Component variables; values may use `{{ app_variable }}` templates.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables visible to the guest.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Hosts the component may connect to (`scheme://host:port`).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// How to build the source.
    #[serde(default)]
    pub build: Option<BuildDecl>,
    /// Tool-specific tables, ignored by Spin.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Value>,
    /// Static files to mount: accepted, not supported by the embedded host.
    #[serde(default)]
    pub files: Vec<toml::Value>,
    /// Files excluded from `files`.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// SQLite databases: accepted, not provided by the embedded host.
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// AI models: accepted, not provided by the embedded host.
    #[serde(default)]
    pub ai_models: Vec<String>,
}

/// A component's `source`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ComponentSource {
    /// A local path.
    Path(String),
    /// A remote URL with digest, which the embedded host does not download.
    Remote {
        /// Where to download it.
        url: String,
        /// Expected digest.
        digest: String,
    },
}

/// `[component.<id>.build]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDecl {
    /// Shell command, run from `workdir` (default: the manifest directory).
    pub command: String,
    /// Working directory relative to the manifest.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Globs of inputs; a change to any of them makes the build run again.
    #[serde(default)]
    pub watch: Vec<String>,
}

impl Manifest {
    /// Reads and validates a manifest.
    ///
    /// # Errors
    /// When the file cannot be read, is not valid TOML of manifest version 2,
    /// or a trigger names an unknown component.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let doc: ManifestDoc =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if doc.spin_manifest_version != 2 {
            bail!(
                "{}: spin_manifest_version {} is not supported (expected 2)",
                path.display(),
                doc.spin_manifest_version
            );
        }
        for trigger in &doc.trigger.http {
            if !doc.component.contains_key(&trigger.component) {
                bail!(
                    "trigger route {:?} names component {:?}, which is not defined",
                    trigger.route,
                    trigger.component
                );
            }
        }
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base_dir = if base_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base_dir
        };
        Ok(Self { base_dir, doc })
    }

    /// Absolute-or-relative path of a component's wasm file.
    ///
    /// # Errors
    /// When the source is remote (the embedded host does not download).
    pub fn source_path(&self, id: &str, decl: &ComponentDecl) -> anyhow::Result<PathBuf> {
        match &decl.source {
            ComponentSource::Path(p) => Ok(self.base_dir.join(p)),
            ComponentSource::Remote { url, .. } => {
                bail!("component {id}: remote sources ({url}) are not supported by bridge up")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_manifest_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let m = Manifest::load(&path).expect("spin.toml parses");
        assert!(m.doc.component.contains_key("auth"));
        assert!(m.doc.trigger.http.iter().any(|t| t.component == "auth"));
    }

    #[test]
    fn unknown_component_in_trigger_is_rejected() {
        let dir = std::env::temp_dir().join(format!("manifest-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spin.toml");
        std::fs::write(
            &path,
            "spin_manifest_version = 2\n[application]\nname='x'\n[[trigger.http]]\nroute='/a'\ncomponent='nope'\n",
        )
        .unwrap();
        let err = Manifest::load(&path).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
