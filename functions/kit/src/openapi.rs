//! The API description beside the code, and the check that keeps the two
//! together.
//!
//! Each component describes its own routes in `functions/<svc>/openapi.json`
//! (OpenAPI 3.1: its `paths`, `tags` and `components`); the pieces every
//! component shares — the problem+json schema, the bearer and delivery
//! security schemes, the rate-limit headers, the common error responses —
//! are kit's fragment, [`COMMON`]. The gateway merges them all into the
//! document it serves at `GET /openapi.json` (see its `build.rs`).
//!
//! [`assert_fragment_matches`] is what each component's unit test runs: its
//! routing table and its fragment must name the same operations, so a
//! route cannot be added (or removed) without its description.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::router::{Guard, Route};

/// kit's fragment: the document's `openapi` and `info`, and the shared
/// components every other fragment may `$ref`.
pub const COMMON: &str = include_str!("../openapi.json");

/// The extension marking an operation as a bridge delivery (signed,
/// never rate-limited; what [`Guard::Delivery`] routes are).
pub const DELIVERY_EXTENSION: &str = "x-spinmesh-delivery";

/// The HTTP methods a path item may describe: as OpenAPI spells them, and
/// as routing tables do.
pub const METHODS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("trace", "TRACE"),
];

/// One operation of a document.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'d> {
    /// Upper-case method (`GET`), as routing tables spell it.
    pub method: &'static str,
    /// The path template (`/products/{id}`).
    pub path: &'d str,
    /// The operation object.
    pub operation: &'d Value,
    /// The path item it belongs to (for path-level parameters).
    pub path_item: &'d Value,
}

impl Operation<'_> {
    /// Whether it is marked as a bridge delivery.
    pub fn is_delivery(&self) -> bool {
        self.operation.get(DELIVERY_EXTENSION) == Some(&Value::Bool(true))
    }

    /// `METHOD /path`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every operation `doc` describes, by path, then method.
pub fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (path, item) in paths {
        for (lower, upper) in METHODS {
            if let Some(operation) = item.get(lower) {
                found.push(Operation {
                    method: upper,
                    path,
                    operation,
                    path_item: item,
                });
            }
        }
    }
    found
}

