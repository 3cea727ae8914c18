//! One subscription's consumer: its durable queue, `prefetch` deliveries in
//! flight, events of one subject handled in order (a lane per hash of the
//! subject), acknowledged only after the function answered 2xx or the
//! event was dead-lettered with a confirmed publish.

use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;

use super::AmqpConfig;
use super::publisher::{confirming_channel, properties, publish_confirmed};
use super::topology;
use crate::dispatch::{DispatchConfig, Final, backoff, deliver_all};
use crate::event::{OutboxEvent, Signer};
use crate::invoke::Invoker;
use crate::lanes::Lanes;
use crate::subscription::Subscription;
use spinmesh_config::redact::redact;
use spinmesh_delivery::header as ce;

/// Consumes one subscription's queue.
pub struct AmqpConsumer {
    /// RabbitMQ settings.
    pub amqp: AmqpConfig,
    /// What to consume.
    pub subscription: Subscription,
    /// Where to deliver.
    pub invoker: Invoker,
    /// Signs deliveries.
    pub signer: Signer,
    /// Retry policy and lane count (`concurrency`).
    pub config: DispatchConfig,
}

impl AmqpConsumer {
    /// Consumes until `shutdown`, reconnecting with backoff. Unacknowledged
    /// deliveries of a lost connection return to the queue by themselves.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let me = Arc::new(self);
        let mut failures = 0;
        while !*shutdown.borrow() {
            match me.clone().consume(shutdown.clone()).await {
                Ok(()) => return,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(subscription = %me.subscription.name, error = %format!("{err:#}"), "AMQP consumer interrupted; reconnecting");
                    tokio::time::sleep(backoff(&me.config, failures.min(6))).await;
                }
            }
        }
    }

    async fn consume(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let connection = Connection::connect(&self.amqp.url, ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to {}", redact(&self.amqp.url)))?;
        let channel = connection.create_channel().await?;
        topology::declare_subscription(&channel, &self.amqp, &self.subscription).await?;
        channel
            .basic_qos(self.amqp.prefetch, BasicQosOptions::default())
            .await?;
        let dead_letters = Arc::new(confirming_channel(&connection).await?);
        let queue = self.amqp.queue(&self.subscription.name);
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                format!("bridge-{}", uuid::Uuid::new_v4().simple()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let lanes = {
            let (me, dead_letters) = (self.clone(), dead_letters.clone());
            Lanes::spawn(
                self.subscription.lanes(self.config.concurrency),
                usize::from(self.amqp.prefetch),
                self.subscription.batch,
                move |deliveries: Vec<Delivery>| {
                    let (me, dead_letters) = (me.clone(), dead_letters.clone());
                    async move { me.handle(deliveries, &dead_letters).await }
                },
            )
        };
        let result = loop {
            tokio::select! {
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let subject = header(&delivery, ce::SUBJECT).unwrap_or_default().to_owned();
                        if let Err(e) = lanes.send(&subject, delivery).await {
                            break Err(e.into());
                        }
                    }
                    Some(Err(e)) => break Err(e.into()),
                    None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
                },
                _ = shutdown.changed() => break Ok(()),
            }
        };
        lanes.close().await;
        let _ = channel.close(200, "bridge stopping".into()).await;
        let _ = connection.close(200, "bridge stopping".into()).await;
        result
    }

    /// Delivers what a lane handed over (in order, batched when the
    /// subscription allows) and settles each delivery with the broker.
    async fn handle(&self, deliveries: Vec<Delivery>, dead_letters: &Channel) {
        let mut wanted = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let settled = match to_event(&delivery) {
                // Not one of ours: nothing can ever deliver it.
                None => {
                    tracing::error!(
                        "dropping a message without CloudEvent headers to the dead letters"
                    );
                    delivery
                        .nack(BasicNackOptions {
                            requeue: false,
                            ..BasicNackOptions::default()
                        })
                        .await
                        .map(drop)
                }
                Some(event) if !self.subscription.wants(&event.event_type) => {
                    delivery.ack(BasicAckOptions::default()).await.map(drop)
                }
                Some(event) => {
                    wanted.push((delivery, event));
                    Ok(())
                }
            };
            if let Err(err) = settled {
                tracing::error!(error = %err, "settling an AMQP delivery failed");
            }
        }
        let events: Vec<OutboxEvent> = wanted.iter().map(|(_, e)| e.clone()).collect();
        let finals = deliver_all(
            &self.invoker,
            &self.subscription,
            &events,
            &self.signer,
            &self.config,
        )
        .await;
        for ((delivery, event), outcome) in wanted.into_iter().zip(finals) {
            if let Err(err) = self.settle(delivery, &event, outcome, dead_letters).await {
                tracing::error!(error = %format!("{err:#}"), "settling an AMQP delivery failed");
            }
        }
    }

    /// Acks a delivered event; dead-letters a dead one with a confirmed
    /// publish before acking, or requeues it when that publish fails.
    async fn settle(
        &self,
        delivery: Delivery,
        event: &OutboxEvent,
        outcome: Final,
        dead_letters: &Channel,
    ) -> anyhow::Result<()> {
        match outcome {
            Final::Delivered { .. } => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            outcome @ Final::DeadLetter { .. } => {
                tracing::error!(subscription = %self.subscription.name, event = %event.id, ?outcome, "dead-lettering event");
                let extra = outcome.dead_letter_headers(&self.subscription.name);
                let published = publish_confirmed(
                    dead_letters,
                    &self.amqp.dead_letter_exchange,
                    [(
                        self.subscription.name.clone(),
                        delivery.data.clone(),
                        properties(event, &extra),
                    )],
                )
                .await;
                match published {
                    Ok(()) => {
                        delivery.ack(BasicAckOptions::default()).await?;
                    }
                    Err(err) => {
                        // Nothing is acknowledged: the event comes back.
                        tracing::error!(error = %format!("{err:#}"), "dead-letter publish failed; requeueing");
                        tokio::time::sleep(backoff(&self.config, 3)).await;
                        delivery
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..BasicNackOptions::default()
                            })
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A header's text, whichever AMQP string type carries it (publishers use
/// either), or `None` when it is absent or not text. The one reading of
/// headers in this consumer: for the ordering key and for the event alike.
fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a str> {
    match delivery.properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Rebuilds the event from its AMQP form (see `publisher::properties`).
fn to_event(delivery: &Delivery) -> Option<OutboxEvent> {
    OutboxEvent::from_broker(|name| header(delivery, name), &delivery.data)
}
