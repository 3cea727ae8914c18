//! `GET /openapi.json` and `GET /docs`: the description of every route is
//! served, every route the manifest gives a component is described, every
//! operation described is answered by its handler (not the router's 404 or
//! 405), real answers conform to it, and the docs page loads Swagger UI
//! from this origin only.

use std::time::Duration;

use bridge::events::dispatch::DispatchConfig;
use bridge::manifest::{Manifest, RouteDecl};
use serde_json::{Value, json};

use crate::common::openapi::{Operation, Spec};
use crate::common::store::PASSWORD;
use crate::common::subscriber::eventually;
use crate::common::{Options, Reply, TestApp, root};

/// Whether `reply` is the kit router's own refusal: no route for the path
/// (404 `no route for ...`) or not for this method (405). A handler's 404
/// (`no product ...`) is an answer from the route.
fn router_refusal(reply: &Reply) -> bool {
    match reply.status {
        405 => true,
        404 => reply.json()["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("no route for")),
        _ => false,
    }
}

/// A value for each `{name}` of the operation's path: its enum's first
/// value, a fresh UUID where it is one, else a plain word.
fn sample_path(op: &Operation<'_>, spec: &Spec) -> String {
    let mut path = op.path.to_owned();
    for param in op.parameters(spec) {
        if param["in"] != "path" {
            continue;
        }
        let schema = &param["schema"];
        let value = match (&schema["enum"][0], schema["format"].as_str()) {
            (Value::String(first), _) => first.clone(),
            (_, Some("uuid")) => uuid::Uuid::new_v4().to_string(),
            _ => "sample".to_owned(),
        };
        let name = param["name"].as_str().expect("a named parameter");
        path = path.replace(&format!("{{{name}}}"), &value);
    }
    path
}

#[tokio::test]
async fn openapi_document_is_3_1_and_describes_every_manifest_route() {
    let app = TestApp::spawn().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type(), "application/json");
    assert!(r.headers.get("etag").is_some(), "{:?}", r.headers);
    let spec = Spec::of(&app).await;
    let version = spec.doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert!(spec.doc["info"]["title"].is_string());
    let schemes = &spec.doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");

    // Every route the manifest gives a function has its operations here:
    // an exact route is a path, a wildcard has paths under it. (`/...` is
    // the gateway's catch-all; its own routes are checked below.)
    let manifest = Manifest::load(&root().join("spin.toml")).unwrap();
    let paths: Vec<&String> = spec.doc["paths"].as_object().unwrap().keys().collect();
    for trigger in &manifest.doc.trigger.http {
        let RouteDecl::Path(route) = &trigger.route else {
            continue;
        };
        let described = match route.strip_suffix("...") {
            Some("/") => continue,
            Some(prefix) => paths.iter().any(|p| p.starts_with(prefix)),
            None => paths.contains(&route),
        };
        assert!(
            described,
            "the manifest routes {route} to {}, but /openapi.json describes nothing there",
            trigger.component
        );
    }

    // Unchanged: a 304 without a body.
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(app.url("/openapi.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn openapi_every_described_operation_is_served_and_answers_as_described() {
    let app = TestApp::spawn().await;
    let spec = Spec::of(&app).await;
    let ops = spec.operations();
    assert!(ops.len() >= 40, "only {} operations", ops.len());
    for op in &ops {
        let path = sample_path(op, &spec);
        // No credentials and an empty object for a body: each operation's
        // own answer to that (401, 404, 422 ...) is documented too.
        let body = if op.operation.get("requestBody").is_some() {
            b"{}".to_vec()
        } else {
            Vec::new()
        };
        let reply = app.send(&op.method, &path, body, None).await;
        assert!(
            !router_refusal(&reply),
            "{} ({path}) is described but not served: {} {}",
            op.label(),
            reply.status,
            reply.text
        );
        spec.assert_conforms(&op.method, op.path, &reply);
    }
}

#[tokio::test]
async fn openapi_docs_page_loads_swagger_ui_from_this_origin() {
    let app = TestApp::spawn().await;
    let spec = Spec::of(&app).await;
    let page = app.get("/docs", None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    spec.assert_conforms("GET", "/docs", &page);
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "the page names another origin:\n{}",
        page.text
    );

    // Every file the page names comes from here, with its type and
    // caching headers.
    let linked: Vec<&str> = page
        .text
        .split(['"', '\''])
        .filter(|s| s.starts_with("/docs/"))
        .collect();
    for name in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "docs.js",
        "favicon-32x32.png",
    ] {
        assert!(
            linked.contains(&format!("/docs/{name}").as_str()),
            "{name} not linked: {linked:?}"
        );
    }
    for path in linked {
        let r = app.get(path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let wanted = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("png") => "image/png",
            other => panic!("an unexpected file type {other:?}: {path}"),
        };
        assert_eq!(r.content_type(), wanted, "{path}");
        assert_eq!(
            r.headers["cache-control"], "public, max-age=86400",
            "{path}"
        );
        assert!(r.headers.get("etag").is_some(), "{path}");
        spec.assert_conforms("GET", "/docs/{asset}", &r);
    }

    // The start-up script reads the description from this origin.
    let start = app.get("/docs/docs.js", None).await;
    assert!(
        start.text.contains("url: \"/openapi.json\""),
        "{}",
        start.text
    );
    assert!(start.text.contains("validatorUrl: null"), "{}", start.text);

    // A name the page does not use is the handler's 404, described.
    let missing = app.get("/docs/swagger-ui.js", None).await;
    missing.assert_problem(404, "an unknown docs file");
    assert!(!router_refusal(&missing), "{}", missing.text);
    spec.assert_conforms("GET", "/docs/{asset}", &missing);
}

/// A made-up client address no other test (or run within the window)
/// uses, so the counters a test spends are its own.
fn fresh_address() -> String {
    let b = *uuid::Uuid::new_v4().as_bytes();
    format!(
        "2001:db8:{:x}:{:x}::{:x}",
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]])
    )
}

