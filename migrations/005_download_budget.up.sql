-- table: email_downloads
-- The bytes each fetch round downloaded from an inbox's IMAP server, as
-- the server sent them (message bodies, the sections a lean fetch took,
-- oversized messages read and thrown away). --max-download sums the rows
-- of its rolling window, so a budget holds across runs; runs prune rows
-- older than any window they keep (issue 10).
CREATE TABLE IF NOT EXISTS email_downloads (
    inbox        text        NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    bytes        bigint      NOT NULL,
    operation_id uuid
);
CREATE INDEX IF NOT EXISTS email_downloads_inbox_at ON email_downloads (inbox, at);
