//! Publishing events with publisher confirms: the relay's sink, and the
//! consumer's dead-letter channel.

use super::headers::with_headers;
use anyhow::{Context, bail};
use futures::FutureExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::AmqpConfig;
use super::topology;
use crate::event::{Binding, OutboxEvent};
use crate::relay::{Confirmation, Publish};
use crate::subscription::Subscription;
use spinmesh_config::redact::redact;

/// A confirming channel to the events exchange.
pub struct AmqpPublisher {
    _connection: Connection,
    channel: Channel,
    exchange: String,
}

impl AmqpPublisher {
    /// Connects, enables confirms and declares the exchanges and every
    /// subscription's queue and bindings. Declaring the queues here, not
    /// only in the consumers, matters: RabbitMQ drops (and still confirms)
    /// a message no queue is bound for, so publishing before a consumer
    /// had declared its queue would lose events.
    ///
    /// # Errors
    /// When RabbitMQ is unreachable or refuses the set-up.
    pub async fn connect(
        config: &AmqpConfig,
        subscriptions: &[Subscription],
    ) -> anyhow::Result<Self> {
        let connection = Connection::connect(&config.url, ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to {}", redact(&config.url)))?;
        let channel = confirming_channel(&connection).await?;
        topology::declare_exchanges(&channel, config).await?;
        for sub in subscriptions {
            topology::declare_subscription(&channel, config, sub).await?;
        }
        Ok(Self {
            _connection: connection,
            channel,
            exchange: config.exchange.clone(),
        })
    }
}

/// A channel with publisher confirms on.
///
/// # Errors
/// When the channel cannot be opened.
pub async fn confirming_channel(connection: &Connection) -> anyhow::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// The AMQP form of an event: the CloudEvents AMQP binding in binary mode
/// (`cloudEvents:`-prefixed headers, the data as the body, its content
/// type as the message's), the event id as message id, persistent.
pub fn properties(event: &OutboxEvent) -> BasicProperties {
    let headers: Vec<(&str, String)> = event.broker_headers(&Binding::AMQP);
    with_headers(
        BasicProperties::default()
            .with_message_id(event.id.to_string().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2),
        &headers,
    )
}

/// Publishes each message, then waits for every confirm.
///
/// # Errors
/// When a publish fails or the broker nacks any message.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    messages: impl IntoIterator<Item = (String, Vec<u8>, BasicProperties)>,
) -> anyhow::Result<()> {
    publish_unconfirmed(channel, exchange, messages)
        .await?
        .await
}

/// Publishes `messages` in order and returns what resolves once the broker
/// has confirmed all of them.
///
/// # Errors
/// When a message cannot be published (the returned confirmation fails
/// when one is not confirmed, or is refused).
async fn publish_unconfirmed(
    channel: &Channel,
    exchange: &str,
    messages: impl IntoIterator<Item = (String, Vec<u8>, BasicProperties)>,
) -> anyhow::Result<Confirmation> {
    let mut pending = Vec::new();
    for (routing_key, body, props) in messages {
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .context("publishing")?;
        pending.push(confirm);
    }
    Ok(async move {
        for confirm in pending {
            let confirmation = confirm.await.context("waiting for a publisher confirm")?;
            if confirmation.is_nack() {
                bail!("the broker refused (nacked) a message");
            }
        }
        Ok(())
    }
    .boxed())
}

impl Publish for AmqpPublisher {
    async fn send(&self, events: &[OutboxEvent]) -> anyhow::Result<Confirmation> {
        let messages: Vec<(String, Vec<u8>, BasicProperties)> = events
            .iter()
            .map(|e| {
                (
                    e.event_type.clone(),
                    e.data.clone().into_bytes(),
                    properties(e),
                )
            })
            .collect();
        publish_unconfirmed(&self.channel, &self.exchange, messages).await
    }
}
