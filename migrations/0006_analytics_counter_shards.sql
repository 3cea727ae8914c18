-- Hot analytics counters split into 16 shards.
--
-- Every recorded event bumps the total, its action's count and its user's
-- count for that action. With one
-- row each, concurrent deliveries queue on that row's lock for as long as
-- each transaction takes to commit, which capped the event path at about
-- 1.6k events/s. A statement now bumps the shard of its own database
-- connection (1 + pg_backend_pid() % 16), so concurrent writers rarely
-- meet; reads add up at most 16 rows per counter, whatever the number of
-- events.

ALTER TABLE analytics_totals DROP CONSTRAINT analytics_totals_id_check;
ALTER TABLE analytics_totals ADD CONSTRAINT analytics_totals_id_check CHECK (id BETWEEN 1 AND 16);
INSERT INTO analytics_totals (id, count) SELECT shard, 0 FROM generate_series(2, 16) AS shard;

ALTER TABLE analytics_action_counts ADD COLUMN shard int NOT NULL DEFAULT 1
    CHECK (shard BETWEEN 1 AND 16);
ALTER TABLE analytics_action_counts DROP CONSTRAINT analytics_action_counts_pkey;
ALTER TABLE analytics_action_counts ADD PRIMARY KEY (action, shard);

ALTER TABLE analytics_user_action_counts ADD COLUMN shard int NOT NULL DEFAULT 1
    CHECK (shard BETWEEN 1 AND 16);
ALTER TABLE analytics_user_action_counts DROP CONSTRAINT analytics_user_action_counts_pkey;
ALTER TABLE analytics_user_action_counts ADD PRIMARY KEY (user_id, action, shard);
