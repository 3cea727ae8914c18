//! An event as the outbox holds it, and its CloudEvents 1.0 HTTP binary-mode
//! form: `ce-*` headers plus the JSON data as the body, signed so a
//! function can tell the bridge's deliveries from anyone else's POST. The
//! header names and the signature scheme are the delivery contract in
//! `spinmesh-delivery`, which the functions' kit verifies with.

use spinmesh_delivery::header as ce;
use spinmesh_delivery::trace::TRACEPARENT;
pub use spinmesh_delivery::{BATCH_CONTENT_TYPE, BATCH_SIGNATURE_ID, SIGNATURE_HEADER};

/// One committed outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Read order within a transaction.
    pub position: i64,
    /// The writing transaction (xid8, as text).
    pub txid: String,
    /// CloudEvent `id`.
    pub id: uuid::Uuid,
    /// CloudEvent `source`, e.g. `/auth`.
    pub source: String,
    /// CloudEvent `type`, e.g. `user.registered`.
    pub event_type: String,
    /// CloudEvent `subject`: the aggregate id, the ordering key.
    pub subject: String,
    /// The aggregate kind: the Kafka topic.
    pub aggregate: String,
    /// CloudEvent `time`, RFC 3339.
    pub time: String,
    /// CloudEvent `dataschema`, if any.
    pub dataschema: Option<String>,
    /// The JSON data, as stored.
    pub data: String,
    /// The W3C trace context of the request that wrote it (the CloudEvents
    /// distributed-tracing extension), if any.
    pub traceparent: Option<String>,
}

impl OutboxEvent {
    /// The CloudEvent headers (binary content mode), without the signature.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (ce::SPECVERSION, "1.0".to_string()),
            (ce::ID, self.id.to_string()),
            (ce::TYPE, self.event_type.clone()),
            (ce::SOURCE, self.source.clone()),
            (ce::SUBJECT, self.subject.clone()),
            (ce::TIME, self.time.clone()),
            ("content-type", "application/json".to_string()),
        ];
        if let Some(schema) = &self.dataschema {
            h.push((ce::DATASCHEMA, schema.clone()));
        }
        // Over HTTP the extension travels as the W3C header itself, so the
        // receiving function continues the trace.
        if let Some(trace) = &self.traceparent {
            h.push((TRACEPARENT, trace.clone()));
        }
        h
    }
}

impl OutboxEvent {
    /// The event in CloudEvents structured JSON form, as one element of a
    /// batch delivery. Data that is not JSON travels as a JSON string.
    pub fn structured(&self) -> serde_json::Value {
        let data: serde_json::Value = serde_json::from_str(&self.data)
            .unwrap_or_else(|_| serde_json::Value::String(self.data.clone()));
        let mut event = serde_json::json!({
            "specversion": "1.0",
            "id": self.id,
            "type": self.event_type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": data,
        });
        if let Some(schema) = &self.dataschema {
            event["dataschema"] = serde_json::Value::String(schema.clone());
        }
        if let Some(trace) = &self.traceparent {
            event[TRACEPARENT] = serde_json::Value::String(trace.clone());
        }
        event
    }
}

/// How CloudEvents attributes travel as broker message headers: a
/// CloudEvents protocol binding in binary content mode. The data is the
/// message body; `aggregate` (the Kafka topic's aggregate kind) travels
/// as a CloudEvents extension attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// `specversion`.
    pub specversion: &'static str,
    /// `id`.
    pub id: &'static str,
    /// `type`.
    pub ty: &'static str,
    /// `source`.
    pub source: &'static str,
    /// `subject`.
    pub subject: &'static str,
    /// `time`.
    pub time: &'static str,
    /// `dataschema`.
    pub dataschema: &'static str,
    /// The `aggregate` extension.
    pub aggregate: &'static str,
    /// The distributed-tracing extension's `traceparent`.
    pub traceparent: &'static str,
    /// The header carrying `datacontenttype`, when the protocol has no
    /// message property for it.
    pub content_type: Option<&'static str>,
}

impl Binding {
    /// The Kafka protocol binding: `ce_`-prefixed headers and a
    /// `content-type` header.
    pub const KAFKA: Self = Self {
        specversion: "ce_specversion",
        id: "ce_id",
        ty: "ce_type",
        source: "ce_source",
        subject: "ce_subject",
        time: "ce_time",
        dataschema: "ce_dataschema",
        aggregate: "ce_aggregate",
        traceparent: "ce_traceparent",
        content_type: Some("content-type"),
    };

    /// The AMQP protocol binding: `cloudEvents:`-prefixed application
    /// properties (headers); the content type is the message's own
    /// `content-type` property.
    pub const AMQP: Self = Self {
        specversion: "cloudEvents:specversion",
        id: "cloudEvents:id",
        ty: "cloudEvents:type",
        source: "cloudEvents:source",
        subject: "cloudEvents:subject",
        time: "cloudEvents:time",
        dataschema: "cloudEvents:dataschema",
        aggregate: "cloudEvents:aggregate",
        traceparent: "cloudEvents:traceparent",
        content_type: None,
    };

