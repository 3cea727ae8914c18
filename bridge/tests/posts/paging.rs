//! Listing: newest first, keyset pages that stay stable while posts are
//! being added, and the `author` and `tag` filters.

use std::collections::HashSet;

use serde_json::Value;

use crate::common::TestApp;
use crate::common::posts::posts_app;

/// Every page of `query`, following `next_cursor`; `between` runs after
/// each page.
async fn all_pages<F, Fut>(app: &TestApp, query: &str, mut between: F) -> Vec<Value>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/posts?{query}&cursor={c}"),
            None => format!("/posts?{query}"),
        };
        let r = app.get(&path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let page = r.json();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        between().await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pages_are_newest_first_and_stable_while_posts_are_added() {
    let app = posts_app().await;
    let ada = app.author("ada").await;
    let mut written = Vec::new();
    for i in 0..23 {
        written.push(app.write_post(&ada.token, &format!("Post {i}"), &[]).await);
    }
    let existing: Vec<String> = ids(&written).into_iter().rev().collect();

    let mut added = 0;
    let seen = all_pages(&app, "limit=5", || {
        added += 1;
        let title = format!("Added while paging {added}");
        let (app, token) = (&app, ada.token.clone());
        async move {
            app.write_post(&token, &title, &[]).await;
        }
    })
    .await;
    let seen = ids(&seen);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no post twice: {seen:?}");
    assert_eq!(
        seen, existing,
        "every post that existed appears once, newest first; posts added meanwhile are newer than the cursor"
    );
    let first = app.get("/posts?limit=1", None).await.json();
    assert!(
        first["items"][0]["title"]
            .as_str()
            .unwrap()
            .starts_with("Added while paging"),
        "{first}"
    );
}

#[tokio::test]
async fn author_and_tag_filters() {
    let app = posts_app().await;
    let ada = app.author("ada").await;
    let bob = app.author("bob").await;
    let a1 = app.write_post(&ada.token, "A1", &["Rust", "wasm"]).await;
    let _a2 = app.write_post(&ada.token, "A2", &["go"]).await;
    let b1 = app.write_post(&bob.token, "B1", &["rust"]).await;

    let by_id = all_pages(&app, &format!("author={}", ada.id), || async {}).await;
    assert_eq!(by_id.len(), 2);
    assert!(by_id.iter().all(|p| p["author"]["id"] == ada.id.as_str()));

    let rust = all_pages(&app, "tag=RUST", || async {}).await;
    assert_eq!(
        ids(&rust),
        [
            ids(std::slice::from_ref(&b1)),
            ids(std::slice::from_ref(&a1))
        ]
        .concat()
    );
    let ada_rust = all_pages(&app, &format!("tag=rust&author={}", ada.id), || async {}).await;
    assert_eq!(ids(&ada_rust), ids(&[a1]));
    let nobody = all_pages(&app, "author=nobody_here", || async {}).await;
    assert!(nobody.is_empty());
    let unknown_id = all_pages(
        &app,
        &format!("author={}", uuid::Uuid::new_v4()),
        || async {},
    )
    .await;
    assert!(unknown_id.is_empty());
}
