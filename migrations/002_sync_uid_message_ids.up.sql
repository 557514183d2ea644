-- table: email_sync_uids
-- The Message-ID each settled UID was stored (or found) under. A settled UID
-- is trusted only while a row with this Message-ID exists, so rows deleted
-- from email_messages are fetched and stored again (issue 8). Rows settled
-- before this column existed have NULL here and are fetched once more; the
-- insert skips what is still stored and fills the column.
ALTER TABLE email_sync_uids ADD COLUMN IF NOT EXISTS message_id text;
