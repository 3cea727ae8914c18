-- Auth: remember each account's latest successful login.
--
-- A login is a row change (this column) so that `user.logged_in` can be
-- written in the same statement as the change, like every other event.

ALTER TABLE users ADD COLUMN last_login_at timestamptz;
