//! `fermyon:spin/key-value@2.0.0`, stored in Redis so every bridge replica
//! sees the same data. A store is a hash `spinmesh:kv:<label>`; a component
//! may open only the labels listed in its `key_value_stores`, as in Spin.

use super::redis_pipeline::Pipelined;
use wasmtime::component::Resource;

use super::InstanceState;
use super::bindings::fermyon::spin::key_value::{self as kv, Error};

/// An open store.
pub struct KvStore {
    key: String,
    conn: Pipelined,
}

impl kv::Host for InstanceState {}

fn other(err: impl std::fmt::Display) -> Error {
    Error::Other(err.to_string())
}

impl InstanceState {
    async fn kv_query<T: redis::FromRedisValue>(
        &mut self,
        store: &Resource<KvStore>,
        build: impl FnOnce(&str) -> redis::Cmd,
    ) -> wasmtime::Result<Result<T, Error>> {
        let store = self.table.get(store)?;
        let conn = store.conn.clone();
        Ok(conn.query(build(&store.key)).await.map_err(other))
    }
}

impl kv::HostStore for InstanceState {
    async fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<KvStore>, Error>> {
        if !self.component.key_value_stores.iter().any(|l| l == &label) {
            return Ok(Err(Error::AccessDenied));
        }
        let url = self.services.config.key_value_redis_url.clone();
        match self.services.redis(&url).await {
            Ok(conn) => Ok(Ok(self.table.push(KvStore {
                key: format!("spinmesh:kv:{label}"),
                conn,
            })?)),
            Err(err) => Ok(Err(other(format!("{err:#}")))),
        }
    }

    async fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        self.kv_query(&store, |h| redis::cmd("HGET").arg(h).arg(&key).clone())
            .await
    }

    async fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let r: Result<i64, Error> = self
            .kv_query(&store, |h| {
                redis::cmd("HSET").arg(h).arg(&key).arg(&value).clone()
            })
            .await?;
        Ok(r.map(|_| ()))
    }

    async fn delete(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let r: Result<i64, Error> = self
            .kv_query(&store, |h| redis::cmd("HDEL").arg(h).arg(&key).clone())
            .await?;
        Ok(r.map(|_| ()))
    }

    async fn exists(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        self.kv_query(&store, |h| redis::cmd("HEXISTS").arg(h).arg(&key).clone())
            .await
    }

    async fn get_keys(
        &mut self,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.kv_query(&store, |h| redis::cmd("HKEYS").arg(h).clone())
            .await
    }

    async fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
