package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.FilterStore = (*Store)(nil)

// inChunk bounds the placeholders of one IN (...) list.
const inChunk = 400

// GreylistGet implements store.FilterStore.
func (s *Store) GreylistGet(ctx context.Context, keys []string) (map[string]store.GreylistEntry, error) {
	out := make(map[string]store.GreylistEntry, len(keys))
	c := s.readConn()
	for len(keys) > 0 {
		n := min(len(keys), inChunk)
		args := make([]any, n)
		for i, k := range keys[:n] {
			args[i] = k
		}
		keys = keys[n:]
		rows, err := c.query(ctx, `SELECT key, first_seen, last_seen, passed FROM greylist WHERE key IN (`+placeholders(n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: greylist: %w", err)
		}
		for rows.Next() {
			var e store.GreylistEntry
			if err := rows.Scan(&e.Key, scanTime(&e.FirstSeen), scanTime(&e.LastSeen), &e.Passed); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlstore: greylist: %w", err)
			}
			out[e.Key] = e
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlstore: greylist: %w", err)
		}
	}
	return out, nil
}

// GreylistPut implements store.FilterStore. An upsert, so two nodes
// recording the same new triplet at once both succeed.
func (s *Store) GreylistPut(ctx context.Context, entries []store.GreylistEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := s.withTx(ctx, func(c conn) error {
		for _, e := range entries {
			if _, err := c.exec(ctx, `INSERT INTO greylist (key, first_seen, last_seen, passed) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen, passed = excluded.passed`,
				e.Key, s.d.ts(e.FirstSeen), s.d.ts(e.LastSeen), e.Passed); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: greylist put: %w", err)
	}
	return nil
}

// GreylistExpire implements store.FilterStore.
func (s *Store) GreylistExpire(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM greylist WHERE last_seen < ?`, s.d.ts(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: greylist expire: %w", err)
	}
	return n, nil
}

// JunkTotals implements store.FilterStore.
func (s *Store) JunkTotals(ctx context.Context, users []string) (map[string]store.JunkCounts, error) {
	out := map[string]store.JunkCounts{}
	c := s.readConn()
	for len(users) > 0 {
		n := min(len(users), inChunk)
		args := make([]any, n)
		for i, u := range users[:n] {
			args[i] = u
		}
		users = users[n:]
		rows, err := c.query(ctx, `SELECT user_email, spam, ham FROM junk_total WHERE user_email IN (`+placeholders(n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: junk totals: %w", err)
		}
		for rows.Next() {
			var u string
			var jc store.JunkCounts
			if err := rows.Scan(&u, &jc.Spam, &jc.Ham); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlstore: junk totals: %w", err)
			}
			out[u] = jc
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlstore: junk totals: %w", err)
		}
	}
	return out, nil
}

// JunkTokens implements store.FilterStore.
func (s *Store) JunkTokens(ctx context.Context, user string, tokens []string) (map[string]store.JunkCounts, error) {
	out := make(map[string]store.JunkCounts, len(tokens)/4)
	c := s.readConn()
	for len(tokens) > 0 {
		n := min(len(tokens), inChunk)
		args := make([]any, 0, n+1)
		args = append(args, user)
		for _, t := range tokens[:n] {
			args = append(args, t)
		}
		tokens = tokens[n:]
		rows, err := c.query(ctx, `SELECT token, spam, ham FROM junk_token WHERE user_email = ? AND token IN (`+placeholders(n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: junk tokens: %w", err)
		}
		for rows.Next() {
			var t string
			var jc store.JunkCounts
			if err := rows.Scan(&t, &jc.Spam, &jc.Ham); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlstore: junk tokens: %w", err)
			}
			out[t] = jc
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlstore: junk tokens: %w", err)
		}
	}
	return out, nil
}

// JunkTrain implements store.FilterStore. A user that does not exist
// (any more) gives store.ErrNotFound.
func (s *Store) JunkTrain(ctx context.Context, user string, tokens []string, spam bool) error {
	sp, hm := 0, 1
	if spam {
		sp, hm = 1, 0
	}
	err := s.withTx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `INSERT INTO junk_total (user_email, spam, ham) VALUES (?, ?, ?)
ON CONFLICT (user_email) DO UPDATE SET spam = junk_total.spam + excluded.spam, ham = junk_total.ham + excluded.ham`,
			user, sp, hm); err != nil {
			return mapErr(err)
		}
		for rest := tokens; len(rest) > 0; {
			n := min(len(rest), inChunk/3)
			var b strings.Builder
			b.WriteString(`INSERT INTO junk_token (user_email, token, spam, ham) VALUES `)
			args := make([]any, 0, 4*n)
			for i, t := range rest[:n] {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString("(?, ?, ?, ?)")
				args = append(args, user, t, sp, hm)
			}
			rest = rest[n:]
			b.WriteString(` ON CONFLICT (user_email, token) DO UPDATE SET spam = junk_token.spam + excluded.spam, ham = junk_token.ham + excluded.ham`)
			if _, err := c.exec(ctx, b.String(), args...); err != nil {
				return mapErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: junk train %s: %w", user, err)
	}
	return nil
}
