-- Analytics service: tracked events and their counters.
--
-- Every insert into analytics_events updates the three counter tables in
-- the same statement (a data-modifying CTE), so reading a metric is one
-- primary-key lookup or a scan of the distinct actions, never a count(*)
-- over the events.

CREATE TABLE analytics_events (
    id          bigserial   PRIMARY KEY,
    -- The CloudEvents id for events delivered by the bridge; NULL for
    -- events posted directly to /events.
    event_id    uuid        UNIQUE,
    user_id     text        NOT NULL,
    action      text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE analytics_action_counts (
    action text   PRIMARY KEY,
    count  bigint NOT NULL
);

CREATE TABLE analytics_user_action_counts (
    user_id text   NOT NULL,
    action  text   NOT NULL,
    count   bigint NOT NULL,
    PRIMARY KEY (user_id, action)
);

-- A single row holding the number of events ever recorded.
CREATE TABLE analytics_totals (
    id    int    PRIMARY KEY CHECK (id = 1),
    count bigint NOT NULL
);

INSERT INTO analytics_totals (id, count) VALUES (1, 0);
