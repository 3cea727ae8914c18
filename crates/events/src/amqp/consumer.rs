//! One subscription's RabbitMQ source: its durable queue, `prefetch`
//! deliveries in flight, handed to the shared delivery stage
//! ([`crate::pipeline`]) under the event's subject, so one subject's
//! events are delivered in order. A delivery is acknowledged only after
//! the sink took it or it was dead-lettered with a confirmed publish to the
//! dead-letter exchange.

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::AmqpConfig;
use super::headers::{self, with_headers};
use super::publisher::{confirming_channel, publish_confirmed};
use super::topology;
use crate::dead_letters;
use crate::dispatch::DeadLetter;
use crate::event::{Binding, OutboxEvent};
use crate::metrics;
use crate::pipeline::{Delivery, Received};
use crate::reconnect::reconnecting;
use spinmesh_config::redact::redact;

/// Consumes one subscription's queue.
pub struct AmqpConsumer {
    /// RabbitMQ settings.
    pub amqp: AmqpConfig,
    /// The subscription's delivery stage.
    pub delivery: Arc<Delivery>,
}

impl AmqpConsumer {
    /// Consumes until `shutdown`, reconnecting with backoff. Unacknowledged
    /// deliveries of a lost connection return to the queue by themselves.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let what = format!("AMQP consumer {}", self.delivery.subscription.name);
        reconnecting(&what, &self.delivery.config.clone(), &shutdown, || {
            self.consume(shutdown.clone())
        })
        .await;
    }

    async fn consume(&self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let subscription = &self.delivery.subscription;
        let connection = Connection::connect(&self.amqp.url, ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to {}", redact(&self.amqp.url)))?;
        let channel = connection.create_channel().await?;
        topology::declare_subscription(&channel, &self.amqp, subscription).await?;
        // A batching sink gets a full batch per lane whatever `prefetch`
        // says (AMQP counts prefetch in a u16).
        let prefetch = u16::try_from(subscription.in_flight(
            usize::from(self.amqp.prefetch),
            self.delivery.config.concurrency,
        ))
        .unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let dead_letters = Arc::new(DeadLetterExchange {
            channel: confirming_channel(&connection).await?,
            exchange: self.amqp.dead_letter_exchange.clone(),
        });
        let queue = self.amqp.queue(&subscription.name);
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                format!("bridge-{}", uuid::Uuid::new_v4().simple()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let round = CancellationToken::new();
        let lanes = self.delivery.lanes(usize::from(prefetch), round.clone());
        let mut sample = tokio::time::interval(crate::status::EVERY);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                _ = sample.tick() => {
                    if let Err(e) = self.sample_lag(&channel, &queue).await {
                        break Err(e);
                    }
                }
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let subject = header(&delivery, Binding::AMQP.subject).unwrap_or_default().to_owned();
                        let item = Message {
                            event: to_event(&delivery),
                            delivery,
                            dead_letters: dead_letters.clone(),
                        };
                        if let Err(e) = lanes.send(&subject, item).await {
                            break Err(e.into());
                        }
                    }
                    Some(Err(e)) => break Err(e.into()),
                    None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
                },
                _ = shutdown.changed() => break Ok(()),
            }
        };
        round.cancel();
        lanes.close().await;
        let _ = channel.close(200, "bridge stopping".into()).await;
        let _ = connection.close(200, "bridge stopping".into()).await;
        result
    }
}

impl AmqpConsumer {
    /// The queue's ready messages as the subscription's lag (a passive
    /// declare: one round trip, nothing changed).
    async fn sample_lag(&self, channel: &Channel, queue: &str) -> anyhow::Result<()> {
        let ready = topology::ready_messages(channel, queue)
            .await
            .with_context(|| format!("reading the depth of queue {queue}"))?;
        metrics::lag(&self.delivery.subscription.name, u64::from(ready));
        Ok(())
    }
}

/// The dead-letter exchange, through a confirming channel.
struct DeadLetterExchange {
    channel: Channel,
    exchange: String,
}

/// A delivery from the queue.
struct Message {
    delivery: AmqpDelivery,
    event: Option<OutboxEvent>,
    dead_letters: Arc<DeadLetterExchange>,
}

impl Received for Message {
    fn event(&self) -> Option<&OutboxEvent> {
        self.event.as_ref()
    }

    /// Publishes the message as it came, its headers plus why it died, to
    /// the dead-letter exchange (routing key: the subscription, whose
    /// dead-letter queue is bound to it), and waits for the confirm.
    fn dead_letter<'a>(
        &'a self,
        subscription: &'a str,
        why: &'a DeadLetter,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        let properties = with_headers(
            self.delivery.properties.clone(),
            &dead_letters::broker_headers(subscription, why, None),
        );
        let message = (
            subscription.to_string(),
            self.delivery.data.clone(),
            properties,
        );
        async move {
            publish_confirmed(
                &self.dead_letters.channel,
                &self.dead_letters.exchange,
                [message],
            )
            .await
        }
        .boxed()
    }

    fn ack(self, _dead_lettered: bool) -> BoxFuture<'static, ()> {
        async move {
            if let Err(err) = self.delivery.ack(BasicAckOptions::default()).await {
                // The channel is gone: the broker requeues the delivery,
                // and the sink absorbs the redelivery.
                tracing::warn!(error = %err, "acknowledging an AMQP delivery failed");
            }
        }
        .boxed()
    }
}

/// A header's text (see [`headers::text`]): the one reading of headers in
/// this consumer, for the ordering key and for the event alike.
fn header<'a>(delivery: &'a AmqpDelivery, name: &str) -> Option<&'a str> {
    headers::text(&delivery.properties, name)
}

/// Rebuilds the event from its AMQP form (see `publisher::properties`).
fn to_event(delivery: &AmqpDelivery) -> Option<OutboxEvent> {
    OutboxEvent::from_broker(
        &Binding::AMQP,
        |name| header(delivery, name),
        &delivery.data,
    )
}
