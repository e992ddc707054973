package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/petrelmail/petrel/internal/store/bucket"
)

// Copying a whole store from SQLite to PostgreSQL (petrel migrate-store).
// The copy knows no table by name except body (whose blob files may move
// into the database): it reads the tables and columns of both databases,
// so tables that later migrations add come along by themselves. Both
// sides must have applied the same migrations.

// CopyOptions configures CopyTo.
type CopyOptions struct {
	// Force empties a target that already holds data; without it such a
	// target is refused.
	Force bool
	// Progress, when set, is called after each batch of rows: the table,
	// rows copied so far and the table's total; and once per table with
	// done == total.
	Progress func(table string, done, total int64)
}

// TableCount is one table's rows in the source and, after the copy, in
// the target.
type TableCount struct {
	Table          string
	Source, Target int64
}

// CopyReport is what CopyTo did.
type CopyReport struct {
	Tables []TableCount
	// Inlined counts bodies whose blob file went into the database,
	// Files those copied as files into the target's blob directory.
	Inlined, Files int
}

// copyBatchRows and copyBatchBytes bound one multi-row INSERT.
const (
	copyBatchRows  = 500
	copyBatchBytes = 4 << 20
)

// column is a target column and the conversion of source values to it.
type column struct {
	name, typ string
	identity  bool // an identity or serial column: its sequence follows
}

type copyTable struct {
	name string
	cols []column
	rows int64 // in the source snapshot
}

