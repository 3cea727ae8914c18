//! The messages the bridge writes to brokers follow the CloudEvents
//! protocol bindings (Kafka: `ce_` headers; AMQP: `cloudEvents:`
//! application properties; binary content mode), so any CloudEvents
//! consumer reads them: here, the `cloudevents-sdk` crate.

use cloudevents::{AttributesReader, Data};

use bridge::events::event::OutboxEvent;

use crate::common::cloudevents::decode;
use crate::common::transport::Transport;

fn event() -> OutboxEvent {
    OutboxEvent {
        position: 1,
        txid: "1".into(),
        id: uuid::Uuid::new_v4(),
        source: "/auth".into(),
        event_type: "user.registered".into(),
        subject: "7c1d0c2e".into(),
        aggregate: "users".into(),
        time: "2026-12-03T10:00:00.123456Z".into(),
        dataschema: Some("urn:spinmesh:user.registered:1".into()),
        data: r#"{"version":1,"email":"ada@example.com"}"#.into(),
        traceparent: None,
    }
}

async fn the_sdk_reads_what_the_relay_publishes(transport: Transport) {
    let sent = event();
    let read = decode(transport.published_message(&sent).await);
    assert_eq!(read.id(), sent.id.to_string());
    assert_eq!(read.ty(), "user.registered");
    assert_eq!(read.source().to_string(), "/auth");
    assert_eq!(read.subject(), Some("7c1d0c2e"));
    assert_eq!(
        read.time()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        Some(sent.time.clone())
    );
    assert_eq!(read.datacontenttype(), Some("application/json"));
    assert_eq!(
        read.dataschema().map(ToString::to_string).as_deref(),
        Some("urn:spinmesh:user.registered:1")
    );
    assert_eq!(
        read.extension("aggregate")
            .map(ToString::to_string)
            .as_deref(),
        Some("users")
    );
    let data = match read.data() {
        Some(Data::Json(v)) => v.clone(),
        Some(Data::Binary(b)) => serde_json::from_slice(b).unwrap(),
        Some(Data::String(s)) => serde_json::from_str(s).unwrap(),
        None => panic!("no data"),
    };
    assert_eq!(
        data,
        serde_json::json!({"version": 1, "email": "ada@example.com"})
    );
}

#[tokio::test]
async fn kafka_messages_read_with_the_cloudevents_sdk() {
    the_sdk_reads_what_the_relay_publishes(Transport::kafka()).await;
}

#[tokio::test]
async fn amqp_messages_read_with_the_cloudevents_sdk() {
    the_sdk_reads_what_the_relay_publishes(Transport::amqp()).await;
}
