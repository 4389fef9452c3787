package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxPageLimit is the largest Page.Limit: a page is read in one query of at
// most MaxPageLimit+1 rows.
const MaxPageLimit = 1000

// Cursor is a keyset position in a list: the sort key of the last item
// listed. Lists of MSF operations are keyed by (Time, ID) (occurred time,
// operation id), lists of ICC operations by (Time, Seq) (reception time,
// order recorded). A cursor is a position, never an offset: items written or
// removed before it do not move what comes after it.
type Cursor struct {
	Time time.Time
	ID   string
	Seq  int64
}

// Page asks a Page method for part of a list.
type Page struct {
	// After is where to start: the items after it. nil is the start.
	After *Cursor
	// Limit is the most items to list, at most MaxPageLimit; 0 lists
	// everything after After.
	Limit int
}

// errPageLimit is a Page.Limit out of range.
var errPageLimit = fmt.Errorf("page limit must be 0 to %d", MaxPageLimit)

// keyset is the one loop behind every list: it reads the list in batches
// ordered by a key (read returns at most limit items after the cursor, in
// key order), calls emit for each item, and stops after p.Limit items.
// Each batch is read whole, and its rows closed, before emit runs, so no
// connection is held while a slow client reads. With a limit the page is
// one query of p.Limit+1 rows: the extra row says whether another page
// follows, and then next is the key of the last item emitted; otherwise
// next is nil. The cursor must move forward from batch to batch: a list
// that goes back (a database that disagrees with itself on order) fails
// instead of looping.
func keyset[T any](ctx context.Context, s *Store, p Page,
	read func(ctx context.Context, after *Cursor, limit int) ([]T, error),
	key func(T) Cursor, less func(a, b *Cursor) bool,
	emit func(T) error,
) (next *Cursor, err error) {
	if p.Limit < 0 || p.Limit > MaxPageLimit {
		return nil, errPageLimit
	}
	after := p.After
	left := p.Limit
	for {
		n := s.batchSize
		if p.Limit > 0 {
			n = left + 1
		}
		var batch []T
		err := s.bounded(ctx, func(ctx context.Context) error {
			var err error
			batch, err = read(ctx, after, n)
			return err
		})
		if err != nil {
			return nil, s.translate(err)
		}
		for i, item := range batch {
			if p.Limit > 0 && left == 0 {
				c := key(batch[i-1])
				return &c, nil
			}
			if err := emit(item); err != nil {
				return nil, err
			}
			left--
		}
		if len(batch) < n {
			return nil, nil
		}
		c := key(batch[len(batch)-1])
		if after != nil && !less(after, &c) {
			return nil, fmt.Errorf("the listing went back to %v, %q %d", c.Time, c.ID, c.Seq)
		}
		after = &c
	}
}

// byTimeID orders MSF operation cursors: occurred time, then id in byte
// order.
func byTimeID(a, b *Cursor) bool {
	return a.Time.Before(b.Time) || (a.Time.Equal(b.Time) && a.ID < b.ID)
}

// byTimeSeq orders ICC operation cursors: reception time, then order
// recorded.
func byTimeSeq(a, b *Cursor) bool {
	return a.Time.Before(b.Time) || (a.Time.Equal(b.Time) && a.Seq < b.Seq)
}

// fnError carries the error of a Page method's fn through keyset, so that
// it comes back to the caller unchanged.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func fromFn(err error) error {
	if err == nil {
		return nil
	}
	return fnError{err}
}

// listError is err as a Page method returns it: fn's own error unchanged,
// any other one with what the list was.
func listError(what string, err error) error {
	var fe fnError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return fe.err
	}
	return fmt.Errorf("%s: %w", what, err)
}
