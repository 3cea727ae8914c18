//! Topic names and their creation. One topic per aggregate kind
//! (`users`, `orders`, …), keyed by the aggregate id so one aggregate's
//! events stay in one partition, in order; `<topic>.dlq` beside each.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaConfig;

/// Names the topics of one configuration and creates them on first use.
pub struct Topics {
    admin: AdminClient<DefaultClientContext>,
    prefix: String,
    partitions: i32,
    replication: i32,
    created: Mutex<HashSet<String>>,
}

/// The suffix of dead-letter topics.
pub const DLQ_SUFFIX: &str = ".dlq";

impl Topics {
    /// An admin client for `config`'s cluster.
    ///
    /// # Errors
    /// When the client cannot be configured (bad properties).
    pub fn new(config: &KafkaConfig) -> anyhow::Result<Self> {
        let admin = config
            .client()
            .create()
            .context("configuring the Kafka admin client")?;
        Ok(Self {
            admin,
            prefix: config.topic_prefix.clone(),
            partitions: config.partitions.max(1),
            replication: config.replication,
            created: Mutex::new(HashSet::new()),
        })
    }

    /// The topic of an aggregate kind. Characters Kafka does not allow in
    /// topic names, and dots (reserved for the `.dlq` suffix), become `_`.
    pub fn of_aggregate(&self, aggregate: &str) -> String {
        topic_of(&self.prefix, aggregate)
    }

    /// Creates the aggregate's topic and its dead-letter topic unless this
    /// process already did; a topic that exists already is fine.
    ///
    /// # Errors
    /// When the cluster refuses or cannot be reached.
    pub async fn ensure(&self, topic: &str) -> anyhow::Result<()> {
        if self.created.lock().expect("topic set").contains(topic) {
            return Ok(());
        }
        let dlq = format!("{topic}{DLQ_SUFFIX}");
        let new = [topic, dlq.as_str()].map(|name| {
            NewTopic::new(
                name,
                self.partitions,
                TopicReplication::Fixed(self.replication),
            )
        });
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics(&new, &options)
            .await
            .with_context(|| format!("creating topic {topic}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
            }
        }
        self.created
            .lock()
            .expect("topic set")
            .insert(topic.to_string());
        Ok(())
    }

    /// The POSIX regular expression a consumer subscribes with: every
    /// event topic under the prefix, no dead-letter topic.
    pub fn subscription_pattern(prefix: &str) -> String {
        let mut pattern = String::from("^");
        for c in prefix.chars() {
            if r".[]()*+?{}|^$\".contains(c) {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str("[A-Za-z0-9_-]+$");
        pattern
    }
}

pub(crate) fn topic_of(prefix: &str, aggregate: &str) -> String {
    let name: String = aggregate
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.is_empty() {
        "events".to_string()
    } else {
        name
    };
    format!("{prefix}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_names_become_legal_topics() {
        assert_eq!(topic_of("", "users"), "users");
        assert_eq!(topic_of("app.", "users"), "app.users");
        assert_eq!(topic_of("", "order.lines"), "order_lines");
        assert_eq!(topic_of("", "ü/x y"), "__x_y");
        assert_eq!(topic_of("", ""), "events");
    }

    #[test]
    fn pattern_escapes_the_prefix_and_leaves_out_dead_letters() {
        assert_eq!(
            Topics::subscription_pattern("t1.a-b_"),
            r"^t1\.a-b_[A-Za-z0-9_-]+$"
        );
        assert_eq!(Topics::subscription_pattern(""), "^[A-Za-z0-9_-]+$");
    }
}
