//! RabbitMQ's dead letters: each subscription's dead-letter queue. Taking
//! them gets every message unacknowledged; a removed one is acknowledged,
//! one put back is published again (to the dead-letter exchange, so it
//! lands in the same queue) before the original is acknowledged, and the
//! rest return to the queue when the channel closes.

use anyhow::Context;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{Channel, Connection, ConnectionProperties};

use super::{Entry, Store, broker_headers, from_headers};
use crate::amqp::headers::{self, with_headers};
use crate::amqp::publisher::{confirming_channel, publish_confirmed};
use crate::amqp::{AmqpConfig, topology};
use crate::dispatch::DeadLetter;
use crate::event::{Binding, OutboxEvent};
use spinmesh_config::redact::redact;

/// The dead-letter queues of one RabbitMQ set-up.
pub struct AmqpStore {
    config: AmqpConfig,
    connection: Connection,
    channel: Channel,
    taken: Vec<BasicGetMessage>,
}

impl AmqpStore {
    /// Connects.
    ///
    /// # Errors
    /// When RabbitMQ cannot be reached.
    pub async fn connect(config: &AmqpConfig) -> anyhow::Result<Self> {
        let connection = Connection::connect(&config.url, ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to {}", redact(&config.url)))?;
        let channel = confirming_channel(&connection).await?;
        Ok(Self {
            config: config.clone(),
            connection,
            channel,
            taken: Vec::new(),
        })
    }
}

fn header<'a>(message: &'a BasicGetMessage, name: &str) -> Option<&'a str> {
    headers::text(&message.delivery.properties, name)
}

impl Store for AmqpStore {
    async fn take(&mut self, subscriptions: &[String]) -> anyhow::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for subscription in subscriptions {
            let queue = self.config.dead_letter_queue(subscription);
            // A queue that does not exist (the subscription never ran on
            // this broker) closes the channel: look first.
            let probe = self.connection.create_channel().await?;
            let exists = topology::ready_messages(&probe, &queue).await.is_ok();
            if !exists {
                continue;
            }
            while let Some(message) = self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .with_context(|| format!("reading {queue}"))?
            {
                let event = OutboxEvent::from_broker(
                    &Binding::AMQP,
                    |name| header(&message, name),
                    &message.delivery.data,
                );
                let mut entry =
                    from_headers(|name| header(&message, name), event, self.taken.len());
                if entry.subscription.is_empty() {
                    entry.subscription.clone_from(subscription);
                }
                entries.push(entry);
                self.taken.push(message);
            }
        }
        Ok(entries)
    }

    async fn remove(&mut self, entry: &Entry) -> anyhow::Result<()> {
        self.taken[entry.place]
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .context("acknowledging a dead letter")?;
        Ok(())
    }

    async fn put_back(&mut self, entry: &Entry, why: &DeadLetter) -> anyhow::Result<()> {
        let message = &self.taken[entry.place];
        let headers = broker_headers(&entry.subscription, why, entry.first_failed.as_deref());
        let properties = with_headers(message.delivery.properties.clone(), &headers);
        publish_confirmed(
            &self.channel,
            &self.config.dead_letter_exchange,
            [(
                entry.subscription.clone(),
                message.delivery.data.clone(),
                properties,
            )],
        )
        .await?;
        self.remove(entry).await
    }

    async fn finish(self) -> anyhow::Result<()> {
        // What was neither removed nor put back returns to its queue as
        // the channel closes.
        let _ = self.channel.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
        Ok(())
    }
}
