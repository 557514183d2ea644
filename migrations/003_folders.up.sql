-- Folders (issue 10): a run may read several mailboxes of one account.

-- table: email_sync_uids
-- Settled UIDs are per folder: each folder has its own UIDs and
-- UIDVALIDITY. Rows settled before folders existed are INBOX's.
ALTER TABLE email_sync_uids ADD COLUMN IF NOT EXISTS folder text NOT NULL DEFAULT 'INBOX';
ALTER TABLE email_sync_uids DROP CONSTRAINT IF EXISTS email_sync_uids_pkey;
ALTER TABLE email_sync_uids ADD PRIMARY KEY (inbox, folder, uidvalidity, uid);

-- table: email_messages
-- The folders a message was seen in: one row per message per inbox, however
-- many folders hold it. Rows stored before folders existed came from INBOX:
-- added with that constant default (no table rewrite, existing rows read
-- it), then new rows default to none, as the tool always writes the list.
ALTER TABLE email_messages ADD COLUMN IF NOT EXISTS folders text[] NOT NULL DEFAULT '{INBOX}';
ALTER TABLE email_messages ALTER COLUMN folders SET DEFAULT '{}';

-- table: email_sync_folders
-- One row per folder of an inbox: what its last run found and stored.
CREATE TABLE IF NOT EXISTS email_sync_folders (
    inbox             text        NOT NULL,
    folder            text        NOT NULL,
    special_use       text,
    uidvalidity       bigint,
    last_uid          bigint,
    found             bigint      NOT NULL DEFAULT 0,
    stored            bigint      NOT NULL DEFAULT 0,
    skipped           bigint      NOT NULL DEFAULT 0,
    failed            bigint      NOT NULL DEFAULT 0,
    last_sync_at      timestamptz,
    last_operation_id uuid,
    last_status       text,
    PRIMARY KEY (inbox, folder)
);
