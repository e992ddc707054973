package sqlstore

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// TestRoutingLookupsPrepared: the RCPT look-ups run on prepared
// statements, see changes made through another Store on the same database
// at once (nothing but the plan is cached), and their statements are
// closed by Close.
func TestRoutingLookupsPrepared(t *testing.T) {
	fl := map[string]func(testing.TB) Options{"sqlite": sqliteOptions}
	if os.Getenv("PETREL_TEST_PG_DSN") != "" {
		fl["postgresql"] = pgOptions
	}
	for name, mk := range fl {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			opt := mk(t)
			s, err := Open(ctx, opt)
			if err != nil {
				t.Fatal(err)
			}
			// A second Store on the same database: another node, or the CLI.
			other, err := Open(ctx, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if len(s.readHot) != len(readHotQueries(s.d)) {
				t.Fatalf("%d read statements prepared, want %d", len(s.readHot), len(readHotQueries(s.d)))
			}
			if c := s.readConn(); c.stmt(ctx, sqlGetUser(s.d)) == nil {
				t.Fatal("GetUser's query is not prepared on the read pool")
			}
			if _, err := s.GetDomain(ctx, "example.test"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetDomain before create: %v, want ErrNotFound", err)
			}
			must(t, other.CreateDomain(ctx, &store.Domain{Name: "example.test"}))
			must(t, other.CreateUser(ctx, &store.User{Email: "a@example.test", Password: "x"}))
			must(t, other.CreateAlias(ctx, &store.Alias{Email: "b@example.test", Destination: []string{"a@example.test"}}))
			must(t, other.CreateAlias(ctx, &store.Alias{Email: "c%@example.test", Wildcard: true, Destination: []string{"a@example.test"}}))
			must(t, other.CreateRelay(ctx, &store.Relay{Name: "relay.test"}))
			must(t, other.CreateAlternative(ctx, &store.Alternative{Name: "alt.test", DomainName: "example.test"}))

			for i := 0; i < 3; i++ { // again and again on the same statements
				if _, err := s.GetDomain(ctx, "example.test"); err != nil {
					t.Fatalf("GetDomain: %v", err)
				}
				if u, err := s.GetUser(ctx, "a@example.test"); err != nil || u.Email != "a@example.test" {
					t.Fatalf("GetUser: %v %v", u, err)
				}
				if a, err := s.GetAlias(ctx, "b@example.test"); err != nil || strings.Join(a.Destination, ",") != "a@example.test" {
					t.Fatalf("GetAlias: %v %v", a, err)
				}
				if w, err := s.ListWildcardAliases(ctx, "example.test"); err != nil || len(w) != 1 || w[0].Email != "c%@example.test" {
					t.Fatalf("ListWildcardAliases: %v %v", w, err)
				}
				if _, err := s.GetRelay(ctx, "relay.test"); err != nil {
					t.Fatalf("GetRelay: %v", err)
				}
				if x, err := s.GetAlternative(ctx, "alt.test"); err != nil || x.DomainName != "example.test" {
					t.Fatalf("GetAlternative: %v %v", x, err)
				}
			}
			// An admin change elsewhere is seen by the next look-up.
			must(t, other.DeleteAlias(ctx, "b@example.test"))
			if _, err := s.GetAlias(ctx, "b@example.test"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetAlias after delete elsewhere: %v, want ErrNotFound", err)
			}
			u, err := other.GetUser(ctx, "a@example.test")
			must(t, err)
			u.ForwardEnabled, u.ForwardDestination = true, []string{"x@remote.test"}
			must(t, other.UpdateUser(ctx, u))
			if u, err := s.GetUser(ctx, "a@example.test"); err != nil || !u.ForwardEnabled {
				t.Fatalf("GetUser after update elsewhere: %+v %v", u, err)
			}

			stmts := s.readHot
			must(t, s.Close())
			for q, st := range stmts {
				var x string
				if err := st.QueryRowContext(context.Background(), "x").Scan(&x); err == nil || !strings.Contains(err.Error(), "closed") {
					t.Errorf("statement %.40q after Close: %v, want closed", q, err)
				}
			}
		})
	}
}
