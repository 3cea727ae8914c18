//! How many dead letters wait in the broker, for the heartbeat (and so for
//! `GET /health`): a Spin function can count the `bridge_dead_letters`
//! table, but not RabbitMQ's dead-letter queues or Kafka's `.dlq` topics,
//! so the process that reaches the broker counts them.
//!
//! RabbitMQ: the ready messages of each subscription's dead-letter queue
//! (one `bridge dead-letters redrive` holds unacknowledged is not counted
//! while it runs). Kafka: each dead-letter partition from where the
//! `dead-letters` group has handled it to its end.

use std::sync::Arc;
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use rdkafka::consumer::BaseConsumer;

use super::kafka::{KafkaStore, unread};
use crate::BrokerConfig;
use crate::amqp::{AmqpConfig, topology};
use crate::kafka::KafkaConfig;

/// Longest a count may take, so a slow broker delays no heartbeat much.
pub const COUNT_LIMIT: Duration = Duration::from_secs(2);

/// Counts one broker's dead letters, keeping its connection between counts.
pub enum Waiting {
    /// RabbitMQ: the subscriptions' dead-letter queues.
    Amqp {
        config: AmqpConfig,
        subscriptions: Vec<String>,
        connection: Option<Connection>,
    },
    /// Kafka: the dead-letter topics under the prefix.
    Kafka {
        config: KafkaConfig,
        consumer: Option<Arc<BaseConsumer>>,
    },
}

impl Waiting {
    /// The counter for `broker`'s dead letters of `subscriptions`; `None`
    /// without a broker (the table is counted where it is read).
    pub fn of(broker: &BrokerConfig, subscriptions: &[String]) -> Option<Self> {
        match broker {
            BrokerConfig::Embedded => None,
            BrokerConfig::Amqp(config) => Some(Self::Amqp {
                config: config.clone(),
                subscriptions: subscriptions.to_vec(),
                connection: None,
            }),
            BrokerConfig::Kafka(config) => Some(Self::Kafka {
                config: config.clone(),
                consumer: None,
            }),
        }
    }

    /// The dead letters waiting now. A failed count drops the connection,
    /// so the next one starts afresh.
    ///
    /// # Errors
    /// When the broker cannot be reached or asked within [`COUNT_LIMIT`].
    pub async fn count(&mut self) -> anyhow::Result<i64> {
        let counted = tokio::time::timeout(COUNT_LIMIT, self.count_now()).await;
        let result = counted
            .map_err(|_| anyhow::anyhow!("counting dead letters took over {COUNT_LIMIT:?}"))
            .and_then(|r| r);
        if result.is_err() {
            match self {
                Self::Amqp { connection, .. } => *connection = None,
                Self::Kafka { consumer, .. } => *consumer = None,
            }
        }
        result
    }

    async fn count_now(&mut self) -> anyhow::Result<i64> {
        match self {
            Self::Amqp {
                config,
                subscriptions,
                connection,
            } => {
                let connected = connection.as_ref().is_some_and(|c| c.status().connected());
                if !connected {
                    *connection = Some(
                        Connection::connect(&config.url, ConnectionProperties::default()).await?,
                    );
                }
                let connection = connection.as_ref().expect("connected above");
                let mut total = 0;
                for subscription in subscriptions.iter() {
                    // A queue not declared yet closes the channel that
                    // asks: one channel per queue.
                    let channel = connection.create_channel().await?;
                    let queue = config.dead_letter_queue(subscription);
                    if let Ok(ready) = topology::ready_messages(&channel, &queue).await {
                        total += i64::from(ready);
                        let _ = channel.close(200, "counted".into()).await;
                    }
                }
                Ok(total)
            }
            Self::Kafka { config, consumer } => {
                let reader = match consumer {
                    Some(reader) => reader.clone(),
                    None => consumer
                        .insert(Arc::new(KafkaStore::consumer(config)?))
                        .clone(),
                };
                let config = config.clone();
                tokio::task::spawn_blocking(move || {
                    let partitions = unread(&config, &reader, COUNT_LIMIT)?;
                    Ok(partitions.iter().map(|p| p.waiting()).sum())
                })
                .await?
            }
        }
    }
}
