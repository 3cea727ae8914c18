//! An event as the outbox holds it, and its CloudEvents 1.0 HTTP binary-mode
//! form: `ce-*` headers plus the JSON data as the body, signed so a
//! function can tell the bridge's deliveries from anyone else's POST. The
//! header names and the signature scheme are the delivery contract in
//! `spinmesh-delivery`, which the functions' kit verifies with.

use spinmesh_delivery::header as ce;
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
        event
    }
}

/// The header naming the aggregate kind on broker messages.
pub const AGGREGATE_HEADER: &str = "aggregate";

impl OutboxEvent {
    /// The headers an event travels with through a broker: the CloudEvent
    /// attributes under their HTTP binary-mode names, plus the aggregate.
    pub fn broker_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = self.headers();
        h.push((AGGREGATE_HEADER, self.aggregate.clone()));
        h
    }

    /// Rebuilds an event from a broker message's headers (looked up by
    /// name) and body. `None` when a required CloudEvent attribute is
    /// missing or the id is not a UUID: such a message is not one of ours.
    pub fn from_broker<'a>(header: impl Fn(&str) -> Option<&'a str>, body: &[u8]) -> Option<Self> {
        let text = |name: &str| header(name).map(str::to_string);
        Some(Self {
            position: 0,
            txid: String::new(),
            id: header(ce::ID)?.parse().ok()?,
            source: text(ce::SOURCE)?,
            event_type: text(ce::TYPE)?,
            subject: text(ce::SUBJECT).unwrap_or_default(),
            aggregate: text(AGGREGATE_HEADER).unwrap_or_default(),
            time: text(ce::TIME).unwrap_or_default(),
            dataschema: text(ce::DATASCHEMA),
            data: String::from_utf8_lossy(body).into_owned(),
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

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

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
    fn broker_headers_round_trip() {
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
        };
        let headers = event.broker_headers();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        let back = OutboxEvent::from_broker(get, event.data.as_bytes()).unwrap();
        assert_eq!(
            back,
            OutboxEvent {
                position: 0,
                txid: String::new(),
                ..event.clone()
            }
        );
        assert!(OutboxEvent::from_broker(|_| None, b"{}").is_none());
        assert!(
            OutboxEvent::from_broker(
                |k| match k {
                    "ce-id" => Some("not-a-uuid"),
                    _ => Some("x"),
                },
                b"{}"
            )
            .is_none()
        );
    }
}
