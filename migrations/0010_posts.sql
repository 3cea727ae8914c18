-- Posts service: posts, and the author profiles it keeps from user events.
--
-- `post_authors` is a projection of the auth function's `user.registered`
-- and `user.updated` events, never read from `users`: the posts function
-- owns it and can rebuild it from the outbox (`bridge replay`). Each row
-- remembers the `revision` of the user it last applied; an event carrying
-- an older or equal revision changes nothing, so a redelivered or
-- reordered event cannot roll a name back.
--
-- `users.revision` counts a user's changes: 1 at registration, +1 with
-- every `PATCH /auth/me`, written into each user event.

ALTER TABLE users ADD COLUMN revision bigint NOT NULL DEFAULT 1;

-- Accounts renamed before user events carried revisions: announce their
-- current name as revision 2, so the outbox alone rebuilds every profile.
WITH renamed AS (
    UPDATE users u SET revision = 2
     WHERE EXISTS (SELECT 1 FROM outbox o
                    WHERE o.type = 'user.registered' AND o.subject = u.id::text
                      AND o.data->>'username' IS DISTINCT FROM u.username)
    RETURNING u.id, u.username, u.revision
)
INSERT INTO outbox (id, source, type, subject, aggregate, dataschema, data)
SELECT gen_random_uuid(), '/auth', 'user.updated', id::text, 'users',
       'https://spinmesh.dev/schemas/events/user.updated/v1',
       jsonb_build_object('version', 1, 'user_id', id, 'username', username, 'revision', revision)
  FROM renamed;

CREATE TABLE post_authors (
    user_id    uuid        PRIMARY KEY,
    username   text,
    revision   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX post_authors_username_idx ON post_authors (lower(username));

CREATE TABLE posts (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id  uuid        NOT NULL,
    title      text        NOT NULL,
    body       text        NOT NULL,
    tags       text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT posts_title_check CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT posts_body_check CHECK (char_length(body) BETWEEN 1 AND 20000),
    CONSTRAINT posts_tags_check CHECK (cardinality(tags) <= 10)
);

-- Newest first, overall and per author; tags through a GIN index.
CREATE INDEX posts_created_idx ON posts (created_at DESC, id DESC);
CREATE INDEX posts_author_created_idx ON posts (author_id, created_at DESC, id DESC);
CREATE INDEX posts_tags_idx ON posts USING gin (tags);
