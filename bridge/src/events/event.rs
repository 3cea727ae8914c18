//! An event as the outbox holds it, and its CloudEvents 1.0 HTTP binary-mode
//! form: `ce-*` headers plus the JSON data as the body, signed with
//! HMAC-SHA256 so a function can tell the bridge's deliveries from anyone
//! else's POST.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature: `t=<unix seconds>,v1=<hex mac>`.
pub const SIGNATURE_HEADER: &str = "spinmesh-signature";

/// Content type of a batch delivery (CloudEvents batch mode).
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// What a batch delivery's signature binds in place of an event id:
/// the signed text is `t.batch.body`.
pub const BATCH_SIGNATURE_ID: &str = "batch";

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
            ("ce-specversion", "1.0".to_string()),
            ("ce-id", self.id.to_string()),
            ("ce-type", self.event_type.clone()),
            ("ce-source", self.source.clone()),
            ("ce-subject", self.subject.clone()),
            ("ce-time", self.time.clone()),
            ("content-type", "application/json".to_string()),
        ];
        if let Some(schema) = &self.dataschema {
            h.push(("ce-dataschema", schema.clone()));
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
            id: header("ce-id")?.parse().ok()?,
            source: text("ce-source")?,
            event_type: text("ce-type")?,
            subject: text("ce-subject").unwrap_or_default(),
            aggregate: text(AGGREGATE_HEADER).unwrap_or_default(),
            time: text("ce-time").unwrap_or_default(),
            dataschema: text("ce-dataschema"),
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

    /// The header value for an event id and body at `unix_time`:
    /// `t=<unix_time>,v1=<hex HMAC-SHA256 of "t.id.body">`.
    pub fn sign(&self, unix_time: u64, event_id: &str, body: &[u8]) -> String {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(unix_time.to_string().as_bytes());
        mac.update(b".");
        mac.update(event_id.as_bytes());
        mac.update(b".");
        mac.update(body);
        format!(
            "t={unix_time},v1={}",
            hex::encode(mac.finalize().into_bytes())
        )
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
    fn signature_covers_time_id_and_body() {
        let s = Signer::new("secret");
        let a = s.sign(100, "id", b"{}");
        assert!(a.starts_with("t=100,v1="));
        assert_eq!(a.len(), "t=100,v1=".len() + 64);
        assert_ne!(a, s.sign(101, "id", b"{}"));
        assert_ne!(a, s.sign(100, "id2", b"{}"));
        assert_ne!(a, s.sign(100, "id", b"{ }"));
        assert_ne!(a, Signer::new("other").sign(100, "id", b"{}"));
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

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key="key", "1.e.b"), computed independently with Python's hmac module.
        let sig = Signer::new("key").sign(1, "e", b"b");
        assert_eq!(
            sig,
            format!(
                "t=1,v1={}",
                "c5c6f42e2b2d2ebcdc9b742038eb31f9123d76ffa48877ed5dad241cd2d314c3"
            )
        );
    }
}
