//! The event path, from the outbox to where events end up, as a pipeline
//! per subscription:
//!
//! ```text
//!  sources                      delivery (pipeline)                 sinks
//! ┌──────────────────────┐     ┌─────────────────────────────┐     ┌──────────────────────┐
//! │ embedded: outbox     │     │ ordered lanes by subject    │     │ function, in process │
//! │   cursor per sub     │──┐  │ (one key's events in order, │  ┌─▶│   (`bridge up`)      │
//! │ amqp: queue per sub  │──┼─▶│  keys in parallel)          │──┼─▶│ function over HTTP   │
//! │ kafka: group per sub │──┘  │ retry · backoff · batches   │  │  │   (`bridge relay`)   │
//! └──────────────────────┘     │ dead letters · then ack     │  └─▶│ MongoDB collection   │
//!           ▲                  └─────────────────────────────┘     └──────────────────────┘
//!           │ amqp / kafka: the outbox relay publishes committed rows in order
//! ```
//!
//! - **Sources** ([`embedded`], [`amqp`], [`kafka`]) read events with the
//!   means to settle them ([`pipeline::Received`]): a cursor that moves
//!   behind settled batches, an AMQP delivery to ack, a Kafka offset to
//!   store. Each runs in rounds through the one reconnect loop
//!   ([`reconnect`]).
//! - **Delivery** ([`pipeline`], [`dispatch`]) is one policy for all of
//!   them: per-key order through [`lanes`], retries with backoff, batches
//!   that fall back to single events, dead letters, and acknowledgement
//!   only after the sink took an event or its dead letter is stored.
//! - **Sinks** ([`sink`]) are where events go: one trait, one module each.
//!
//! [`run`] assembles every subscription's pipeline for a transport;
//! `bridge up` and `bridge relay` only call it. [`replay`] runs the same
//! delivery over a one-off outbox scan, and [`clock`] ticks subscriptions
//! that asked for it.

#![deny(unsafe_code)]

pub mod amqp;
pub mod clock;
pub mod dead_letters;
pub mod dispatch;
pub mod embedded;
pub mod event;
pub mod health;
pub mod invoke;
pub mod kafka;
pub mod lanes;
pub mod metrics;
pub mod outbox;
pub mod outcome;
pub mod pipeline;
pub mod reconnect;
pub mod relay;
pub mod replay;
pub mod sink;
pub mod status;
pub mod subscription;
pub mod wake;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use amqp::{AmqpConfig, AmqpConsumer, AmqpPublisher};
use dispatch::DispatchConfig;
use embedded::EmbeddedSource;
use event::Signer;
use invoke::Invoker;
use kafka::interest::Recorder;
use kafka::{KafkaConfig, KafkaConsumer, KafkaPublisher};
use pipeline::Delivery;
use relay::OutboxRelay;
use spinmesh_config::database::Database;
use subscription::Subscription;

/// The event transport.
#[derive(Debug, Clone, Default)]
pub enum BrokerConfig {
    /// No broker: each subscription reads the outbox itself.
    #[default]
    Embedded,
    /// RabbitMQ: the outbox relay publishes, a consumer per subscription.
    Amqp(AmqpConfig),
    /// Kafka: the outbox relay produces, a consumer group per subscription.
    Kafka(KafkaConfig),
}

/// Everything the event path of an app needs.
pub struct EventPath {
    /// How events travel from the outbox to the subscriptions.
    pub broker: BrokerConfig,
    /// Where the outbox lives.
    pub database: Database,
    /// Functions' subscriptions and sinks alike.
    pub subscriptions: Vec<Subscription>,
    /// Where function subscriptions' deliveries go.
    pub invoker: Invoker,
    /// Signs deliveries to functions.
    pub signer: Signer,
    /// Delivery policy and timing.
    pub config: DispatchConfig,
}

