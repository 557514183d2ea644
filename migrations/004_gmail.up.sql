-- table: email_messages
-- Gmail's own ids of a message (X-GM-MSGID, the same in every label) and of
-- its conversation (X-GM-THRID), issue 10; NULL for mail from any other
-- server. thread_id stays the pinned hash the backend computes too. Like
-- every "-- table:" section, this is skipped for a table the backend's own
-- migration created: backfill writes these columns only where they exist.
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS gmail_msgid bigint;
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS gmail_thread_id bigint;
