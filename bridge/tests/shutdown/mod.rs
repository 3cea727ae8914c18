//! `bridge up` as the real process an operator runs, stopped with SIGTERM
//! in the middle of a steady stream of requests and events: it exits 0,
//! every request that was answered is applied, every event acknowledged
//! (behind the subscription's cursor) is applied once, and after a restart
//! the rest arrive, nothing lost and nothing applied twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge::keys::JwtKeys;
use tokio::sync::Mutex;

use crate::common::process::Bridge;
use crate::common::subscriber::{count, eventually};
use crate::common::{connect_db, drop_database_blocking};

/// Registers users in a loop on `clients` connections until told to
/// stop; returns the emails that were answered 201.
fn register_steadily(
    base: String,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let answered = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (base, stop, answered) = (base.clone(), stop.clone(), answered.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
                    let sent = client
                        .post(format!("{base}/auth/register"))
                        .json(&serde_json::json!({"email": email, "password": "correct horse battery"}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => answered.lock().await.push(email),
                        Ok(r) => assert!(
                            r.status().is_server_error() || r.status() == 503,
                            "unexpected {}",
                            r.status()
                        ),
                        // Refused once the listener closed: not answered.
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        answered.lock().await.clone()
    })
}

#[tokio::test]
async fn sigterm_mid_stream_exits_zero_and_loses_nothing() {
    let database = format!("spinmesh_test_{}", uuid::Uuid::new_v4().simple());
    let keys = JwtKeys::generate();
    let bridge = Bridge::start(&database, &keys, &[]).await;
    let db = connect_db(&database).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = register_steadily(bridge.base.clone(), 8, stop.clone());
    // Terminate while requests and deliveries are in flight: some events
    // delivered already, more being written.
    eventually("events flowing", Duration::from_secs(60), || async {
        count(
            &db,
            "SELECT coalesce(sum(count), 0)::bigint FROM analytics_totals",
        )
        .await
            >= 20
    })
    .await;
    let status = bridge.terminate().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = traffic.await.unwrap();
    assert!(status.success(), "bridge up exits 0 on SIGTERM: {status:?}");
    assert!(!answered.is_empty());

    // Every answered registration is there.
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM users WHERE email = ANY($1)",
            &[&answered],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        answered.len() as i64,
        "every answered request applied"
    );
    // Every event behind each cursor was applied (analytics takes all).
    let unapplied = count(
        &db,
        "SELECT count(*) FROM outbox o JOIN bridge_cursors c ON c.subscription = 'analytics'
          WHERE (o.txid, o.position) <= (c.txid, c.position)
            AND NOT EXISTS (SELECT 1 FROM analytics_events a WHERE a.event_id = o.id)",
    )
    .await;
    assert_eq!(unapplied, 0, "acknowledged events are applied");

    // After a restart, everything arrives once.
    let started = Instant::now();
    let bridge = Bridge::start(&database, &keys, &[]).await;
    let registered = count(&db, "SELECT count(*) FROM users").await;
    eventually("every registration counted after the restart", Duration::from_secs(60), || async {
        count(
            &db,
            "SELECT coalesce(sum(count), 0)::bigint FROM analytics_action_counts WHERE action = 'register'",
        )
        .await
            == registered
    })
    .await;
    for kind in ["welcome", "verify_email"] {
        eventually(
            &format!("every {kind} notification stored"),
            Duration::from_secs(60),
            || async {
                count(
                    &db,
                    &format!(
                        "SELECT count(DISTINCT user_id) FROM notifications WHERE kind = '{kind}'"
                    ),
                )
                .await
                    == registered
            },
        )
        .await;
    }
    eventually(
        "every event reached analytics",
        Duration::from_secs(60),
        || async {
            count(&db, "SELECT count(*) FROM analytics_events").await
                == count(&db, "SELECT count(*) FROM outbox").await
        },
    )
    .await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM notifications WHERE kind = 'welcome'"
        )
        .await,
        registered,
        "one welcome each, none twice"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM notifications WHERE kind = 'verify_email'"
        )
        .await,
        registered,
        "one verification email each, none twice"
    );
    assert_eq!(
        count(&db, "SELECT sum(count)::bigint FROM analytics_totals").await,
        count(&db, "SELECT count(*) FROM analytics_events").await,
        "each event counted once ({:?} after the restart)",
        started.elapsed()
    );
    assert!(bridge.terminate().await.success());
    drop_database_blocking(&database);
}
