-- Which aggregate each event type has been published under (with Kafka,
-- the topic that holds it). The outbox relay records a pair before it
-- first publishes an event of it; each Kafka consumer group then reads only
-- the topics of the types its subscription wants. Existing events count.
CREATE TABLE bridge_event_topics (
    type       text        NOT NULL,
    aggregate  text        NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (type, aggregate)
);

INSERT INTO bridge_event_topics (type, aggregate)
SELECT DISTINCT type, aggregate FROM outbox;