#[tokio::test]
async fn openapi_rate_limited_answers_conform() {
    // Behind one trusted proxy, so each request speaks for the address
    // its `X-Forwarded-For` names; day-long windows never end mid-test.
    let app = TestApp::spawn_with(Options {
        extra_vars: [
            ("rate_limit_requests", "1"),
            ("rate_limit_window_seconds", "86400"),
            ("rate_limit_trusted_proxies", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        ..Options::default()
    })
    .await;
    let from = |address: &str, path: &str| {
        app.client
            .get(app.url(path))
            .header("x-forwarded-for", address)
            .send()
    };
    let spec = Spec {
        doc: Reply::from(from(&fresh_address(), "/openapi.json").await.unwrap())
            .await
            .json(),
    };
    let client = fresh_address();
    let counted = Reply::from(from(&client, "/products/health").await.unwrap()).await;
    assert_eq!(counted.status, 200, "{}", counted.text);
    assert!(
        counted.headers.get("ratelimit").is_some(),
        "{:?}",
        counted.headers
    );
    spec.assert_conforms("GET", "/products/health", &counted);
    let refused = Reply::from(from(&client, "/products/health").await.unwrap()).await;
    refused.assert_problem(429, "the second request");
    spec.assert_conforms("GET", "/products/health", &refused);
}

/// An app and its document: each [`Checked::call`] is one line of the
/// real-answers test.
struct Checked<'a> {
    app: &'a TestApp,
    spec: &'a Spec,
}

impl Checked<'_> {
    /// Sends `method path` and asserts the answer has `status` and
    /// conforms to the document's `template` operation.
    async fn call(
        &self,
        (method, path, template): (&str, &str, &str),
        body: Option<Value>,
        token: Option<&str>,
        status: u16,
    ) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let reply = self.app.send(method, path, bytes, token).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        self.spec.assert_conforms(method, template, &reply);
        reply
    }
}

