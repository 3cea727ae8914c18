//! The event path through a real Kafka-protocol broker (Tansu in CI;
//! `SPINMESH_KAFKA_BROKERS` points the tests elsewhere): outbox → relay →
//! a topic per aggregate → a consumer group per subscription → the
//! functions. Each test uses its own topics and groups and deletes them.

use crate::common::scenarios;
use crate::common::transport::Transport;

#[tokio::test]
async fn delivered_once_in_order_per_subject() {
    scenarios::delivered_once_in_order_per_subject(Transport::kafka()).await;
}

#[tokio::test]
async fn retried_then_dead_lettered() {
    scenarios::retried_then_dead_lettered(Transport::kafka()).await;
}

#[tokio::test]
async fn killed_mid_stream_loses_nothing() {
    scenarios::killed_mid_stream_loses_nothing(Transport::kafka()).await;
}

#[tokio::test]
async fn registration_reaches_functions_once() {
    scenarios::registration_reaches_functions_once(Transport::kafka()).await;
}

#[tokio::test]
async fn host_writes_wake_readers_without_a_notify_per_statement() {
    scenarios::host_writes_wake_readers_without_a_notify_per_statement(Transport::kafka()).await;
}

#[tokio::test]
async fn http_invoker_and_forged_signatures() {
    scenarios::http_invoker_and_forged_signatures(Transport::kafka()).await;
}

#[tokio::test]
async fn a_refused_batch_is_split_into_single_events() {
    scenarios::a_refused_batch_is_split_into_single_events(Transport::kafka()).await;
}

#[tokio::test]
async fn store_saga_end_to_end() {
    crate::common::saga::saga_end_to_end(Transport::kafka()).await;
}

#[tokio::test]
async fn store_unpaid_orders_time_out() {
    crate::common::saga::unpaid_orders_time_out(Transport::kafka()).await;
}

#[tokio::test]
async fn posts_follow_user_events_and_replay_rebuilds_profiles() {
    crate::common::posts::posts_follow_user_events(Transport::kafka()).await;
}