/// What is wrong with `fragment` as the description of `routes`; empty
/// when nothing is.
///
/// Besides naming the same operations in both directions, each operation
/// needs an `operationId`, a tag, its responses and an explicit `security`
/// (`[]` when public); bridge deliveries, and only they, carry
/// [`DELIVERY_EXTENSION`]; the `{name}` captures of a pattern are its path
/// parameters; and every `$ref` resolves in the fragment or in [`COMMON`].
pub fn fragment_problems<H>(fragment: &str, routes: &[Route<H>]) -> Vec<String> {
    let doc: Value = match serde_json::from_str(fragment) {
        Ok(doc) => doc,
        Err(e) => return vec![format!("openapi.json is not JSON: {e}")],
    };
    let common: Value = match serde_json::from_str(COMMON) {
        Ok(common) => common,
        Err(e) => return vec![format!("kit's openapi.json is not JSON: {e}")],
    };
    let mut problems = Vec::new();
    let ops = operations(&doc);
    let described: BTreeSet<(String, String)> = ops
        .iter()
        .map(|op| (op.method.to_owned(), op.path.to_owned()))
        .collect();
    for route in routes {
        let key = (route.method.to_ascii_uppercase(), route.pattern.to_owned());
        if !described.contains(&key) {
            problems.push(format!(
                "{} {} is served but not described in openapi.json",
                key.0, key.1
            ));
        }
    }
    for op in &ops {
        let route = routes
            .iter()
            .find(|r| r.method.eq_ignore_ascii_case(op.method) && r.pattern == op.path);
        match route {
            None => problems.push(format!(
                "{} is described in openapi.json but not served (not in ROUTES)",
                op.label()
            )),
            Some(route) => {
                let delivery = route.guard == Guard::Delivery;
                if delivery != op.is_delivery() {
                    problems.push(format!(
                        "{}: `{DELIVERY_EXTENSION}: true` must mark exactly the bridge's delivery routes",
                        op.label()
                    ));
                }
            }
        }
        problems.extend(operation_problems(op, &doc, &common));
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for reference in refs {
        if resolve(&doc, reference).is_none() && resolve(&common, reference).is_none() {
            problems.push(format!(
                "$ref {reference} resolves neither here nor in kit's openapi.json"
            ));
        }
    }
    problems
}

/// Panics listing every problem [`fragment_problems`] finds.
///
/// # Panics
///
/// When the fragment and the routing table disagree, or the fragment is
/// incomplete.
pub fn assert_fragment_matches<H>(fragment: &str, routes: &[Route<H>]) {
    let problems = fragment_problems(fragment, routes);
    assert!(
        problems.is_empty(),
        "openapi.json and ROUTES disagree:\n  - {}",
        problems.join("\n  - ")
    );
}

fn operation_problems(op: &Operation<'_>, doc: &Value, common: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let label = op.label();
    if !op.operation["operationId"].is_string() {
        problems.push(format!("{label}: no operationId"));
    }
    if op.operation["tags"].as_array().is_none_or(Vec::is_empty) {
        problems.push(format!("{label}: no tag"));
    }
    if op.operation["responses"]
        .as_object()
        .is_none_or(serde_json::Map::is_empty)
    {
        problems.push(format!("{label}: no responses"));
    }
    if !op.operation["security"].is_array() {
        problems.push(format!(
            "{label}: no `security` (say `[]` for a public route)"
        ));
    }
    let captures: BTreeSet<&str> = op
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect();
    let mut declared = BTreeSet::new();
    for list in [&op.path_item["parameters"], &op.operation["parameters"]] {
        for param in list.as_array().into_iter().flatten() {
            let param = match param["$ref"].as_str() {
                Some(reference) => {
                    match resolve(doc, reference).or_else(|| resolve(common, reference)) {
                        Some(param) => param,
                        None => continue,
                    }
                }
                None => param,
            };
            if param["in"] == "path" {
                let name = param["name"].as_str().unwrap_or_default();
                if param["required"] != Value::Bool(true) {
                    problems.push(format!("{label}: path parameter {name} must be required"));
                }
                declared.insert(name.to_owned());
            }
        }
    }
    let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
    if declared != captures {
        problems.push(format!(
            "{label}: path parameters {declared:?} do not match the captures {captures:?}"
        ));
    }
    problems
}

/// Every `$ref` value in `value`.
fn collect_refs<'v>(value: &'v Value, refs: &mut Vec<&'v str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) => refs.push(reference),
                    _ => collect_refs(child, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}

/// What a local `$ref` (`#/components/schemas/Problem`) points to in `doc`.
pub fn resolve<'d>(doc: &'d Value, reference: &str) -> Option<&'d Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[Route<u8>] = &[
        Route::new("GET", "/things/{id}", 1),
        Route::new("POST", "/things", 2),
        Route::delivery("POST", "/things/events", 3),
    ];

    fn fragment(extra_paths: &str) -> String {
        format!(
            r##"{{"paths": {{
                "/things/{{id}}": {{
                    "parameters": [{{"name": "id", "in": "path", "required": true, "schema": {{"type": "string"}}}}],
                    "get": {{"operationId": "getThing", "tags": ["t"], "security": [],
                            "responses": {{"200": {{"description": "ok"}},
                                          "404": {{"$ref": "#/components/responses/NotFound"}}}}}}
                }},
                "/things": {{
                    "post": {{"operationId": "addThing", "tags": ["t"], "security": [{{"bearerAuth": []}}],
                             "responses": {{"201": {{"description": "ok",
                                 "content": {{"application/json": {{"schema": {{"$ref": "#/components/schemas/Thing"}}}}}}}}}}}}
                }},
                "/things/events": {{
                    "post": {{"operationId": "deliverThings", "tags": ["t"], "security": [],
                             "x-spinmesh-delivery": true,
                             "responses": {{"200": {{"description": "ok"}}}}}}
                }}
                {extra_paths}
            }},
            "components": {{"schemas": {{"Thing": {{"type": "object"}}}}}}}}"##
        )
    }

    #[test]
    fn kits_fragment_is_openapi_3_1_and_its_refs_resolve() {
        let common: Value = serde_json::from_str(COMMON).unwrap();
        assert!(common["openapi"].as_str().unwrap().starts_with("3.1."));
        let mut refs = Vec::new();
        collect_refs(&common, &mut refs);
        assert!(!refs.is_empty());
        for reference in refs {
            assert!(resolve(&common, reference).is_some(), "{reference}");
        }
    }

    #[test]
    fn a_matching_fragment_has_no_problems() {
        assert_fragment_matches(&fragment(""), ROUTES);
    }

    #[test]
    fn a_route_missing_from_the_fragment_is_named() {
        let mut routes = ROUTES.to_vec();
        routes.push(Route::new("DELETE", "/things/{id}", 4));
        let problems = fragment_problems(&fragment(""), &routes);
        assert_eq!(
            problems,
            ["DELETE /things/{id} is served but not described in openapi.json"]
        );
    }

    #[test]
    fn an_operation_missing_from_the_routes_is_named() {
        let extra = r#", "/other": {"get": {"operationId": "o", "tags": ["t"], "security": [],
                        "responses": {"200": {"description": "ok"}}}}"#;
        let problems = fragment_problems(&fragment(extra), ROUTES);
        assert_eq!(
            problems,
            ["GET /other is described in openapi.json but not served (not in ROUTES)"]
        );
    }

    #[test]
    fn incomplete_operations_and_dangling_refs_are_named() {
        let extra = r##", "/things/{id}/x": {"get": {"responses": {},
                          "x": {"$ref": "#/components/schemas/Nope"}}}"##;
        let mut routes = ROUTES.to_vec();
        routes.push(Route::new("GET", "/things/{id}/x", 5));
        let problems = fragment_problems(&fragment(extra), &routes).join("\n");
        for expected in [
            "no operationId",
            "no tag",
            "no responses",
            "no `security`",
            "do not match the captures",
            "$ref #/components/schemas/Nope",
        ] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
    }

    #[test]
    fn the_delivery_mark_follows_the_guard() {
        let routes = [
            Route::new("GET", "/things/{id}", 1),
            Route::new("POST", "/things", 2),
            Route::new("POST", "/things/events", 3),
        ];
        let problems = fragment_problems(&fragment(""), &routes);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("POST /things/events"),
            "{problems:?}"
        );
    }
}
