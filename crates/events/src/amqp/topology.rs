//! Exchanges, queues and bindings, declared idempotently by whoever
//! connects first (relay or consumer).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::AmqpConfig;
use crate::subscription::Subscription;

/// The ready messages of `queue`, by a passive declare (one round trip,
/// nothing changed).
///
/// # Errors
/// When the queue does not exist (which also closes `channel`) or the
/// broker cannot be reached.
pub async fn ready_messages(channel: &Channel, queue: &str) -> lapin::Result<u32> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(declared.message_count())
}

/// The two exchanges.
///
/// # Errors
/// When the broker refuses a declaration (e.g. a same-named exchange of
/// another kind exists).
pub async fn declare_exchanges(channel: &Channel, config: &AmqpConfig) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            config.dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await
}

/// A subscription's queue, bound by its type patterns, and its dead-letter
/// queue.
///
/// # Errors
/// When the broker refuses a declaration or binding.
pub async fn declare_subscription(
    channel: &Channel,
    config: &AmqpConfig,
    sub: &Subscription,
) -> lapin::Result<()> {
    declare_exchanges(channel, config).await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let queue = config.queue(&sub.name);
    // Messages the consumer rejects outright (not CloudEvents) still land
    // in the subscription's dead-letter queue.
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(config.dead_letter_exchange.clone().into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(sub.name.clone().into()),
    );
    channel
        .queue_declare(queue.as_str().into(), durable, arguments)
        .await?;
    for pattern in &sub.patterns {
        channel
            .queue_bind(
                queue.as_str().into(),
                config.exchange.as_str().into(),
                pattern.binding_key().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let dlq = config.dead_letter_queue(&sub.name);
    channel
        .queue_declare(dlq.as_str().into(), durable, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            dlq.as_str().into(),
            config.dead_letter_exchange.as_str().into(),
            sub.name.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Deletes the subscriptions' queues and both exchanges: the teardown of
/// a throwaway topology (tests, benchmarks). Missing pieces are skipped.
///
/// # Errors
/// When RabbitMQ cannot be reached.
pub async fn delete(config: &AmqpConfig, subscriptions: &[&str]) -> anyhow::Result<()> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let connection =
        lapin::Connection::connect(&config.url, lapin::ConnectionProperties::default()).await?;
    // A failed delete closes its channel, so each gets a fresh one.
    for sub in subscriptions {
        for queue in [config.queue(sub), config.dead_letter_queue(sub)] {
            let channel = connection.create_channel().await?;
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    for exchange in [&config.exchange, &config.dead_letter_exchange] {
        let channel = connection.create_channel().await?;
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}