#[tokio::test]
async fn openapi_real_answers_conform_to_the_document() {
    let app = TestApp::spawn_with(Options {
        events: Some(DispatchConfig::default()),
        ..Options::default()
    })
    .await;
    let spec = Spec::of(&app).await;
    let c = Checked {
        app: &app,
        spec: &spec,
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("ada-{id}@example.com");
    let name = format!("ada{}", &id[..12]);

    // Accounts and sessions.
    let reg = json!({"email": email, "password": PASSWORD, "username": name});
    c.call(
        ("POST", "/auth/register", "/auth/register"),
        Some(reg.clone()),
        None,
        201,
    )
    .await;
    c.call(
        ("POST", "/auth/register", "/auth/register"),
        Some(reg),
        None,
        409,
    )
    .await;
    let bad = json!({"email": "nope", "password": "short"});
    c.call(
        ("POST", "/auth/register", "/auth/register"),
        Some(bad),
        None,
        422,
    )
    .await;
    let r = app
        .send("POST", "/auth/register", b"{not json".to_vec(), None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    spec.assert_conforms("POST", "/auth/register", &r);
    let login = json!({"email": email, "password": PASSWORD});
    let pair = c
        .call(
            ("POST", "/auth/login", "/auth/login"),
            Some(login.clone()),
            None,
            200,
        )
        .await
        .json();
    let wrong = json!({"username": name, "password": "not the password"});
    c.call(
        ("POST", "/auth/login", "/auth/login"),
        Some(wrong),
        None,
        401,
    )
    .await;
    let token = pair["access_token"].as_str().unwrap().to_owned();
    c.call(("GET", "/auth/me", "/auth/me"), None, Some(&token), 200)
        .await;
    c.call(("GET", "/auth/me", "/auth/me"), None, None, 401)
        .await;
    let rename = json!({"username": format!("{name}x")});
    c.call(
        ("PATCH", "/auth/me", "/auth/me"),
        Some(rename),
        Some(&token),
        200,
    )
    .await;
    let refresh = json!({"refresh_token": pair["refresh_token"]});
    let pair = c
        .call(
            ("POST", "/auth/refresh", "/auth/refresh"),
            Some(refresh.clone()),
            None,
            200,
        )
        .await
        .json();
    c.call(
        ("POST", "/auth/refresh", "/auth/refresh"),
        Some(refresh),
        None,
        401,
    )
    .await;
    let other = pair["access_token"].as_str().unwrap().to_owned();
    let out = json!({"refresh_token": pair["refresh_token"]});
    c.call(
        ("POST", "/auth/logout", "/auth/logout"),
        Some(out),
        Some(&other),
        204,
    )
    .await;
    c.call(
        ("GET", "/auth/health?deep=1", "/auth/health"),
        None,
        None,
        200,
    )
    .await;

    // The older services' routes.
    let old = json!({"email": format!("old-{id}@example.com"), "password": PASSWORD});
    c.call(
        ("POST", "/register", "/register"),
        Some(old.clone()),
        None,
        200,
    )
    .await;
    c.call(
        ("POST", "/register", "/register"),
        Some(old.clone()),
        None,
        400,
    )
    .await;
    c.call(("POST", "/login", "/login"), Some(old), None, 200)
        .await;
    let express = json!({"name": format!("ex{}", &id[..10]), "email": format!("ex-{id}@example.com"), "password": PASSWORD});
    c.call(("POST", "/users", "/users"), Some(express), None, 201)
        .await;

    // The store, through a paid order.
    let admin = app.admin_token().await;
    let (buyer, _, buyer_id) = app.shopper().await;
    let product = json!({"name": "Mug", "price": "9.50", "stock": 5, "description": "blue"});
    c.call(
        ("POST", "/products", "/products"),
        Some(product.clone()),
        Some(&buyer),
        403,
    )
    .await;
    let product = c
        .call(
            ("POST", "/products", "/products"),
            Some(product),
            Some(&admin),
            201,
        )
        .await
        .json();
    let product_id = product["id"].as_str().unwrap().to_owned();
    let item = format!("/products/{product_id}");
    c.call(
        ("GET", "/products?limit=5&in_stock=true", "/products"),
        None,
        None,
        200,
    )
    .await;
    c.call(
        ("GET", "/products?colour=red", "/products"),
        None,
        None,
        422,
    )
    .await;
    c.call(("GET", &item, "/products/{id}"), None, None, 200)
        .await;
    let price = json!({"price": 12.5});
    c.call(
        ("PATCH", &item, "/products/{id}"),
        Some(price),
        Some(&admin),
        200,
    )
    .await;
    let order = json!({"items": [{"product_id": product_id, "quantity": 2}], "payment": {"token": "tok_visa"}});
    let placed = c
        .call(
            ("POST", "/orders", "/orders"),
            Some(order),
            Some(&buyer),
            201,
        )
        .await
        .json();
    let too_many = json!({"product_id": product_id, "quantity": 100});
    let r = c
        .call(
            ("POST", "/orders", "/orders"),
            Some(too_many),
            Some(&buyer),
            409,
        )
        .await;
    assert!(
        r.json()["type"]
            .as_str()
            .unwrap()
            .ends_with("/out-of-stock"),
        "{}",
        r.text
    );
    let order_id = placed["id"].as_str().unwrap().to_owned();
    app.settled(&buyer, &order_id, "paid").await;
    let order_path = format!("/orders/{order_id}");
    c.call(
        ("GET", &order_path, "/orders/{id}"),
        None,
        Some(&buyer),
        200,
    )
    .await;
    c.call(
        ("GET", "/orders?limit=1", "/orders"),
        None,
        Some(&buyer),
        200,
    )
    .await;
    let cancel = format!("/orders/{order_id}/cancel");
    c.call(
        ("POST", &cancel, "/orders/{id}/cancel"),
        None,
        Some(&buyer),
        409,
    )
    .await;
    let payment = format!("/payments/{order_id}");
    c.call(
        ("GET", &payment, "/payments/{order_id}"),
        None,
        Some(&buyer),
        200,
    )
    .await;
    c.call(
        ("GET", &payment, "/payments/{order_id}"),
        None,
        Some(&token),
        404,
    )
    .await;
    c.call(("DELETE", &item, "/products/{id}"), None, Some(&admin), 204)
        .await;
    c.call(("GET", &item, "/products/{id}"), None, None, 404)
        .await;
    app.notified(&buyer, "paid").await;
    c.call(
        ("GET", "/notifications", "/notifications"),
        None,
        Some(&buyer),
        200,
    )
    .await;

    // Posts.
    let post = json!({"title": "Hello", "body": "First!", "tags": ["Rust"]});
    let post = c
        .call(("POST", "/posts", "/posts"), Some(post), Some(&buyer), 201)
        .await
        .json();
    let post_path = format!("/posts/{}", post["id"].as_str().unwrap());
    c.call(("GET", "/posts?tag=rust", "/posts"), None, None, 200)
        .await;
    c.call(("GET", &post_path, "/posts/{id}"), None, None, 200)
        .await;
    let edit = json!({"tags": []});
    c.call(
        ("PATCH", &post_path, "/posts/{id}"),
        Some(edit.clone()),
        Some(&token),
        403,
    )
    .await;
    c.call(
        ("PATCH", &post_path, "/posts/{id}"),
        Some(edit),
        Some(&buyer),
        200,
    )
    .await;
    c.call(
        ("DELETE", &post_path, "/posts/{id}"),
        None,
        Some(&admin),
        204,
    )
    .await;

    // Analytics and notifications.
    let tracked = json!({"user_id": buyer_id, "action": "viewed", "timestamp": 1_700_000_000});
    c.call(("POST", "/events", "/events"), Some(tracked), None, 200)
        .await;
    c.call(
        ("GET", "/metrics/actions", "/metrics/actions"),
        None,
        None,
        200,
    )
    .await;
    let actions = format!("/metrics/user/{buyer_id}/actions");
    c.call(
        ("GET", &actions, "/metrics/user/{user_id}/actions"),
        None,
        None,
        200,
    )
    .await;
    let notice = json!({"user_id": 7, "channel": "log", "message": "hi"});
    c.call(("POST", "/notify", "/notify"), Some(notice), None, 200)
        .await;
    let webhook = json!({"user_id": "u", "channel": "webhook", "message": "hi"});
    c.call(("POST", "/notify", "/notify"), Some(webhook), None, 502)
        .await;

    // Every function's liveness, and the whole system's once the bridge
    // has reported.
    for svc in [
        "auth",
        "products",
        "orders",
        "payments",
        "posts",
        "analytics",
        "notifications",
    ] {
        let path = format!("/{svc}/health");
        c.call(("GET", &path, &path), None, None, 200).await;
    }
    eventually("a healthy system", Duration::from_secs(30), || async {
        app.get("/health", None).await.status == 200
    })
    .await;
    c.call(("GET", "/health", "/health"), None, None, 200).await;
}
