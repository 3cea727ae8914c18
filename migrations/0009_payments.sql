-- Payments service: one payment per order, recorded with its
-- `payment.succeeded` / `payment.failed` outbox row and the consumer's
-- claim on the `order.created` event in one statement.
--
-- `payment_attempts` counts how often the simulated processor saw an
-- order, so the transient-failure test token (`tok_error`) can fail a
-- first attempt and succeed on the next one, deterministically, across
-- redeliveries and restarts.

CREATE TABLE payments (
    order_id   uuid          PRIMARY KEY,
    user_id    uuid          NOT NULL,
    amount     numeric(14,2) NOT NULL,
    currency   text          NOT NULL,
    status     text          NOT NULL,
    reason     text,
    -- The processor's reference for a charge (`ch_...`).
    charge_id  text,
    attempts   integer       NOT NULL DEFAULT 1,
    created_at timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT payments_status_check CHECK (status IN ('succeeded', 'failed'))
);

CREATE TABLE payment_attempts (
    order_id   uuid        PRIMARY KEY,
    attempts   integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
