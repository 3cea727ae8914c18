-- Dead letters waiting in the broker (RabbitMQ's dead-letter queues, Kafka's
-- `.dlq` topics past what `bridge dead-letters` has handled), as the bridge
-- process that writes the heartbeat counted them; NULL without a broker
-- (the `bridge_dead_letters` table is counted directly) or when the count
-- failed. `GET /health` reports them beside the table's.

ALTER TABLE bridge_status ADD COLUMN dead_letters bigint;
