-- table: backfill_inboxes
-- Inboxes registered with `backfill inboxes add` (issue 12), beside those
-- configured in the environment. No secret is stored: a credential is a
-- command to run, or the name of a variable to read, where backfill runs.
-- folders NULL means the URL's mailbox (INBOX); max_download is written as
-- --max-download takes it (2500MB/24h), NULL for the environment's rules.
CREATE TABLE IF NOT EXISTS backfill_inboxes (
    name             text        PRIMARY KEY,
    url              text        NOT NULL,
    password_command text,
    password_env     text,
    token_command    text,
    folders          text[],
    all_folders      boolean     NOT NULL DEFAULT false,
    max_download     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT backfill_inboxes_one_credential
        CHECK (num_nonnulls(password_command, password_env, token_command) <= 1)
);
