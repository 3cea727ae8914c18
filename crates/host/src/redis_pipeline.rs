//! Redis commands from concurrent instances, sent as pipelines.
//!
//! Every instance is fresh (Spin's model), so a guest cannot batch its
//! own Redis work across requests; but at load many instances call Redis
//! at the same moment (a rate-limit `INCR`, a cache `MGET`, a token
//! mark). Sent one by one, each command costs a write and a read on both
//! sides of the socket; on a two-core machine where Redis shares the
//! cores with the host, that round trip was a fifth of a trivial request
//! (`cargo bench --bench http`: the rate limiter's one `INCR`). Redis
//! serves a pipeline of N commands for about the cost of one.
//!
//! So each address has one [`Pipelined`] handle: guests' commands go into
//! a queue, and one task per address takes the first waiting command,
//! yields once (letting every instance that is ready to run reach its
//! own Redis call and queue it), then sends all the queued commands as
//! one pipeline on the shared multiplexed connection and hands each
//! answer back to its caller. Several pipelines may be in flight at once,
//! so a slow answer does not hold the next batch. At low load a batch is
//! a single command and nothing is waited for: the yield only lets tasks
//! that were already runnable go first.
//!
//! Each command keeps its own answer: a pipeline is not a transaction, and
//! an error reply to one command is that command's error only. The
//! connection manager underneath reconnects as before; a connection
//! failure fails every command of the batch that was on it.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, FromRedisValue, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

/// The most commands sent as one pipeline.
const MAX_BATCH: usize = 128;

/// A command and where its answer goes.
struct Job {
    cmd: Cmd,
    reply: oneshot::Sender<RedisResult<Value>>,
}

/// A handle onto one address's pipelining task; clones share it.
#[derive(Clone)]
pub struct Pipelined {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Pipelined {
    /// Starts the pipelining task over `conn`; it ends when the last
    /// handle is dropped, after answering what it has taken.
    pub fn spawn(conn: ConnectionManager) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, queue));
        Self { jobs }
    }

    /// Sends `cmd` in the next pipeline and converts its answer.
    ///
    /// # Errors
    /// The command's error reply, a connection failure, or a reply that
    /// does not convert to `T`.
    pub async fn query<T: FromRedisValue>(&self, cmd: Cmd) -> RedisResult<T> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { cmd, reply }).map_err(|_| closed())?;
        let value = answer.await.map_err(|_| closed())??;
        redis::from_owned_redis_value(value.extract_error()?)
    }
}

/// The pipelining task of one address.
async fn run(conn: ConnectionManager, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            // Delivering answers first keeps callers moving.
            Some(()) = in_flight.next() => {}
            first = queue.recv() => {
                let Some(first) = first else { break };
                // Let every runnable instance queue its command first.
                tokio::task::yield_now().await;
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                in_flight.push(send(conn.clone(), batch));
            }
        }
    }
    while in_flight.next().await.is_some() {}
}

/// Sends one batch and answers each of its commands.
async fn send(mut conn: ConnectionManager, batch: Vec<Job>) {
    if batch.len() == 1 {
        let Job { cmd, reply } = batch.into_iter().next().expect("one job");
        let _ = reply.send(conn.req_packed_command(&cmd).await);
        return;
    }
    let mut pipe = redis::Pipeline::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for Job { cmd, reply } in batch {
        pipe.add_command(cmd);
        replies.push(reply);
    }
    match conn.req_packed_commands(&pipe, 0, replies.len()).await {
        Ok(values) if values.len() == replies.len() => {
            for (reply, value) in replies.into_iter().zip(values) {
                let _ = reply.send(Ok(value));
            }
        }
        Ok(values) => {
            let why = format!(
                "{} answers to a pipeline of {}",
                values.len(),
                replies.len()
            );
            for reply in replies {
                let _ = reply.send(Err(RedisError::from((
                    redis::ErrorKind::ResponseError,
                    "unexpected pipeline answer",
                    why.clone(),
                ))));
            }
        }
        Err(err) => {
            let why = err.to_string();
            for reply in replies {
                let _ = reply.send(Err(RedisError::from((
                    err.kind(),
                    "Redis pipeline failed",
                    why.clone(),
                ))));
            }
        }
    }
}

fn closed() -> RedisError {
    RedisError::from((
        redis::ErrorKind::IoError,
        "the Redis pipelining task has stopped",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pipelined() -> Pipelined {
        let client = redis::Client::open("redis://127.0.0.1:6379").expect("address");
        let conn = ConnectionManager::new(client)
            .await
            .expect("the machine's Redis on 127.0.0.1:6379");
        Pipelined::spawn(conn)
    }

    /// Many callers at once: batches form, and every caller gets its own
    /// answer, an error reply included, in its own type.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commands_each_get_their_own_answer() {
        let redis = pipelined().await;
        let prefix = format!("spinmesh:test:pipeline:{}", fastrand::u64(..));
        let text_key = format!("{prefix}:text");
        redis
            .query::<()>(redis::cmd("SET").arg(&text_key).arg("not a number").clone())
            .await
            .expect("SET");
        let calls = (0..200u64).map(|i| {
            let redis = redis.clone();
            let key = format!("{prefix}:{i}");
            let text_key = text_key.clone();
            tokio::spawn(async move {
                if i % 50 == 7 {
                    // An error reply belongs to this command alone.
                    let err = redis
                        .query::<i64>(redis::cmd("INCR").arg(&text_key).clone())
                        .await
                        .expect_err("INCR of a string fails");
                    return Err(err.to_string());
                }
                redis
                    .query::<()>(redis::cmd("SET").arg(&key).arg(i).clone())
                    .await
                    .expect("SET");
                let got: u64 = redis
                    .query(redis::cmd("INCR").arg(&key).clone())
                    .await
                    .expect("INCR");
                Ok(got)
            })
        });
        let answers = futures::future::join_all(calls).await;
        for (i, answer) in (0..200u64).zip(answers) {
            match answer.expect("task") {
                Ok(got) => assert_eq!(got, i + 1, "caller {i} got another caller's answer"),
                Err(why) => {
                    assert_eq!(i % 50, 7, "caller {i} failed: {why}");
                    assert!(why.contains("not an integer"), "{why}");
                }
            }
        }
        let keys: Vec<String> = (0..200).map(|i| format!("{prefix}:{i}")).collect();
        let _: () = redis
            .query(redis::cmd("DEL").arg(keys).arg(&text_key).clone())
            .await
            .expect("DEL");
    }

    /// A type mismatch is the caller's error, not the batch's.
    #[tokio::test]
    async fn a_reply_of_the_wrong_type_fails_only_its_caller() {
        let redis = pipelined().await;
        let (a, b) = tokio::join!(
            redis.query::<i64>(redis::cmd("PING").clone()),
            redis.query::<String>(redis::cmd("PING").clone()),
        );
        assert!(a.is_err(), "PONG is not a number");
        assert_eq!(b.expect("PING"), "PONG");
    }
}
