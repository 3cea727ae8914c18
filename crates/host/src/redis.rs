//! `fermyon:spin/redis@2.0.0` over shared, auto-reconnecting connections.

use tracing::instrument;
use wasmtime::component::Resource;

use super::InstanceState;
use super::bindings::fermyon::spin::redis::{self as r, Error, RedisParameter, RedisResult};
use super::redis_pipeline::Pipelined;

/// A guest's Redis connection: a handle onto the host's multiplexed one.
pub struct RedisConnection {
    conn: Pipelined,
}

impl r::Host for InstanceState {}

fn other(err: redis::RedisError) -> Error {
    if err.kind() == redis::ErrorKind::TypeError {
        Error::TypeError
    } else {
        Error::Other(err.to_string())
    }
}

impl InstanceState {
    async fn redis_query<T: redis::FromRedisValue>(
        &mut self,
        conn: &Resource<RedisConnection>,
        cmd: redis::Cmd,
    ) -> wasmtime::Result<Result<T, Error>> {
        let conn = self.table.get(conn)?.conn.clone();
        Ok(conn.query(cmd).await.map_err(other))
    }
}

impl r::HostConnection for InstanceState {
    #[instrument(level = "debug", skip_all, fields(component = %self.component.id))]
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        if let Err(err) = self.component.outbound.check_url(&address) {
            tracing::warn!(component = %self.component.id, error = %err, "redis connection denied");
            return Ok(Err(Error::InvalidAddress));
        }
        match self.services.redis(&address).await {
            Ok(conn) => Ok(Ok(self.table.push(RedisConnection { conn })?)),
            Err(err) => Ok(Err(Error::Other(format!("{err:#}")))),
        }
    }

    async fn publish(
        &mut self,
        conn: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        Ok(self.redis_query::<i64>(&conn, cmd).await?.map(|_| ()))
    }

    async fn get(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.redis_query(&conn, cmd).await
    }

    async fn set(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        self.redis_query(&conn, cmd).await
    }

    async fn incr(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let mut cmd = redis::cmd("INCR");
        cmd.arg(key);
        self.redis_query(&conn, cmd).await
    }

    async fn del(
        &mut self,
        conn: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys);
        self.redis_query(&conn, cmd).await
    }

    async fn sadd(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(key).arg(values);
        self.redis_query(&conn, cmd).await
    }

    async fn smembers(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(key);
        self.redis_query(&conn, cmd).await
    }

    async fn srem(
        &mut self,
        conn: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(key).arg(values);
        self.redis_query(&conn, cmd).await
    }

    async fn execute(
        &mut self,
        conn: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let mut cmd = redis::cmd(&command);
        for arg in arguments {
            match arg {
                RedisParameter::Int64(n) => cmd.arg(n),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: Result<redis::Value, Error> = self.redis_query(&conn, cmd).await?;
        Ok(value.map(|v| {
            let mut out = Vec::new();
            flatten(v, &mut out);
            out
        }))
    }

    async fn drop(&mut self, conn: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

/// Spin flattens nested replies into one list.
fn flatten(value: redis::Value, out: &mut Vec<RedisResult>) {
    use redis::Value as V;
    match value {
        V::Nil => out.push(RedisResult::Nil),
        V::Int(n) => out.push(RedisResult::Int64(n)),
        V::BulkString(b) => out.push(RedisResult::Binary(b)),
        V::SimpleString(s) => out.push(RedisResult::Status(s)),
        V::Okay => out.push(RedisResult::Status("OK".to_string())),
        V::Array(items) | V::Set(items) => items.into_iter().for_each(|v| flatten(v, out)),
        V::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        V::Double(d) => out.push(RedisResult::Binary(d.to_string().into_bytes())),
        V::Boolean(b) => out.push(RedisResult::Int64(b.into())),
        V::VerbatimString { text, .. } => out.push(RedisResult::Binary(text.into_bytes())),
        V::BigNumber(n) => out.push(RedisResult::Binary(n.to_string().into_bytes())),
        V::ServerError(e) => out.push(RedisResult::Status(format!("{e:?}"))),
        other => out.push(RedisResult::Binary(format!("{other:?}").into_bytes())),
    }
}
