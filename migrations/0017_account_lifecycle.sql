-- Auth: the account lifecycle (verifying an e-mail address, resetting and
-- changing a password).
--
-- email_verified_at: when the account proved it reads its address (NULL
-- until then).
--
-- token_generation: raised by every password change or reset. Access
-- tokens carry the generation they were issued under (the JWT's `gen`
-- claim); the auth function records an account's new generation in Redis
-- and every function turns away tokens of an older one, so one change
-- signs the account out everywhere. A counter, not a timestamp: a token
-- issued in the same clock second as the change is still on the right
-- side of it.
ALTER TABLE users
    ADD COLUMN email_verified_at timestamptz,
    ADD COLUMN token_generation bigint NOT NULL DEFAULT 0;

-- One-time tokens mailed to the account's address, stored as the hex
-- SHA-256 of the token (the token itself only ever travels sealed, inside
-- its event). A token is good while used_at and revoked_at are NULL and
-- expires_at is ahead; using it sets used_at in the same statement as its
-- effect, so it works once. revoked_at is set when a newer token of the
-- same purpose replaces it, or when the password changes.
CREATE TABLE account_tokens (
    token_hash text        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT account_tokens_purpose_check CHECK (purpose IN ('verify_email', 'password_reset'))
);

CREATE INDEX account_tokens_outstanding_idx ON account_tokens (user_id, purpose)
    WHERE used_at IS NULL AND revoked_at IS NULL;

-- Password reset requests, counted in 16 shards (by database connection,
-- as the analytics counters are). Every request bumps one, whether or not
-- its e-mail belongs to an account: a request for a known address writes
-- a token and its event, and without this an unknown one would only read,
-- and a read-only transaction commits without flushing the WAL — a
-- difference a stopwatch can measure. With it, both paths commit a write.
CREATE TABLE password_reset_requests (
    shard    int    PRIMARY KEY CHECK (shard BETWEEN 1 AND 16),
    requests bigint NOT NULL DEFAULT 0
);

INSERT INTO password_reset_requests (shard) SELECT generate_series(1, 16);
