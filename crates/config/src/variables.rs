//! Spin variables: application variables resolved once at start, component
//! variables rendered from `{{ name }}` templates.
//!
//! Resolution order matches Spin's environment-variable provider: an explicit
//! override (set by the embedding, e.g. tests or `bridge up` dev keys), then
//! `SPIN_VARIABLE_<NAME>`, then the declared default. A required variable with
//! none of these is a start-up error, as in `spin up`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, bail};

use crate::manifest::ManifestDoc;

/// Resolved application variables.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: HashMap<String, String>,
}

impl AppVariables {
    /// Resolves every declared application variable.
    ///
    /// # Errors
    /// When a required variable has no value.
    pub fn resolve(
        doc: &ManifestDoc,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut values = HashMap::new();
        for name in doc.variables.keys() {
            if let Some(v) = Self::lookup(doc, overrides, &env, name)? {
                values.insert(name.clone(), v);
            }
        }
        Ok(Self { values })
    }

    /// Resolves one application variable, for a command that needs only
    /// that one (`bridge migrate` needs `database_url`, not the JWT keys).
    /// `None` when the app does not declare it or it has no value.
    ///
    /// # Errors
    /// When the variable is required and has no value.
    pub fn lookup(
        doc: &ManifestDoc,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        let Some(decl) = doc.variables.get(name) else {
            return Ok(None);
        };
        check_name(name)?;
        let value = overrides
            .get(name)
            .cloned()
            .or_else(|| env(&env_key(name)))
            .or_else(|| decl.default.clone());
        match value {
            None if decl.required => bail!(
                "required variable {name:?} has no value: set {} (or pass it to the host)",
                env_key(name)
            ),
            value => Ok(value),
        }
    }

    /// The value of an application variable, if it has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Renders a template such as `postgres://{{ db_host }}/x`.
    ///
    /// # Errors
    /// When the template is malformed or names a variable without a value.
    pub fn render(&self, template: &str) -> anyhow::Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("unterminated '{{{{' in {template:?}"))?;
            let name = after[..end].trim();
            let value = self.get(name).with_context(|| {
                format!("template {template:?} uses undefined variable {name:?}")
            })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The environment variable Spin reads for a variable: `SPIN_VARIABLE_` + upper case.
pub fn env_key(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// Spin variable names: lower-case letters, digits and underscores, starting with a letter.
///
/// # Errors
/// When the name breaks that rule.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        bail!("invalid variable name {name:?}: use lower-case letters, digits and '_'")
    }
}

/// A component's variables with templates rendered, ready for `variables.get`.
pub fn component_variables(
    app: &AppVariables,
    declared: &BTreeMap<String, String>,
) -> anyhow::Result<HashMap<String, String>> {
    declared
        .iter()
        .map(|(name, template)| {
            check_name(name)?;
            let value = app
                .render(template)
                .with_context(|| format!("component variable {name:?}"))?;
            Ok((name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(pairs: &[(&str, &str)]) -> AppVariables {
        AppVariables {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn renders_templates_with_spaces_and_literals() {
        let vars = app(&[("host", "db"), ("port", "5432")]);
        assert_eq!(
            vars.render("postgres://{{ host }}:{{port}}/x").unwrap(),
            "postgres://db:5432/x"
        );
        assert_eq!(vars.render("plain").unwrap(), "plain");
    }

    #[test]
    fn undefined_and_unterminated_templates_fail() {
        let vars = app(&[]);
        assert!(vars.render("{{ nope }}").is_err());
        assert!(vars.render("{{ open").is_err());
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        assert!(check_name("database_url").is_ok());
        assert!(check_name("Database").is_err());
        assert!(check_name("1x").is_err());
        assert!(check_name("a-b").is_err());
    }

    #[test]
    fn env_overrides_default_and_required_is_enforced() {
        let doc: ManifestDoc = toml::from_str(
            "spin_manifest_version = 2\n[application]\nname='x'\n[variables]\na={default='d'}\nb={required=true}\n",
        )
        .unwrap();
        let env = |k: &str| (k == "SPIN_VARIABLE_A").then(|| "from-env".to_string());
        assert!(AppVariables::resolve(&doc, &BTreeMap::new(), env).is_err());
        let overrides = BTreeMap::from([("b".to_string(), "given".to_string())]);
        let vars = AppVariables::resolve(&doc, &overrides, env).unwrap();
        assert_eq!(vars.get("a"), Some("from-env"));
        assert_eq!(vars.get("b"), Some("given"));
    }

    #[test]
    fn one_variable_resolves_without_the_others() {
        let doc: ManifestDoc = toml::from_str(
            "spin_manifest_version = 2\n[application]\nname='x'\n[variables]\na={default='d'}\nb={required=true}\n",
        )
        .unwrap();
        let none = |_: &str| None;
        let overrides = BTreeMap::new();
        assert_eq!(
            AppVariables::lookup(&doc, &overrides, none, "a").unwrap(),
            Some("d".to_string())
        );
        assert_eq!(
            AppVariables::lookup(&doc, &overrides, none, "zz").unwrap(),
            None
        );
        assert!(AppVariables::lookup(&doc, &overrides, none, "b").is_err());
    }
}
