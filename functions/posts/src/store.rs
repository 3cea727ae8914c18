//! The `posts` table: reads joined with the author profiles, and writes
//! with their events.
//!
//! A post's author is the token's user id; the name shown beside it comes
//! from [`crate::authors`], so it is `null` until that user's
//! `user.registered` event has arrived and follows every rename. Tags cross
//! as JSON text both ways (`$n::text::jsonb`, `array_to_json(...)::text`),
//! so no host needs array support.

use kit::ApiError;
use kit::db::{
    self, Connection, DbValue, Doing as _, ParameterValue, Statement, text, text_or_null,
};
use kit::outbox::EventSpec;
use kit::paging::{Cursor, PageRequest};
use serde::Serialize;
use uuid::Uuid;

use crate::input::{NewPost, Patch, Tags};

/// A post as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Post {
    /// Primary key.
    pub id: Uuid,
    /// 1–200 characters.
    pub title: String,
    /// 1–20,000 characters.
    pub body: String,
    /// Normalized tags, in the author's order.
    pub tags: Vec<String>,
    /// Who wrote it.
    pub author: Author,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// A post's author as this service knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Author {
    /// The user id.
    pub id: Uuid,
    /// The name from the latest user event applied; `null` before the
    /// first one arrives, or for an account without a username.
    pub username: Option<String>,
}

/// `post.created` (aggregate `posts`, subject = post id). Data, version 1:
///
/// ```json
/// {"version": 1, "post_id": "<uuid>", "author_id": "<uuid>", "title": "Hello",
///  "tags": ["rust"]}
/// ```
pub const POST_CREATED: EventSpec = EventSpec {
    source: "/posts",
    kind: "post.created",
    aggregate: "posts",
    subject: "id",
    version: 1,
    fields: &[
        ("post_id", "changed.id"),
        ("author_id", "changed.author_id"),
        ("title", "changed.title"),
        ("tags", "changed.tags::jsonb"),
    ],
    only_when: None,
};

/// `post.updated`: the fields whose value changed, with their new values
/// (no event when none did). Data, version 1:
///
/// ```json
/// {"version": 1, "post_id": "<uuid>", "author_id": "<uuid>",
///  "changes": {"title": "New title", "tags": ["rust", "wasm"]}}
/// ```
///
/// The body, when it changed, is named in `changes` as `"body": true`
/// rather than copied (it can be 20,000 characters; read the post).
pub const POST_UPDATED: EventSpec = EventSpec {
    source: "/posts",
    kind: "post.updated",
    aggregate: "posts",
    subject: "id",
    version: 1,
    fields: &[
        ("post_id", "changed.id"),
        ("author_id", "changed.author_id"),
        ("changes", "changed.changes"),
    ],
    only_when: Some("changed.changes <> '{}'::jsonb"),
};

/// `post.deleted`. Data, version 1:
///
/// ```json
/// {"version": 1, "post_id": "<uuid>", "author_id": "<uuid>"}
/// ```
pub const POST_DELETED: EventSpec = EventSpec {
    source: "/posts",
    kind: "post.deleted",
    aggregate: "posts",
    subject: "id",
    version: 1,
    fields: &[
        ("post_id", "changed.id"),
        ("author_id", "changed.author_id"),
    ],
    only_when: None,
};

/// The post columns for a table or CTE aliased `p`, in the order
/// [`from_row`] reads them, with the author's name looked up beside.
fn columns() -> String {
    format!(
        "p.id::text AS id, p.author_id::text AS author_id, p.title, p.body, \
         array_to_json(p.tags)::text AS tags, \
         (SELECT a.username FROM post_authors a WHERE a.user_id = p.author_id) AS username, \
         {} AS created_at, {} AS updated_at",
        kit::rfc3339!("p.created_at"),
        kit::rfc3339!("p.updated_at")
    )
}

fn from_row(row: &[DbValue]) -> anyhow::Result<Post> {
    let id: String = db::column(row, 0, "id")?;
    let author: String = db::column(row, 1, "author_id")?;
    let tags: String = db::column(row, 4, "tags")?;
    Ok(Post {
        id: id.parse()?,
        title: db::column(row, 2, "title")?,
        body: db::column(row, 3, "body")?,
        tags: serde_json::from_str(&tags)?,
        author: Author {
            id: author.parse()?,
            username: db::column(row, 5, "username")?,
        },
        created_at: db::column(row, 6, "created_at")?,
        updated_at: db::column(row, 7, "updated_at")?,
    })
}

fn posts(rows: &[Vec<DbValue>]) -> Result<Vec<Post>, ApiError> {
    db::decode_all(rows, from_row)
}

fn first(rows: &[Vec<DbValue>]) -> Result<Option<Post>, ApiError> {
    Ok(posts(rows)?.into_iter().next())
}

/// Whose posts a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorFilter {
    /// By user id.
    Id(Uuid),
    /// By current username, case-insensitively.
    Name(String),
}

/// What a listing is filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this author's posts.
    pub author: Option<AuthorFilter>,
    /// Only posts with this (normalized) tag.
    pub tag: Option<String>,
}