/// Moves events from the outbox to every subscription's sink until
/// `shutdown`. Aborting the task running it stops every part at once, as a
/// crash would.
///
/// # Errors
/// When a subscription's sink cannot be set up (a malformed MongoDB URI);
/// nothing runs then. Outages of the database, the broker or a sink do not
/// end it: they pause delivery until they pass.
pub async fn run(path: EventPath, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let EventPath {
        broker,
        database,
        subscriptions,
        invoker,
        signer,
        config,
    } = path;
    let mut stages = Vec::with_capacity(subscriptions.len());
    for subscription in &subscriptions {
        let sink = sink::build(
            subscription,
            &invoker,
            &signer,
            &database,
            config.delivery_timeout,
        )
        .await
        .map_err(|e| e.context(format!("setting up subscription {}", subscription.name)))?;
        stages.push(Arc::new(Delivery {
            subscription: subscription.clone(),
            sink,
            config: config.clone(),
        }));
    }
    let mut tasks = JoinSet::new();
    for stage in &stages {
        let every = config
            .tick_override
            .filter(|_| stage.subscription.tick.is_some())
            .or(stage.subscription.tick);
        if let Some(every) = every {
            tasks.spawn(clock::run(
                stage.subscription.name.clone(),
                every,
                stage.sink.clone(),
                shutdown.clone(),
            ));
        }
    }
    // Functions served in this process wake the outbox readers directly.
    let local_writes = match &invoker {
        Invoker::Embedded(host) => Some(host.outbox_writes()),
        Invoker::Http { .. } => None,
    };
    // With a broker, the outbox relay publishes what the consumers read.
    let relay = |name: &str| OutboxRelay {
        database: database.clone(),
        name: relay_cursor(name),
        config: config.clone(),
        local_writes: local_writes.clone(),
    };
    // The heartbeat names the cursors whose lag is the outbox backlog: the
    // subscriptions' own without a broker, the relay's with one.
    let (kind, cursors) = match &broker {
        BrokerConfig::Embedded => (
            "embedded",
            subscriptions.iter().map(|s| s.name.clone()).collect(),
        ),
        BrokerConfig::Amqp(_) => ("amqp", vec![relay_cursor("amqp")]),
        BrokerConfig::Kafka(_) => ("kafka", vec![relay_cursor("kafka")]),
    };
    let role = match &invoker {
        Invoker::Embedded(_) => "up",
        Invoker::Http { .. } => "relay",
    };
    let names: Vec<String> = subscriptions.iter().map(|s| s.name.clone()).collect();
    tasks.spawn(status::run(
        database.clone(),
        status::Beat::new(role, kind, cursors),
        dead_letters::waiting::Waiting::of(&broker, &names),
        shutdown.clone(),
    ));
    match broker {
        BrokerConfig::Embedded => {
            let (wake, _waking) = wake::start(&database, local_writes.as_ref(), &config, &shutdown);
            for delivery in stages {
                let source = EmbeddedSource {
                    database: database.clone(),
                    delivery,
                    wake: wake.clone(),
                };
                tasks.spawn(source.run(shutdown.clone()));
            }
            tasks.join_all().await;
        }
        BrokerConfig::Amqp(amqp) => {
            for delivery in stages {
                let amqp = amqp.clone();
                tasks.spawn(AmqpConsumer { amqp, delivery }.run(shutdown.clone()));
            }
            let connect = || AmqpPublisher::connect(&amqp, &subscriptions);
            relay("amqp").run(connect, shutdown).await;
            tasks.join_all().await;
        }
        BrokerConfig::Kafka(kafka) => {
            for delivery in stages {
                let consumer = KafkaConsumer {
                    kafka: kafka.clone(),
                    database: database.clone(),
                    delivery,
                };
                tasks.spawn(consumer.run(shutdown.clone()));
            }
            let connect = || async {
                Ok(KafkaPublisher::connect(&kafka)?.recording(Recorder::new(database.clone())))
            };
            relay("kafka").run(connect, shutdown).await;
            tasks.join_all().await;
        }
    }
    Ok(())
}

/// The outbox cursor (and lock) of the relay publishing to `broker`.
fn relay_cursor(broker: &str) -> String {
    format!("relay:{broker}")
}
