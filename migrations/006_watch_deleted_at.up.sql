-- table: email_messages
-- When `backfill watch` saw the message expunged on the server (issue 11).
-- Rows are never deleted: a backend keeps what it had and can hide or purge
-- what the mailbox no longer holds. An adopted email_messages is left as it
-- is; watch then does not record deletions (see pgsink.Sink.Follows).
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