/// One page of posts, newest first (`(created_at, id)` descending), and
/// the cursor of the next page.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn list(
    conn: &Connection,
    filter: &Filter,
    page: &PageRequest,
) -> Result<(Vec<Post>, Option<String>), ApiError> {
    let sql = Statement::new(format!(
        "SELECT {} FROM posts p \
         WHERE ($1::text IS NULL OR p.author_id = $1::text::uuid) \
           AND ($2::text IS NULL OR p.author_id IN \
                (SELECT a.user_id FROM post_authors a WHERE lower(a.username) = lower($2::text))) \
           AND ($3::text IS NULL OR p.tags @> ARRAY[$3::text]) \
           AND ($4::text IS NULL OR (p.created_at, p.id) < ($4::text::timestamptz, $5::text::uuid)) \
         ORDER BY p.created_at DESC, p.id DESC LIMIT $6::bigint",
        columns()
    ));
    let (by_id, by_name) = match &filter.author {
        Some(AuthorFilter::Id(id)) => (text(id), ParameterValue::DbNull),
        Some(AuthorFilter::Name(name)) => (ParameterValue::DbNull, text(name)),
        None => (ParameterValue::DbNull, ParameterValue::DbNull),
    };
    let [at, id] = page.after_params();
    let params = [
        by_id,
        by_name,
        text_or_null(filter.tag.as_deref()),
        at,
        id,
        ParameterValue::Int64(page.fetch()),
    ];
    let rows = conn.rows(&sql, &params).doing("listing posts")?;
    Ok(page.split(posts(&rows)?, |p| Cursor {
        created_at: p.created_at.clone(),
        id: p.id,
    }))
}

/// A post by id.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn find(conn: &Connection, id: Uuid) -> Result<Option<Post>, ApiError> {
    let sql = Statement::new(format!(
        "SELECT {} FROM posts p WHERE p.id = $1::text::uuid",
        columns()
    ));
    first(&conn.rows(&sql, &[text(id)]).doing("loading a post")?)
}

/// Who wrote a post; `None` when there is no such post.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn author_of(conn: &Connection, id: Uuid) -> Result<Option<Uuid>, ApiError> {
    let sql = Statement::new("SELECT author_id::text FROM posts WHERE id = $1::text::uuid");
    let rows = conn
        .rows(&sql, &[text(id)])
        .doing("loading a post's author")?;
    db::decode_first(&rows, |row| {
        Ok(db::column::<String>(row, 0, "author_id")?.parse()?)
    })
}

/// Writes a post by `author` and emits [`POST_CREATED`].
///
/// # Errors
///
/// 503/500 on database failure.
pub fn create(conn: &Connection, author: Uuid, new: &NewPost) -> Result<Post, ApiError> {
    let change = format!(
        "INSERT INTO posts AS p (author_id, title, body, tags) \
         VALUES ($1::text::uuid, $2::text, $3::text, \
                 ARRAY(SELECT jsonb_array_elements_text($4::text::jsonb))) \
         RETURNING {}",
        columns()
    );
    let params = [
        text(author),
        text(&new.title),
        text(&new.body),
        text(new.tags.to_json()),
    ];
    let rows = conn
        .rows(&POST_CREATED.wrap(&change), &params)
        .doing("creating a post")?;
    first(&rows)?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("INSERT returned no row")))
}

/// Who may change a post: its author, or any admin.
#[derive(Debug, Clone, Copy)]
pub struct Editor {
    /// The caller.
    pub user: Uuid,
    /// Whether the caller is an admin.
    pub admin: bool,
}

impl Editor {
    fn params(self) -> [ParameterValue; 2] {
        [text(self.user), ParameterValue::Boolean(self.admin)]
    }
}

/// Applies `patch` to post `id` when `editor` may, emitting
/// [`POST_UPDATED`] with what changed. `None` when nothing was changed:
/// no such post, or not `editor`'s to change (the caller tells which).
///
/// # Errors
///
/// 503/500 on database failure.
pub fn update(
    conn: &Connection,
    id: Uuid,
    editor: Editor,
    patch: &Patch,
) -> Result<Option<Post>, ApiError> {
    let old = "old AS (SELECT o.* FROM posts o WHERE o.id = $1::text::uuid \
               AND (o.author_id = $2::text::uuid OR $3::boolean) FOR UPDATE)";
    let changes = "jsonb_strip_nulls(jsonb_build_object(\
        'title', CASE WHEN p.title IS DISTINCT FROM old.title THEN p.title END, \
        'body', CASE WHEN p.body IS DISTINCT FROM old.body THEN true END, \
        'tags', CASE WHEN p.tags IS DISTINCT FROM old.tags THEN to_jsonb(p.tags) END))";
    let change = format!(
        "UPDATE posts p SET \
           title = coalesce($4::text, p.title), \
           body = coalesce($5::text, p.body), \
           tags = CASE WHEN $6::text IS NULL THEN p.tags \
                       ELSE ARRAY(SELECT jsonb_array_elements_text($6::text::jsonb)) END, \
           updated_at = now() \
         FROM old WHERE p.id = old.id RETURNING {}, {changes} AS changes",
        columns()
    );
    let [user, admin] = editor.params();
    let params = [
        text(id),
        user,
        admin,
        text_or_null(patch.title.as_deref()),
        text_or_null(patch.body.as_deref()),
        text_or_null(patch.tags.as_ref().map(Tags::to_json)),
    ];
    let rows = conn
        .rows(&POST_UPDATED.wrap_after(&[old], &change), &params)
        .doing("updating a post")?;
    first(&rows)
}

/// Deletes post `id` when `editor` may, emitting [`POST_DELETED`].
/// `false` when nothing was deleted: no such post, or not `editor`'s.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn delete(conn: &Connection, id: Uuid, editor: Editor) -> Result<bool, ApiError> {
    let change = "DELETE FROM posts p WHERE p.id = $1::text::uuid \
                  AND (p.author_id = $2::text::uuid OR $3::boolean) \
                  RETURNING p.id::text AS id, p.author_id::text AS author_id";
    let [user, admin] = editor.params();
    let rows = conn
        .rows(&POST_DELETED.wrap(change), &[text(id), user, admin])
        .doing("deleting a post")?;
    Ok(!rows.is_empty())
}
