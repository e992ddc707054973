package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The account look-ups every RCPT makes (inbound.Router: domain,
// alternative, relay, user, alias, wildcard aliases). They are prepared
// once on the read pool, so SQLite does not parse the same SQL on every
// recipient; database/sql prepares each on a pooled connection the first
// time that connection runs it and keeps it there. Only the query plan is
// cached, never data, so a change made by an admin (on this node or on
// another node sharing PostgreSQL) is seen by the next look-up.
const (
	sqlGetDomain       = `SELECT ` + domainCols + ` FROM domain WHERE name = ?`
	sqlGetAlternative  = `SELECT ` + alternativeCols + ` FROM alternative WHERE name = ?`
	sqlGetRelay        = `SELECT ` + relayCols + ` FROM relay WHERE name = ?`
	sqlGetAlias        = `SELECT ` + aliasCols + ` FROM alias WHERE email = ?`
	sqlWildcardAliases = `SELECT ` + aliasCols + ` FROM alias WHERE domain_name = ? AND wildcard = ? ORDER BY email`
)

// The user look-up (every RCPT to a mailbox, every login). On SQLite its
// dates and timestamps are read as text (userColsText).
const sqlGetUserPG = `SELECT ` + userCols + ` FROM "user" WHERE email = ?`

var sqlGetUserSQLite = `SELECT ` + userColsText + ` FROM "user" WHERE email = ?`

func sqlGetUser(d dialect) string {
	if d.name() == FlavorPostgreSQL {
		return sqlGetUserPG
	}
	return sqlGetUserSQLite
}

func readHotQueries(d dialect) []string {
	return []string{sqlGetDomain, sqlGetAlternative, sqlGetRelay, sqlGetUser(d), sqlGetAlias, sqlWildcardAliases}
}

// prepareAll prepares queries on db (rebound for the dialect) and returns
// them by their shared query text. On error, those already prepared are
// closed.
func prepareAll(ctx context.Context, db *sql.DB, d dialect, queries []string) (map[string]*sql.Stmt, error) {
	m := make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, d.rebind(q))
		if err != nil {
			closeStmts(m)
			return nil, fmt.Errorf("sqlstore: prepare: %w", err)
		}
		m[q] = st
	}
	return m, nil
}

func closeStmts(m map[string]*sql.Stmt) error {
	var errs []error
	for _, st := range m {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
