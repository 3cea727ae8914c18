-- Notifications service: what was sent to whom, over which channel.
--
-- `event_id` is the CloudEvents id of the event that caused the
-- notification (NULL for POST /notify); the consumer's idempotency record
-- lives in processed_events.

CREATE TABLE notifications (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    text        NOT NULL,
    channel    text        NOT NULL,
    message    text        NOT NULL,
    status     text        NOT NULL,
    error      text,
    event_id   uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_channel_check CHECK (channel IN ('log', 'webhook')),
    CONSTRAINT notifications_status_check CHECK (status IN ('sent', 'failed'))
);

-- "My notifications, newest first".
CREATE INDEX notifications_user_id_created_at_idx ON notifications (user_id, created_at DESC, id);
