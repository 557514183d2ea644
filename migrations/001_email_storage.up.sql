-- The tables the seed's `20251124_email_storage` migration describes. Each
-- "-- table:" section is skipped for a table the backend's own migration
-- created: backfill adopts that table as it is (see adopt.go).

-- table: email_messages
CREATE TABLE IF NOT EXISTS email_messages (
    id               bigserial PRIMARY KEY,
    inbox            text        NOT NULL,
    message_id       text        NOT NULL,
    thread_id        text        NOT NULL,
    from_address     text        NOT NULL DEFAULT '',
    from_name        text        NOT NULL DEFAULT '',
    to_addresses     text[]      NOT NULL DEFAULT '{}',
    cc_addresses     text[]      NOT NULL DEFAULT '{}',
    subject          text        NOT NULL DEFAULT '',
    text_body        text,
    html_body        text,
    received_at      timestamptz NOT NULL,
    sent_at          timestamptz,
    attachments      jsonb       NOT NULL DEFAULT '[]',
    in_reply_to      text,
    "references"     text[]      NOT NULL DEFAULT '{}',
    size_bytes       bigint      NOT NULL DEFAULT 0,
    imap_uid         bigint,
    imap_uidvalidity bigint,
    is_read          boolean     NOT NULL DEFAULT false,
    is_starred       boolean     NOT NULL DEFAULT false,
    labels           text[]      NOT NULL DEFAULT '{}',
    synced_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per message per inbox. The key is on md5(message_id), not the raw
-- text: a btree refuses keys over about 2.7 KB, and hostile or broken mail
-- carries Message-IDs of any length.
CREATE UNIQUE INDEX IF NOT EXISTS email_messages_inbox_message_id_key
    ON email_messages (inbox, md5(message_id));
CREATE INDEX IF NOT EXISTS email_messages_inbox_received_at_idx
    ON email_messages (inbox, received_at DESC);
CREATE INDEX IF NOT EXISTS email_messages_inbox_thread_id_idx
    ON email_messages (inbox, thread_id);

-- table: email_threads
CREATE TABLE IF NOT EXISTS email_threads (
    inbox            text        NOT NULL,
    thread_id        text        NOT NULL,
    subject          text        NOT NULL DEFAULT '',
    participants     text[]      NOT NULL DEFAULT '{}',
    message_count    integer     NOT NULL DEFAULT 0,
    first_message_at timestamptz,
    last_message_at  timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (inbox, thread_id)
);

-- table: email_sync_status
CREATE TABLE IF NOT EXISTS email_sync_status (
    inbox             text PRIMARY KEY,
    last_sync_at      timestamptz,
    total_synced      bigint NOT NULL DEFAULT 0,
    sync_errors       jsonb  NOT NULL DEFAULT '[]',
    uidvalidity       bigint,
    last_uid          bigint,
    last_operation_id uuid,
    last_status       text
);

-- table: email_sync_uids
-- The UIDs a run has finished with (stored, or skipped as already present),
-- per UIDVALIDITY. A re-run subtracts them from the mailbox listing and
-- fetches no bodies for them; failed UIDs are absent, so they are retried.
CREATE TABLE IF NOT EXISTS email_sync_uids (
    inbox       text   NOT NULL,
    uidvalidity bigint NOT NULL,
    uid         bigint NOT NULL,
    PRIMARY KEY (inbox, uidvalidity, uid)
);

-- table: error_logs
CREATE TABLE IF NOT EXISTS error_logs (
    id            bigserial PRIMARY KEY,
    operation_id  uuid        NOT NULL,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    severity      text        NOT NULL,
    category      text        NOT NULL,
    inbox         text,
    imap_uid      bigint,
    message_id    text,
    error_type    text        NOT NULL,
    error_message text        NOT NULL,
    attempts      integer     NOT NULL DEFAULT 1,
    context       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS error_logs_operation_id_idx ON error_logs (operation_id);
CREATE INDEX IF NOT EXISTS error_logs_occurred_at_idx ON error_logs (occurred_at DESC);
