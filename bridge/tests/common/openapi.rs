//! Answers checked against the application's OpenAPI document (`GET
//! /openapi.json`), as a client generated from it would read them: the
//! status is documented for the operation, the content type is one it
//! lists, the body validates against its schema (JSON Schema 2020-12, as
//! OpenAPI 3.1 has it) and the required headers are there.

use serde_json::{Value, json};

use super::{Reply, TestApp};

/// The OpenAPI document an app serves.
pub struct Spec {
    /// The document.
    pub doc: Value,
}

/// One operation of the document.
pub struct Operation<'s> {
    /// Upper-case method.
    pub method: String,
    /// The path template (`/products/{id}`).
    pub path: &'s str,
    /// The operation object.
    pub operation: &'s Value,
    /// Its path item (path-level parameters live there).
    pub path_item: &'s Value,
}

impl Operation<'_> {
    /// Every parameter, path-level ones first, `$ref`s resolved.
    pub fn parameters<'d>(&'d self, spec: &'d Spec) -> Vec<&'d Value> {
        [&self.path_item["parameters"], &self.operation["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .map(|p| spec.resolved(p))
            .collect()
    }

    /// `METHOD /path`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl Spec {
    /// Fetches `GET /openapi.json` from `app`.
    pub async fn of(app: &TestApp) -> Self {
        let r = app.get("/openapi.json", None).await;
        assert_eq!(r.status, 200, "GET /openapi.json: {}", r.text);
        Self { doc: r.json() }
    }

    /// Every operation, in document order.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        let mut ops = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths").iter() {
            for method in [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ] {
                if let Some(operation) = item.get(method) {
                    ops.push(Operation {
                        method: method.to_ascii_uppercase(),
                        path,
                        operation,
                        path_item: item,
                    });
                }
            }
        }
        ops
    }

    /// `value`, or what its `$ref` names (one level, local refs only).
    pub fn resolved<'d>(&'d self, value: &'d Value) -> &'d Value {
        match value["$ref"].as_str() {
            Some(reference) => self
                .doc
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{reference} does not resolve")),
            None => value,
        }
    }

    /// Asserts that `reply` is an answer the document allows for
    /// `method path` (`path` is the template, e.g. `/orders/{id}`).
    pub fn assert_conforms(&self, method: &str, path: &str, reply: &Reply) {
        if let Err(why) = self.conforms(method, path, reply) {
            panic!(
                "{method} {path} answered {} against the OpenAPI document: {why}\nbody: {}",
                reply.status, reply.text
            );
        }
    }

    /// Why `reply` is not an answer the document allows, if it is not.
    ///
    /// # Errors
    ///
    /// What does not conform.
    pub fn conforms(&self, method: &str, path: &str, reply: &Reply) -> Result<(), String> {
        let operation = &self.doc["paths"][path][method.to_ascii_lowercase()];
        if operation.is_null() {
            return Err("the operation is not in the document".into());
        }
        let status = reply.status.to_string();
        let class = format!("{}XX", &status[..1]);
        let response = [status.as_str(), class.as_str(), "default"]
            .into_iter()
            .find_map(|key| operation["responses"].get(key))
            .ok_or_else(|| format!("status {status} is not documented"))?;
        let response = self.resolved(response);
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = self.resolved(header);
            match reply.headers.get(name.as_str()) {
                None if header["required"] == Value::Bool(true) => {
                    return Err(format!("the required header {name} is missing"));
                }
                None => {}
                Some(value) => {
                    let text = value.to_str().map_err(|_| format!("{name} is not text"))?;
                    self.validate(&header["schema"], &header_value(&header["schema"], text))
                        .map_err(|e| format!("header {name}: {e}"))?;
                }
            }
        }
        let Some(content) = response["content"].as_object() else {
            return if reply.text.is_empty() {
                Ok(())
            } else {
                Err("a body where the document lists no content".into())
            };
        };
        let media_type = reply
            .content_type()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let described = content.get(media_type).ok_or_else(|| {
            format!(
                "content type {media_type:?} is not one of {:?}",
                content.keys().collect::<Vec<_>>()
            )
        })?;
        if media_type.ends_with("json") {
            let body: Value = serde_json::from_str(&reply.text)
                .map_err(|e| format!("the body is not JSON: {e}"))?;
            self.validate(&described["schema"], &body)?;
        }
        Ok(())
    }

    /// Validates `instance` against `schema`, whose `$ref`s point into the
    /// document's components.
    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        if schema.is_null() {
            return Ok(());
        }
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": self.doc["components"],
        });
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("the schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// A header's text as the JSON value its schema describes (headers are
/// text on the wire; an integer header is compared as a number).
fn header_value(schema: &Value, text: &str) -> Value {
    match schema["type"].as_str() {
        Some("integer") => text
            .trim()
            .parse::<i64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        _ => json!(text),
    }
}