// CopyTo copies every row of s (SQLite) into dst (PostgreSQL) in one
// target transaction, from one read snapshot of s, with user triggers of
// the target switched off for the copy (the rows, body reference counts
// included, come as they are). Blob files of bodies the target keeps in
// the database (up to its InlineMax) are read into the body rows, others
// are copied into the target's blob directory. Row counts are compared
// per table before the commit.
func (s *Store) CopyTo(ctx context.Context, dst *Store, opt CopyOptions) (*CopyReport, error) {
	if s.d.name() != FlavorSQLite || dst.d.name() != FlavorPostgreSQL {
		return nil, fmt.Errorf("sqlstore: copy: only sqlite to postgresql is supported, not %s to %s", s.d.name(), dst.d.name())
	}
	sv, err := s.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	dv, err := dst.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	if a, b := sortedVersions(sv), sortedVersions(dv); !slices.Equal(a, b) {
		return nil, fmt.Errorf("sqlstore: copy: migration versions differ (source %v, target %v): run the same petrel version on both", a, b)
	}

	src, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: copy: %w", err)
	}
	defer src.Rollback()
	tx, err := dst.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: copy: %w", err)
	}
	defer tx.Rollback()

	tables, err := copyPlan(ctx, src, tx)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+pgIdent(t.name)+" DISABLE TRIGGER USER"); err != nil {
			return nil, fmt.Errorf("sqlstore: copy: %s: %w", t.name, err)
		}
	}
	if err := clearTarget(ctx, src, tx, tables, opt.Force); err != nil {
		return nil, err
	}
	rep := &CopyReport{}
	for _, t := range tables {
		if err := s.copyTable(ctx, src, tx, dst, t, opt, rep); err != nil {
			return nil, err
		}
	}
	for _, t := range tables {
		for _, c := range t.cols {
			if !c.identity {
				continue
			}
			q := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX(%s), 0) + 1, false) FROM %s`,
				pgIdent(c.name), pgIdent(t.name))
			if _, err := tx.ExecContext(ctx, q, pgIdent(t.name), c.name); err != nil {
				return nil, fmt.Errorf("sqlstore: copy: sequence of %s.%s: %w", t.name, c.name, err)
			}
		}
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+pgIdent(t.name)).Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlstore: copy: count %s: %w", t.name, err)
		}
		rep.Tables = append(rep.Tables, TableCount{Table: t.name, Source: t.rows, Target: n})
		if n != t.rows {
			return rep, fmt.Errorf("sqlstore: copy: table %s has %d rows in the source but %d in the target; nothing was committed", t.name, t.rows, n)
		}
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+pgIdent(t.name)+" ENABLE TRIGGER USER"); err != nil {
			return nil, fmt.Errorf("sqlstore: copy: %s: %w", t.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return rep, fmt.Errorf("sqlstore: copy: commit: %w", err)
	}
	return rep, nil
}

func sortedVersions(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func pgIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

func sqliteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// copyPlan lists the source's tables with the target's columns, parents
// before children (the target's foreign keys), with their row counts.
func copyPlan(ctx context.Context, src, tx *sql.Tx) ([]copyTable, error) {
	names, err := sqliteTables(ctx, src)
	if err != nil {
		return nil, err
	}
	var tables []copyTable
	for _, name := range names {
		scols, err := sqliteColumns(ctx, src, name)
		if err != nil {
			return nil, err
		}
		tcols, err := pgColumns(ctx, tx, name)
		if err != nil {
			return nil, err
		}
		if len(tcols) == 0 {
			return nil, fmt.Errorf("sqlstore: copy: table %s is not in the target", name)
		}
		var cols []column
		for _, c := range scols {
			tc, ok := tcols[c]
			if !ok {
				return nil, fmt.Errorf("sqlstore: copy: column %s.%s is not in the target", name, c)
			}
			if tc.typ != "" { // "" marks a generated column
				cols = append(cols, tc)
			}
		}
		t := copyTable{name: name, cols: cols}
		if err := src.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+sqliteIdent(name)).Scan(&t.rows); err != nil {
			return nil, fmt.Errorf("sqlstore: copy: count %s: %w", name, err)
		}
		tables = append(tables, t)
	}
	return orderByForeignKeys(ctx, tx, tables)
}

// sqliteTables are the source's tables, without SQLite's own, virtual
// tables and their shadow tables, and schema_migrations (both sides
// have it already).
func sqliteTables(ctx context.Context, src *sql.Tx) ([]string, error) {
	rows, err := src.QueryContext(ctx, `SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: copy: list tables: %w", err)
	}
	defer rows.Close()
	var names, virtual []string
	for rows.Next() {
		var name, ddl string
		if err := rows.Scan(&name, &ddl); err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(name, "sqlite_"), name == "schema_migrations":
		case strings.HasPrefix(strings.ToUpper(ddl), "CREATE VIRTUAL"):
			virtual = append(virtual, name)
		default:
			names = append(names, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(names, func(n string) bool {
		for _, v := range virtual {
			if strings.HasPrefix(n, v+"_") {
				return true
			}
		}
		return false
	}), nil
}

func sqliteColumns(ctx context.Context, src *sql.Tx, table string) ([]string, error) {
	rows, err := src.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: copy: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// pgColumns maps the target table's columns to their types; a generated
// column has type "".
func pgColumns(ctx context.Context, tx *sql.Tx, table string) (map[string]column, error) {
	rows, err := tx.QueryContext(ctx, `SELECT column_name, data_type, is_generated, is_identity, COALESCE(column_default, '')
FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`, table)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: copy: columns of %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]column{}
	for rows.Next() {
		var name, typ, gen, ident, def string
		if err := rows.Scan(&name, &typ, &gen, &ident, &def); err != nil {
			return nil, err
		}
		c := column{name: name, typ: typ, identity: ident == "YES" || strings.HasPrefix(def, "nextval(")}
		if gen == "ALWAYS" {
			c.typ = ""
		}
		out[name] = c
	}
	return out, rows.Err()
}

// orderByForeignKeys sorts tables so that every referenced table comes
// before the tables referencing it (ties by name).
func orderByForeignKeys(ctx context.Context, tx *sql.Tx, tables []copyTable) ([]copyTable, error) {
	rows, err := tx.QueryContext(ctx, `SELECT cl.relname, cf.relname FROM pg_constraint c
JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_class cf ON cf.oid = c.confrelid
JOIN pg_namespace n ON n.oid = c.connamespace
WHERE c.contype = 'f' AND n.nspname = current_schema()`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: copy: foreign keys: %w", err)
	}
	defer rows.Close()
	parents := map[string][]string{}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			return nil, err
		}
		if child != parent {
			parents[child] = append(parents[child], parent)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	byName := map[string]copyTable{}
	for _, t := range tables {
		byName[t.name] = t
	}
	var out []copyTable
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("sqlstore: copy: foreign keys form a cycle through %s", name)
		case 2:
			return nil
		}
		state[name] = 1
		ps := slices.Clone(parents[name])
		slices.Sort(ps)
		for _, p := range ps {
			if err := visit(p); err != nil {
				return err
			}
		}
		state[name] = 2
		if t, ok := byName[name]; ok {
			out = append(out, t)
		}
		return nil
	}
	for _, t := range tables {
		if err := visit(t.name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// clearTarget refuses a target holding data (unless force) and empties
// the tables to be copied. Rows a fresh target's own migrations insert
// (store_lock's names) are also in the source and do not make the target
// count as holding data.
func clearTarget(ctx context.Context, src, tx *sql.Tx, tables []copyTable, force bool) error {
	var busy []string
	for _, t := range tables {
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+pgIdent(t.name)).Scan(&n); err != nil {
			return fmt.Errorf("sqlstore: copy: count %s: %w", t.name, err)
		}
		if n == 0 || force {
			continue
		}
		seed, err := onlySeedRows(ctx, src, tx, t, n)
		if err != nil {
			return err
		}
		if !seed {
			busy = append(busy, fmt.Sprintf("%s (%d rows)", t.name, n))
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("sqlstore: copy: the target holds data: %s; use --force to replace it", strings.Join(busy, ", "))
	}
	for i := len(tables) - 1; i >= 0; i-- {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+pgIdent(tables[i].name)); err != nil {
			return fmt.Errorf("sqlstore: copy: empty %s: %w", tables[i].name, err)
		}
	}
	return nil
}

// maxSeedRows bounds the tables onlySeedRows compares row by row.
const maxSeedRows = 100

// onlySeedRows reports whether all n target rows of t are also source
// rows (compared as text after conversion), as the rows migrations
// insert are.
func onlySeedRows(ctx context.Context, src, tx *sql.Tx, t copyTable, n int64) (bool, error) {
	if n > maxSeedRows || t.rows > maxSeedRows {
		return false, nil
	}
	have := map[string]bool{}
	err := scanRows(ctx, src, "SELECT "+colList(t.cols, sqliteIdent)+" FROM "+sqliteIdent(t.name), t.cols, func(v []any) error {
		have[rowKey(v)] = true
		return nil
	})
	if err != nil {
		return false, err
	}
	seed := true
	err = scanRows(ctx, tx, "SELECT "+colList(t.cols, pgIdent)+" FROM "+pgIdent(t.name), t.cols, func(v []any) error {
		seed = seed && have[rowKey(v)]
		return nil
	})
	return seed, err
}

func rowKey(v []any) string {
	var b strings.Builder
	for _, x := range v {
		switch y := x.(type) {
		case time.Time:
			fmt.Fprintf(&b, "%d\x00", y.UnixMicro())
		default:
			fmt.Fprintf(&b, "%v\x00", y)
		}
	}
	return b.String()
}

func colList(cols []column, quote func(string) string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(c.name)
	}
	return strings.Join(q, ", ")
}

