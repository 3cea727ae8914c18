//! Where and how to talk to RabbitMQ.

/// RabbitMQ settings (`bridge up --broker amqp`).
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost`.
    pub url: String,
    /// The topic exchange events are published to.
    pub exchange: String,
    /// The direct exchange dead letters go to (routing key = subscription).
    pub dead_letter_exchange: String,
    /// Prefix of queue names: `<prefix><subscription>` and `…<subscription>.dlq`.
    pub queue_prefix: String,
    /// Unacknowledged deliveries per consumer.
    pub prefetch: u16,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_string(),
            exchange: "spinmesh.events".to_string(),
            dead_letter_exchange: "spinmesh.dlx".to_string(),
            queue_prefix: "spinmesh.".to_string(),
            prefetch: 64,
        }
    }
}

impl AmqpConfig {
    /// The subscription's queue.
    pub fn queue(&self, subscription: &str) -> String {
        format!("{}{subscription}", self.queue_prefix)
    }

    /// The subscription's dead-letter queue.
    pub fn dead_letter_queue(&self, subscription: &str) -> String {
        format!("{}{subscription}.dlq", self.queue_prefix)
    }
}