    /// The HTTP binary-mode names plus a plain `aggregate` header: how
    /// the dead-letter table keeps an event's attributes, and what earlier
    /// bridge versions wrote to both brokers (still read, so messages
    /// queued before an upgrade are delivered, not dead-lettered).
    pub const HTTP: Self = Self {
        specversion: ce::SPECVERSION,
        id: ce::ID,
        ty: ce::TYPE,
        source: ce::SOURCE,
        subject: ce::SUBJECT,
        time: ce::TIME,
        dataschema: ce::DATASCHEMA,
        aggregate: "aggregate",
        traceparent: TRACEPARENT,
        content_type: Some("content-type"),
    };
}

impl OutboxEvent {
    /// The headers an event travels with through a broker, per `binding`.
    pub fn broker_headers(&self, binding: &Binding) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (binding.specversion, "1.0".to_string()),
            (binding.id, self.id.to_string()),
            (binding.ty, self.event_type.clone()),
            (binding.source, self.source.clone()),
            (binding.subject, self.subject.clone()),
            (binding.time, self.time.clone()),
            (binding.aggregate, self.aggregate.clone()),
        ];
        if let Some(schema) = &self.dataschema {
            h.push((binding.dataschema, schema.clone()));
        }
        if let Some(trace) = &self.traceparent {
            h.push((binding.traceparent, trace.clone()));
        }
        if let Some(name) = binding.content_type {
            h.push((name, "application/json".to_string()));
        }
        h
    }

    /// Rebuilds an event from a broker message's headers (looked up by
    /// name) and body, per `binding` (or the names earlier versions
    /// wrote). `None` when a required CloudEvent attribute is missing or
    /// the id is not a UUID: such a message is not one of ours.
    pub fn from_broker<'a>(
        binding: &Binding,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
    ) -> Option<Self> {
        let binding = if header(binding.id).is_some() {
            binding
        } else {
            &Binding::HTTP
        };
        let text = |name: &str| header(name).map(str::to_string);
        Some(Self {
            position: 0,
            txid: String::new(),
            id: header(binding.id)?.parse().ok()?,
            source: text(binding.source)?,
            event_type: text(binding.ty)?,
            subject: text(binding.subject).unwrap_or_default(),
            aggregate: text(binding.aggregate).unwrap_or_default(),
            time: text(binding.time).unwrap_or_default(),
            dataschema: text(binding.dataschema),
            data: String::from_utf8_lossy(body).into_owned(),
            traceparent: text(binding.traceparent),
        })
    }
}

/// Signs deliveries with the shared secret (`bridge_signing_secret`).
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// A signer for `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    /// The header value for an event id (or [`BATCH_SIGNATURE_ID`]) and
    /// body at `unix_time`, per the delivery contract.
    pub fn sign(&self, unix_time: u64, event_id: &str, body: &[u8]) -> String {
        spinmesh_delivery::sign(&self.key, unix_time, event_id, body)
    }
}

pub use spinmesh_delivery::unix_now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_bridge_signs_the_functions_verify() {
        // The functions' kit verifies with the contract's `verify`.
        let body = br#"{"user_id":"u1"}"#;
        let now = unix_now();
        let signature = Signer::new("secret").sign(now, "id", body);
        assert_eq!(
            spinmesh_delivery::verify(b"secret", Some(&signature), "id", body, now),
            Ok(())
        );
        assert_eq!(
            spinmesh_delivery::verify(b"other", Some(&signature), "id", body, now),
            Err(spinmesh_delivery::SignatureError::Mismatch)
        );
    }

    #[test]
    fn broker_headers_round_trip_in_both_bindings_and_the_legacy_names() {
        let event = OutboxEvent {
            position: 7,
            txid: "9".into(),
            id: uuid::Uuid::new_v4(),
            source: "/auth".into(),
            event_type: "user.registered".into(),
            subject: "u1".into(),
            aggregate: "users".into(),
            time: "2026-01-01T00:00:00Z".into(),
            dataschema: Some("urn:x".into()),
            data: r#"{"a":1}"#.into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        };
        let expected = OutboxEvent {
            position: 0,
            txid: String::new(),
            ..event.clone()
        };
        for (binding, prefix) in [(Binding::KAFKA, "ce_"), (Binding::AMQP, "cloudEvents:")] {
            let headers = event.broker_headers(&binding);
            assert!(
                headers
                    .iter()
                    .all(|(k, _)| k.starts_with(prefix) || *k == "content-type"),
                "{headers:?}"
            );
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.as_str())
            };
            let back = OutboxEvent::from_broker(&binding, get, event.data.as_bytes()).unwrap();
            assert_eq!(back, expected);
        }
        // Written by an earlier version, read by this one.
        let legacy = event.broker_headers(&Binding::HTTP);
        let get = |name: &str| {
            legacy
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        let back = OutboxEvent::from_broker(&Binding::KAFKA, get, event.data.as_bytes()).unwrap();
        assert_eq!(back, expected);
        assert!(OutboxEvent::from_broker(&Binding::AMQP, |_| None, b"{}").is_none());
        assert!(
            OutboxEvent::from_broker(
                &Binding::KAFKA,
                |k| match k {
                    "ce_id" => Some("not-a-uuid"),
                    _ => Some("x"),
                },
                b"{}"
            )
            .is_none()
        );
    }
}
