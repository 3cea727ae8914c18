//! Reading a broker message the way any CloudEvents consumer would: with
//! the `cloudevents-sdk` crate, through its message API (binary content
//! mode), given the binding's header prefix. What the SDK's own Kafka and
//! AMQP bindings do, without their pinned client versions.

use std::collections::HashMap;

use cloudevents::Event;
use cloudevents::event::SpecVersion;
use cloudevents::message::{BinaryDeserializer, BinarySerializer, MessageAttributeValue, Result};

/// A message as a broker delivered it: its headers (application
/// properties), content-type property and body.
pub struct BrokerMessage {
    /// `ce_` (Kafka) or `cloudEvents:` (AMQP).
    pub prefix: &'static str,
    pub headers: HashMap<String, String>,
    /// The message's content type (the AMQP property, or Kafka's
    /// `content-type` header).
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl BinaryDeserializer for BrokerMessage {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(self, mut visitor: V) -> Result<R> {
        let version_header = format!("{}specversion", self.prefix);
        let version = self
            .headers
            .get(&version_header)
            .map(String::as_str)
            .unwrap_or("");
        let spec = SpecVersion::try_from(version)?;
        let known = spec.attribute_names();
        visitor = visitor.set_spec_version(spec)?;
        for (key, value) in &self.headers {
            let Some(name) = key.strip_prefix(self.prefix) else {
                continue;
            };
            if name == "specversion" {
                continue;
            }
            let value = MessageAttributeValue::String(value.clone());
            visitor = if known.contains(&name) {
                visitor.set_attribute(name, value)?
            } else {
                visitor.set_extension(name, value)?
            };
        }
        if let Some(content_type) = self.content_type {
            visitor = visitor.set_attribute(
                "datacontenttype",
                MessageAttributeValue::String(content_type),
            )?;
        }
        visitor.end_with_data(self.body)
    }
}

/// The event the SDK reads from `message`.
pub fn decode(message: BrokerMessage) -> Event {
    message
        .into_event()
        .unwrap_or_else(|e| panic!("the CloudEvents SDK cannot read the message: {e}"))
}
