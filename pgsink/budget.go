package pgsink

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Download is one row of an inbox's download ledger (email_downloads).
type Download struct {
	At    time.Time // on this machine's clock
	Bytes int64
}

// PruneDownloads deletes the inbox's ledger rows older than keep.
func (s *Sink) PruneDownloads(ctx context.Context, inbox string, keep time.Duration) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM email_downloads WHERE inbox = $1 AND at < now() - $2 * interval '1 microsecond'`,
		inbox, keep.Microseconds())
	if err != nil {
		return fmt.Errorf("prune download ledger: %w", err)
	}
	return nil
}

// Downloads returns the inbox's ledger rows of the last window, oldest
// first. Rows are stamped by the database's clock, so runs on machines
// whose clocks disagree share one window; the times returned are converted
// to this machine's clock, which the caller compares them with.
func (s *Sink) Downloads(ctx context.Context, inbox string, window time.Duration) ([]Download, error) {
	sent := time.Now()
	rows, err := s.pool.Query(ctx, `SELECT now(), at, bytes FROM email_downloads
		WHERE inbox = $1 AND at > now() - $2 * interval '1 microsecond' ORDER BY at`, inbox, window.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("read download ledger: %w", err)
	}
	var dbNow time.Time
	var out []Download
	var d Download
	_, err = pgx.ForEachRow(rows, []any{&dbNow, &d.At, &d.Bytes}, func() error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read download ledger: %w", err)
	}
	// The query's now() is taken about when it was sent.
	skew := sent.Sub(dbNow)
	for i := range out {
		out[i].At = out[i].At.Add(skew)
	}
	return out, nil
}

// RecordDownload adds bytes downloaded now for the inbox to its ledger.
func (s *Sink) RecordDownload(ctx context.Context, inbox string, opID uuid.UUID, bytes int64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO email_downloads (inbox, bytes, operation_id) VALUES ($1, $2, $3)`,
		inbox, bytes, uuidOrNil(opID))
	if err != nil {
		return fmt.Errorf("record download: %w", err)
	}
	return nil
}
