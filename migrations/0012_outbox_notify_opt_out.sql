-- A session may opt out of the outbox's per-statement NOTIFY.
--
-- Every NOTIFY takes a cluster-wide lock from just before its
-- transaction commits until the commit is flushed, so notifying writers
-- commit one at a time: measured here, 32 clients inserting outbox rows
-- reach a third of the commits per second they reach without it. The
-- bridge's own host knows when its guests write the outbox: it wakes its
-- in-process readers directly and sends one coalesced NOTIFY for other
-- processes, so its pooled sessions set `spinmesh.outbox_notify = off`.
-- Every other writer (functions under `spin up`, psql) still notifies.

CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('spinmesh.outbox_notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('spinmesh_outbox', '');
    END IF;
    RETURN NULL;
END;
$$;
