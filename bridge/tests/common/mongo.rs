//! The MongoDB side of sink tests: a fresh database per test on the
//! development server (`scripts/setup` starts one on 127.0.0.1:27017;
//! `SPINMESH_MONGO_URL` points at a real MongoDB instead), the sink's
//! subscription, reading documents back, and a server of the test's own
//! that it can kill and restart.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bridge::events::sink::mongo::MongoConfig;
use bridge::events::subscription::{Destination, Subscription, sink_subscription_name};
use mongodb::Client;
use mongodb::bson::{Document, doc};

/// The shared development server, or `SPINMESH_MONGO_URL`.
pub fn shared_url() -> String {
    std::env::var("SPINMESH_MONGO_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into())
}

/// One test's collection, dropped with its database when the test ends.
pub struct Tracking {
    pub url: String,
    pub database: String,
    client: Client,
}

impl Tracking {
    /// A fresh database on the server at `url`.
    pub async fn new(url: &str) -> Self {
        let database = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let client = Client::with_uri_str(url).await.unwrap();
        Self {
            url: url.to_string(),
            database,
            client,
        }
    }

    /// The sink's subscription for `patterns`, `batch` documents per write.
    pub fn subscription(&self, patterns: &[&str], batch: usize) -> Subscription {
        let table = format!(
            "spin_manifest_version = 2\n[application]\nname = 't'\n\
             [application.tool.bridge.sink.tracking]\nkind = 'mongo'\nsubscribe = {patterns:?}\n\
             database = '{}'\ncollection = 'tracking'\nbatch = {batch}\nmax_attempts = 3\n",
            self.database
        );
        let dir = std::env::temp_dir().join(format!("sink-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spin.toml");
        std::fs::write(&path, table).unwrap();
        let manifest = bridge::manifest::Manifest::load(&path).unwrap();
        let mut subs = bridge::events::subscription::sinks_from_manifest(&manifest, |_| {
            Ok(Some(self.url.clone()))
        })
        .unwrap();
        std::fs::remove_dir_all(dir).ok();
        let sub = subs.pop().unwrap();
        assert_eq!(sub.name, sink_subscription_name("tracking"));
        assert_eq!(
            sub.destination,
            Destination::Mongo(MongoConfig {
                url: self.url.clone(),
                database: self.database.clone(),
                collection: "tracking".into(),
            })
        );
        sub
    }

    fn collection(&self) -> mongodb::Collection<Document> {
        self.client.database(&self.database).collection("tracking")
    }

    /// Refuses (with a validation error, not a duplicate) every document
    /// whose data has a `poison` field.
    pub async fn refuse_poison(&self) {
        self.client
            .database(&self.database)
            .create_collection("tracking")
            .validator(doc! { "data.poison": { "$exists": false } })
            .await
            .unwrap();
    }

    /// Documents stored, or `None` while the server does not answer.
    pub async fn count(&self) -> Option<u64> {
        self.collection().count_documents(doc! {}).await.ok()
    }

    /// Every document, by `_id`.
    pub async fn documents(&self) -> Vec<Document> {
        use futures::TryStreamExt;
        self.collection()
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    /// Waits until exactly `n` documents are stored (panics past `limit`).
    pub async fn wait_for(&self, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.count().await;
            if last == Some(n) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{last:?} documents stored, expected {n}");
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        let (client, database) = (self.client.clone(), self.database.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        client.database(&database).drop(),
                    )
                    .await;
                })
        })
        .join();
    }
}

/// A MongoDB-wire server of the test's own (the development server
/// `scripts/setup` installs, `SPINMESH_MONGO_SERVER` to use another
/// binary), storing on disk so it can be killed and restarted with its
/// data.
pub struct OwnServer {
    pub port: u16,
    storage: PathBuf,
    child: Option<Child>,
}

impl OwnServer {
    /// Starts it on a free port and waits until it answers.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = std::env::temp_dir().join(format!("mongo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&storage).unwrap();
        let mut server = Self {
            port,
            storage,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    fn binary() -> PathBuf {
        if let Ok(path) = std::env::var("SPINMESH_MONGO_SERVER") {
            return path.into();
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap()).join(".local/share")
            });
        data.join("spinmesh/mongo-venv/bin/secantusd-py")
    }

    /// Makes what it acknowledged durable. This development server keeps
    /// acknowledged writes in memory until a checkpoint, so a SIGKILL
    /// loses the latest ones (a real MongoDB journals them first).
    pub async fn fsync(&self) {
        let client = Client::with_uri_str(self.url()).await.unwrap();
        client
            .database("admin")
            .run_command(doc! { "fsync": 1 })
            .await
            .unwrap();
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, on the same port and storage) and waits until it
    /// answers a command.
    pub async fn restart(&mut self) {
        let binary = Self::binary();
        let child = Command::new(&binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--storage-path",
            ])
            .arg(&self.storage)
            .current_dir(&self.storage)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} (run scripts/setup): {e}", binary.display()));
        self.child = Some(child);
        let client = Client::with_uri_str(format!("{}&serverSelectionTimeoutMS=500", self.url()))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the test's MongoDB server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}
