package storage

import "context"

// Scan calls fn for every event matching f, newest first, as Query pages
// them: each page is read in a transaction of its own and fn runs outside
// it, so a slow consumer (a client downloading an export) never holds the
// database open, and memory stays at one page whatever the range. Events
// written while the scan runs may or may not be seen; none is seen twice.
// An error from fn stops the scan and is returned.
func (s *Store) Scan(ctx context.Context, f Filter, fn func(*Event) error) error {
	var cursor string
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := s.Query(f, MaxPageSize, cursor)
		if err != nil {
			return err
		}
		for i := range page.Events {
			if err := fn(&page.Events[i]); err != nil {
				return err
			}
		}
		if page.NextCursor == "" {
			return nil
		}
		cursor = page.NextCursor
	}
}
