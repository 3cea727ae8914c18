-- The event path: the transactional outbox, consumers' idempotency records,
-- the embedded dispatcher's cursors and its dead letters.
--
-- Functions insert into `outbox` in the same SQL statement as their domain
-- change (a data-modifying CTE), so an event exists exactly when the change
-- does. `txid` is the writing transaction's id: the bridge reads only rows
-- whose transaction is older than every transaction still running
-- (pg_snapshot_xmin), ordered by (txid, position), so a row that commits
-- late can never be skipped by a reader that has moved past its position.

CREATE TABLE outbox (
    position   bigserial   PRIMARY KEY,
    txid       xid8        NOT NULL DEFAULT pg_current_xact_id(),
    id         uuid        NOT NULL UNIQUE,
    source     text        NOT NULL,
    type       text        NOT NULL,
    subject    text        NOT NULL,
    aggregate  text        NOT NULL,
    time       timestamptz NOT NULL DEFAULT now(),
    dataschema text,
    data       jsonb       NOT NULL
);

CREATE INDEX outbox_txid_position_idx ON outbox (txid, position);

-- Wake listeners (the relay, the embedded dispatcher) when an event commits.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('spinmesh_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Which events a consumer has applied; written in the same statement as
-- the effect, so a redelivered event changes nothing.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- The embedded dispatcher's durable position per subscription.
CREATE TABLE bridge_cursors (
    subscription text        PRIMARY KEY,
    txid         xid8        NOT NULL,
    position     bigint      NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Events a subscriber refused or kept failing on, with why.
CREATE TABLE bridge_dead_letters (
    id           bigserial   PRIMARY KEY,
    subscription text        NOT NULL,
    event_id     uuid        NOT NULL,
    type         text        NOT NULL,
    attempts     int         NOT NULL,
    status       int,
    error        text        NOT NULL,
    headers      jsonb       NOT NULL,
    data         jsonb       NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX bridge_dead_letters_subscription_idx ON bridge_dead_letters (subscription, id);