// scanRows runs query and calls fn with each row converted to the
// target's column types.
func scanRows(ctx context.Context, q *sql.Tx, query string, cols []column, fn func([]any) error) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("sqlstore: copy: %w", err)
	}
	defer rows.Close()
	raw := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("sqlstore: copy: %w", err)
		}
		v := make([]any, len(cols))
		for i, c := range cols {
			if v[i], err = convert(raw[i], c.typ); err != nil {
				return fmt.Errorf("sqlstore: copy: column %s: %w", c.name, err)
			}
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

// convert turns a SQLite value into one for a PostgreSQL column of type
// typ (information_schema's data_type).
func convert(v any, typ string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch {
	case typ == "boolean":
		switch x := v.(type) {
		case int64:
			return x != 0, nil
		case bool:
			return x, nil
		case string:
			return strconv.ParseBool(x)
		}
	case typ == "bigint" || typ == "integer" || typ == "smallint":
		switch x := v.(type) {
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		case float64:
			return int64(x), nil
		case string:
			return strconv.ParseInt(x, 10, 64)
		}
	case strings.HasPrefix(typ, "timestamp"):
		var t time.Time
		if err := (timeScanner{&t}).Scan(v); err != nil {
			return nil, err
		}
		return t, nil
	case typ == "bytea":
		if x, ok := v.(string); ok {
			return []byte(x), nil
		}
	case typ == "text" || typ == "character varying" || typ == "json" || typ == "jsonb":
		switch x := v.(type) {
		case []byte:
			return string(x), nil
		case time.Time:
			return x.UTC().Format(tsText), nil
		}
	}
	return v, nil
}

// copyTable copies one table in batches of multi-row INSERTs.
func (s *Store) copyTable(ctx context.Context, src, tx *sql.Tx, dst *Store, t copyTable, opt CopyOptions, rep *CopyReport) error {
	hook, afterFlush, err := s.rowHook(ctx, t, tx, dst, rep)
	if err != nil {
		return err
	}
	var batch [][]any
	var size int
	var done int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var b strings.Builder
		args := make([]any, 0, len(batch)*len(t.cols))
		b.WriteString("INSERT INTO " + pgIdent(t.name) + " (" + colList(t.cols, pgIdent) + ") VALUES ")
		for i, row := range batch {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j, v := range row {
				if j > 0 {
					b.WriteString(", ")
				}
				args = append(args, v)
				b.WriteString("$" + strconv.Itoa(len(args)))
			}
			b.WriteByte(')')
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("sqlstore: copy: insert into %s: %w", t.name, err)
		}
		if afterFlush != nil {
			if err := afterFlush(); err != nil {
				return err
			}
		}
		done += int64(len(batch))
		batch, size = batch[:0], 0
		if opt.Progress != nil && done < t.rows {
			opt.Progress(t.name, done, t.rows)
		}
		return nil
	}
	err = scanRows(ctx, src, "SELECT "+colList(t.cols, sqliteIdent)+" FROM "+sqliteIdent(t.name), t.cols, func(v []any) error {
		if hook != nil {
			if err := hook(v); err != nil {
				return err
			}
		}
		batch = append(batch, v)
		for _, x := range v {
			switch y := x.(type) {
			case []byte:
				size += len(y)
			case string:
				size += len(y)
			default:
				size += 8
			}
		}
		if len(batch) >= copyBatchRows || size >= copyBatchBytes || (len(batch)+1)*len(t.cols) > 65535 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	if opt.Progress != nil {
		opt.Progress(t.name, t.rows, t.rows)
	}
	return nil
}

// rowHook returns the body table's hook: a body kept in a blob file goes
// into its row when the target keeps bodies of its size in the database,
// into body_chunk rows when the target chunks bodies of its size (a
// PostgreSQL target: afterFlush writes them once their body rows are in),
// else into the target's blob directory (under a new name).
func (s *Store) rowHook(ctx context.Context, t copyTable, tx *sql.Tx, dst *Store, rep *CopyReport) (hook func([]any) error, afterFlush func() error, err error) {
	if t.name != "body" {
		return nil, nil, nil
	}
	idx := map[string]int{}
	for i, c := range t.cols {
		idx[c.name] = i
	}
	iID, ok0 := idx["id"]
	iSize, ok1 := idx["size"]
	iData, ok2 := idx["data"]
	iBlob, ok3 := idx["blob_name"]
	if !ok0 || !ok1 || !ok2 || !ok3 {
		return nil, nil, errors.New("sqlstore: copy: body table lacks id, size, data or blob_name")
	}
	type chunked struct {
		id   int64
		name string
	}
	var pending []chunked
	afterFlush = func() error {
		for _, p := range pending {
			if err := s.copyChunks(ctx, tx, p.id, p.name); err != nil {
				return err
			}
			rep.Inlined++
		}
		pending = pending[:0]
		return nil
	}
	hook = func(v []any) error {
		name, _ := v[iBlob].(string)
		if name == "" {
			return nil
		}
		size, _ := v[iSize].(int64)
		if bucket.IsName(name) {
			// An object in the S3 bucket: the target names the same
			// object, so it needs the same BLOB_S3_* settings.
			if dst.objs == nil {
				return fmt.Errorf("sqlstore: copy: body %s is in the S3 bucket: set BLOB_S3_* for the target too", name)
			}
			rep.Files++
			return nil
		}
		if dst.chunked(size) {
			id, _ := v[iID].(int64)
			pending = append(pending, chunked{id: id, name: name})
			v[iData], v[iBlob] = nil, nil
			return nil
		}
		if size > dst.inline && dst.objs != nil {
			// A blob file goes to the target's bucket.
			n, err := s.copyFileToBucket(ctx, dst, name)
			if err != nil {
				return err
			}
			v[iBlob] = n
			rep.Files++
			return nil
		}
		if size > dst.inline && dst.blobs.Path() == s.blobs.Path() {
			rep.Files++ // the target uses the same directory: the file stays
			return nil
		}
		f, err := s.blobs.Open(name)
		if err != nil {
			return fmt.Errorf("sqlstore: copy: body file %s: %w", name, err)
		}
		defer f.Close()
		if size <= dst.inline {
			data, err := io.ReadAll(f)
			if err != nil {
				return fmt.Errorf("sqlstore: copy: body file %s: %w", name, err)
			}
			v[iData], v[iBlob] = data, nil
			rep.Inlined++
			return nil
		}
		w, err := dst.blobs.Create()
		if err != nil {
			return fmt.Errorf("sqlstore: copy: %w", err)
		}
		defer w.Abort()
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("sqlstore: copy: body file %s: %w", name, err)
		}
		n, err := w.Commit()
		if err != nil {
			return fmt.Errorf("sqlstore: copy: body file %s: %w", name, err)
		}
		v[iBlob] = n
		rep.Files++
		return nil
	}
	return hook, afterFlush, nil
}

// copyChunks writes a source blob file into the target's body_chunk rows
// for body id, chunkSize at a time.
func (s *Store) copyChunks(ctx context.Context, tx *sql.Tx, id int64, name string) error {
	f, err := s.blobs.Open(name)
	if err != nil {
		return fmt.Errorf("sqlstore: copy: body file %s: %w", name, err)
	}
	defer f.Close()
	buf := make([]byte, chunkSize)
	var off int64
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO body_chunk (body_id, off, data) VALUES ($1, $2, $3)`, id, off, buf[:n]); err != nil {
				return fmt.Errorf("sqlstore: copy: body %d chunk: %w", id, err)
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sqlstore: copy: body file %s: %w", name, err)
		}
	}
}
