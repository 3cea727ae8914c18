-- The event path's heartbeat, read by the functions' `GET /health`: every
-- bridge process that moves events (`bridge up`, `bridge relay`) writes its
-- row every few seconds: its broker, the state of each connected part, and
-- the outbox cursors it reads (whose lag is the outbox backlog).

CREATE TABLE bridge_status (
    name       text        PRIMARY KEY,
    role       text        NOT NULL,
    broker     text        NOT NULL,
    parts      jsonb       NOT NULL,
    cursors    text[]      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
