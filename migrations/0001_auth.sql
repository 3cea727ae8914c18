-- Auth service: accounts and refresh tokens.
--
-- Emails are stored lowercased by the application, so the plain unique
-- constraint is case-insensitive in effect. Usernames keep their case for
-- display and are unique case-insensitively through an expression index.
-- Duplicate detection relies on these constraints (SQLSTATE 23505), never on
-- check-then-insert; the auth component tells the two apart by name.

CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL,
    username      text,
    password_hash text        NOT NULL,
    role          text        NOT NULL DEFAULT 'user',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_role_check CHECK (role IN ('user', 'admin'))
);

CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- Opaque refresh tokens, stored as hex SHA-256. A family is one login's
-- chain of rotations: each use sets used_at and inserts the successor with
-- the same family_id; presenting a used token revokes the whole family.
CREATE TABLE refresh_tokens (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  uuid        NOT NULL,
    token_hash text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
