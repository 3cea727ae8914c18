-- Notifications over email and SMS, delivered by the bridge's sinks.
--
-- A notification over `email` or `sms` with a configured sink is stored
-- `queued` in the same statement as its request event
-- (`notification.email_requested` / `notification.sms_requested`); the
-- sink's report (`notification.delivered` / `notification.delivery_failed`)
-- moves it to `sent` or `failed`. `recipient` is the address it went to
-- (an email address, or an E.164 phone number); `kind` names the template
-- that rendered it.

ALTER TABLE notifications
    DROP CONSTRAINT notifications_channel_check,
    DROP CONSTRAINT notifications_status_check,
    ADD COLUMN recipient  text,
    ADD COLUMN kind       text        NOT NULL DEFAULT 'message',
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT notifications_channel_check
        CHECK (channel IN ('log', 'webhook', 'email', 'sms')),
    ADD CONSTRAINT notifications_status_check
        CHECK (status IN ('queued', 'sent', 'failed')),
    ADD CONSTRAINT notifications_recipient_check
        CHECK (channel NOT IN ('email', 'sms') OR recipient IS NOT NULL),
    ADD CONSTRAINT notifications_kind_check
        CHECK (kind IN ('message', 'welcome', 'order', 'verify_email',
                        'password_reset', 'password_changed'));

-- The only moves a status may make: queued → sent | failed, and failed →
-- sent once a dead-lettered request is redriven and delivered. `sent` is
-- final. The handlers only ever ask for these (their UPDATEs match the
-- current status), so this guards against a bug, not a race.
CREATE FUNCTION notifications_status_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
        (OLD.status = 'queued' AND NEW.status IN ('sent', 'failed'))
        OR (OLD.status = 'failed' AND NEW.status = 'sent')
    ) THEN
        RAISE EXCEPTION 'notification % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER notifications_status_transition BEFORE UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_status_transition();

-- Who can be reached at which address: a projection of the auth
-- function's events (`user.registered`, the account emails' events), so
-- `POST /notify` with `"channel": "email"` and only a `user_id` finds the
-- address. `updated_at` is the time of the event that set it: an older
-- event arriving late never overwrites a newer address.
CREATE TABLE notification_recipients (
    user_id    text        PRIMARY KEY,
    email      text        NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The bridge's email and SMS sinks: which request events each has handed
-- over (`sent`) or given up on (`failed`, after the delivery policy
-- dead-lettered it). A sink checks it before sending and records the send
-- in the same statement as its `notification.delivered` report, so a
-- redelivered request is not sent again; a redriven `failed` one may
-- still become `sent`.
CREATE TABLE sink_deliveries (
    sink        text        NOT NULL,
    event_id    uuid        NOT NULL,
    outcome     text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, event_id),
    CONSTRAINT sink_deliveries_outcome_check CHECK (outcome IN ('sent', 'failed'))
);
