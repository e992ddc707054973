package sqlstore

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/petrelmail/petrel/internal/store"
)

// dialect is what differs between SQLite and PostgreSQL outside the DDL.
type dialect interface {
	name() string
	rebind(query string) string
	// ts converts a timestamp to a query argument (UTC, microseconds:
	// PostgreSQL's precision, so both dialects read back the same value).
	ts(t time.Time) any
	// forUpdate is the row-lock suffix for a SELECT ("" on SQLite, where
	// the single write connection already serialises writers).
	forUpdate() string
	// intSet is a subquery with one column v over the integers of one
	// argument made by intSetArg: a whole UID list as one parameter, so
	// that a set-based statement neither grows with the list nor has to
	// be cut into chunks (SQLite: json_each over a JSON array;
	// PostgreSQL: unnest of a bigint[]).
	intSet() string
	intSetArg(v []uint32) any
	// messageCols selects a store.MessageInfo (scanMessage).
	messageCols() string
}

// tsText is how SQLite stores timestamps: fixed width, so text order is
// time order, and UTC.
const tsText = "2006-01-02 15:04:05.000000"

// dateText is how dates are passed in both dialects.
const dateText = "2006-01-02"

type sqliteDialect struct{}

func (sqliteDialect) name() string           { return FlavorSQLite }
func (sqliteDialect) rebind(q string) string { return q }
func (sqliteDialect) forUpdate() string      { return "" }

// messageCols reads internal_date as plain text: for a column declared
// TIMESTAMP the driver first tries Go's time.String layout on every row
// and allocates a parse error each time (about 190 bytes a row, 19 MB
// for a 100,000-message listing); timeScanner parses tsText directly.
func (sqliteDialect) messageCols() string {
	return `mailbox_id, uid, modseq, flags, CAST(internal_date AS TEXT), size, body_id`
}
func (sqliteDialect) ts(t time.Time) any { return roundTS(t).Format(tsText) }
func (sqliteDialect) intSet() string     { return `(SELECT value AS v FROM json_each(?))` }

func (sqliteDialect) intSetArg(v []uint32) any {
	b := make([]byte, 0, 2+7*len(v))
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(x), 10)
	}
	return string(append(b, ']'))
}

type postgresDialect struct {
	cache *sync.Map // query text -> rebound text
}

func newPostgresDialect() postgresDialect { return postgresDialect{cache: new(sync.Map)} }

func (postgresDialect) name() string      { return FlavorPostgreSQL }
func (postgresDialect) forUpdate() string { return " FOR UPDATE" }
func (postgresDialect) messageCols() string {
	return `mailbox_id, uid, modseq, flags, internal_date, size, body_id`
}
func (postgresDialect) ts(t time.Time) any { return roundTS(t) }
func (postgresDialect) intSet() string     { return `(SELECT unnest(?::bigint[]) AS v)` }

func (postgresDialect) intSetArg(v []uint32) any {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

// rebind turns `?` placeholders into `$1`, `$2`, ... outside quotes.
func (d postgresDialect) rebind(q string) string {
	if v, ok := d.cache.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	d.cache.Store(q, out)
	return out
}

// roundTS normalises a timestamp to what both databases keep.
func roundTS(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// now is the current time as stored.
func now() time.Time { return roundTS(time.Now()) }

// dateArg converts a date to a query argument ("YYYY-MM-DD").
func dateArg(t time.Time) string { return t.UTC().Format(dateText) }

// timeScanner reads a timestamp or date column whatever form the driver
// delivers it in (time.Time, text, NULL).
type timeScanner struct{ t *time.Time }

var timeLayouts = []string{
	tsText,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	time.RFC3339Nano,
	dateText,
}

func (s timeScanner) Scan(v any) error {
	var str string
	switch x := v.(type) {
	case nil:
		*s.t = time.Time{}
		return nil
	case time.Time:
		*s.t = x.UTC()
		return nil
	case string:
		str = x
	case []byte:
		str = string(x)
	default:
		return fmt.Errorf("sqlstore: cannot scan %T into a time", v)
	}
	str = strings.TrimSuffix(str, "Z")
	if t, ok := parseTSText(str); ok {
		*s.t = t
		return nil
	}
	if t, ok := parseDateText(str); ok {
		*s.t = t
		return nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, str); err == nil {
			*s.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("sqlstore: unparsable time %q", str)
}

// parseTSText reads the form SQLite columns are written in (tsText,
// UTC) without time.Parse's layout interpretation: every message row
// listed carries two of them. Anything else is left to the layouts.
func parseTSText(s string) (time.Time, bool) {
	if len(s) != len(tsText) || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[19] != '.' {
		return time.Time{}, false
	}
	d, ok := parseDateText(s[:len(dateText)])
	hour, ok1 := digits(s, 11, 13)
	minute, ok2 := digits(s, 14, 16)
	sec, ok3 := digits(s, 17, 19)
	micro, ok4 := digits(s, 20, 26)
	if !(ok && ok1 && ok2 && ok3 && ok4) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return d.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute +
		time.Duration(sec)*time.Second + time.Duration(micro)*time.Microsecond), true
}

// parseDateText reads a date as dateText writes it (the users' reply
// window), midnight UTC.
func parseDateText(s string) (time.Time, bool) {
	if len(s) != len(dateText) || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	year, ok1 := digits(s, 0, 4)
	month, ok2 := digits(s, 5, 7)
	day, ok3 := digits(s, 8, 10)
	if !(ok1 && ok2 && ok3) || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), true
}

// digits is the decimal number s[from:to], false unless all digits.
func digits(s string, from, to int) (int, bool) {
	n := 0
	for i := from; i < to; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn is the number of days in month m of year y.
func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// scanTime adapts a *time.Time for rows.Scan.
func scanTime(t *time.Time) timeScanner { return timeScanner{t} }

// nullTS is a timestamp argument that is NULL when t is zero.
func nullTS(d dialect, t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return d.ts(t)
}

// mapErr turns driver errors into the store's sentinels, keeping the
// driver's text: no rows and foreign-key violations (a parent that does
// not exist) are store.ErrNotFound, unique violations store.ErrExists.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", store.ErrExists, err)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}

// commitUnknown reports whether a failed COMMIT may still have committed.
// An error the server sent (a PgError: a deferred constraint, a
// serialization failure) or SQLite's own error means it rolled back;
// anything else (a broken connection, a timeout, a cancelled context
// while COMMIT was in flight) leaves the outcome unknown.
func commitUnknown(err error) bool {
	var pe *pgconn.PgError
	var se *sqlite.Error
	return !errors.As(err, &pe) && !errors.As(err, &se) && !errors.Is(err, sql.ErrTxDone)
}

// retryable reports a PostgreSQL deadlock or serialization failure: the
// transaction was rolled back and may simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// joinList and splitList store Mailu's CommaSeparatedList columns
// (Mailu: models.py CommaSeparatedList).
func joinList(l []string) string { return strings.Join(l, ",") }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
