package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// apply turns the store from old into want: deletions first (so that a
// name may change its kind), then creations and updates in the order the
// foreign keys need.
func (im *importer) apply(ctx context.Context, tx store.Accounts, old, want *state) error {
	for _, e := range sortedMapKeys(old.aliases) {
		if want.aliases[e] == nil {
			if err := tx.DeleteAlias(ctx, e); err != nil {
				return fmt.Errorf("delete alias %s: %w", e, err)
			}
			im.change("Deleted", "alias", displayEmail(e), "")
		}
	}
	for _, e := range sortedMapKeys(old.users) {
		if want.users[e] == nil {
			if err := tx.DeleteUser(ctx, e); err != nil {
				return fmt.Errorf("delete user %s: %w", e, err)
			}
			im.change("Deleted", "user", displayEmail(e), "")
			for range old.users[e].tokens {
				im.change("Deleted", "token", displayEmail(e), "")
			}
		}
	}
	for _, a := range sortedMapKeys(old.alts) {
		if want.alts[a] != old.alts[a] {
			if err := tx.DeleteAlternative(ctx, a); err != nil {
				return fmt.Errorf("delete alternative %s: %w", a, err)
			}
			im.change("Deleted", "alternative", displayDomain(a), "")
		}
	}
	for _, d := range sortedMapKeys(old.domains) {
		if want.domains[d] == nil {
			if err := tx.DeleteDomain(ctx, d); err != nil {
				return fmt.Errorf("delete domain %s: %w", d, err)
			}
			im.change("Deleted", "domain", displayDomain(d), "")
		}
	}
	for _, r := range sortedMapKeys(old.relays) {
		if want.relays[r] == nil {
			if err := tx.DeleteRelay(ctx, r); err != nil {
				return fmt.Errorf("delete relay %s: %w", r, err)
			}
			im.change("Deleted", "relay", displayDomain(r), "")
		}
	}

	for _, name := range sortedMapKeys(want.domains) {
		d, o := want.domains[name], old.domains[name]
		if o == nil {
			if err := tx.CreateDomain(ctx, d); err != nil {
				return fmt.Errorf("create domain %s: %w", name, err)
			}
			im.change("Created", "domain", displayDomain(name), "")
		} else if diff := im.diff(domainFields(o, nil, ""), domainFields(d, nil, "")); diff != "" {
			if err := tx.UpdateDomain(ctx, d); err != nil {
				return fmt.Errorf("update domain %s: %w", name, err)
			}
			im.change("Modified", "domain", displayDomain(name), diff)
		}
	}
	for _, name := range sortedMapKeys(want.relays) {
		r, o := want.relays[name], old.relays[name]
		if o == nil {
			if err := tx.CreateRelay(ctx, r); err != nil {
				return fmt.Errorf("create relay %s: %w", name, err)
			}
			im.change("Created", "relay", displayDomain(name), "")
		} else if diff := im.diff(relayFields(o), relayFields(r)); diff != "" {
			if err := tx.UpdateRelay(ctx, r); err != nil {
				return fmt.Errorf("update relay %s: %w", name, err)
			}
			im.change("Modified", "relay", displayDomain(name), diff)
		}
	}
	for _, a := range sortedMapKeys(want.alts) {
		if old.alts[a] != want.alts[a] {
			if err := tx.CreateAlternative(ctx, &store.Alternative{Name: a, DomainName: want.alts[a]}); err != nil {
				return fmt.Errorf("create alternative %s: %w", a, err)
			}
			im.change("Created", "alternative", displayDomain(a), "")
		}
	}
	for _, e := range sortedMapKeys(want.users) {
		if err := im.applyUser(ctx, tx, old.users[e], want.users[e]); err != nil {
			return err
		}
	}
	for _, e := range sortedMapKeys(want.aliases) {
		a, o := want.aliases[e], old.aliases[e]
		if o == nil {
			if err := tx.CreateAlias(ctx, a); err != nil {
				return fmt.Errorf("create alias %s: %w", e, err)
			}
			im.change("Created", "alias", displayEmail(e), "")
		} else if diff := im.diff(aliasFields(o), aliasFields(a)); diff != "" {
			if err := tx.UpdateAlias(ctx, a); err != nil {
				return fmt.Errorf("update alias %s: %w", e, err)
			}
			im.change("Modified", "alias", displayEmail(e), diff)
		}
	}
	return nil
}

func (im *importer) applyUser(ctx context.Context, tx store.Accounts, o, w *userState) error {
	e := w.u.Email
	oldManagers := map[string]bool{}
	var oldTokens []store.Token
	if o == nil {
		if err := tx.CreateUser(ctx, &w.u); err != nil {
			return fmt.Errorf("create user %s: %w", e, err)
		}
		im.change("Created", "user", displayEmail(e), "")
		im.newUsers = append(im.newUsers, w.u)
	} else {
		oldManagers, oldTokens = o.managers, o.tokens
		if diff := im.diff(userFields(&o.u), userFields(&w.u)); diff != "" {
			if err := tx.UpdateUser(ctx, &w.u); err != nil {
				return fmt.Errorf("update user %s: %w", e, err)
			}
			if w.u.Password != o.u.Password {
				if err := tx.SetPasswordHash(ctx, e, w.u.Password); err != nil {
					return fmt.Errorf("set password of %s: %w", e, err)
				}
			}
			im.change("Modified", "user", displayEmail(e), diff)
		}
	}
	for _, d := range keysOf(w.managers) {
		if !oldManagers[d] {
			if err := tx.AddManager(ctx, d, e); err != nil {
				return fmt.Errorf("make %s manager of %s: %w", e, d, err)
			}
			im.change("Created", "manager", displayDomain(d)+" "+displayEmail(e), "")
		}
	}
	for _, d := range keysOf(oldManagers) {
		if !w.managers[d] {
			if err := tx.RemoveManager(ctx, d, e); err != nil {
				return fmt.Errorf("remove %s as manager of %s: %w", e, d, err)
			}
			im.change("Deleted", "manager", displayDomain(d)+" "+displayEmail(e), "")
		}
	}
	keep := map[int64]bool{}
	for i := range w.tokens {
		if w.tokens[i].ID != 0 {
			keep[w.tokens[i].ID] = true
		}
	}
	for _, t := range oldTokens {
		if !keep[t.ID] {
			if err := tx.DeleteToken(ctx, t.ID); err != nil {
				return fmt.Errorf("delete token %d: %w", t.ID, err)
			}
			im.change("Deleted", "token", fmt.Sprintf("%s #%d", displayEmail(e), t.ID), "")
		}
	}
	for i := range w.tokens {
		t := &w.tokens[i]
		t.UserEmail = e
		var prev *store.Token
		for j := range oldTokens {
			if t.ID != 0 && oldTokens[j].ID == t.ID {
				prev = &oldTokens[j]
			}
		}
		if prev == nil {
			t.ID = 0
			if err := tx.CreateToken(ctx, t); err != nil {
				return fmt.Errorf("create token of %s: %w", e, err)
			}
			im.change("Created", "token", fmt.Sprintf("%s #%d", displayEmail(e), t.ID), "")
		} else if diff := im.diff(tokenFields(prev), tokenFields(t)); diff != "" {
			if err := tx.UpdateToken(ctx, t); err != nil {
				return fmt.Errorf("update token %d: %w", t.ID, err)
			}
			im.change("Modified", "token", fmt.Sprintf("%s #%d", displayEmail(e), t.ID), diff)
		}
	}
	return nil
}

// diff lists the attributes that differ between two versions of an object,
// secrets hidden unless asked for.
func (im *importer) diff(before, after []efield) string {
	bv := map[string]any{}
	for _, f := range before {
		bv[f.key] = f.val
	}
	var parts []string
	for _, f := range after {
		if f.key == "created_at" || f.key == "updated_at" {
			continue
		}
		b, _ := json.Marshal(bv[f.key])
		a, _ := json.Marshal(f.val)
		if string(a) == string(b) {
			continue
		}
		bs, as := string(b), string(a)
		if f.secret && !im.opt.Secrets {
			bs, as = hideIf(bv[f.key]), hideIf(f.val)
		}
		parts = append(parts, fmt.Sprintf("%s: %s -> %s", f.key, bs, as))
	}
	return strings.Join(parts, ", ")
}

func hideIf(v any) string {
	if s, ok := v.(string); ok && s == "" || v == nil {
		return `""`
	}
	return hidden
}

// dkimOp is what an import does to a domain's DKIM key file.
type dkimOp struct {
	generate bool   // "-generate-": a new key
	key      string // PEM to store; "" with !generate = remove the key
}

// setDKIM records a domain's new DKIM key from an imported dkim_key
// (schemas.py DkimKeyField): a PEM key (or its bare base64 body),
// "-generate-" for a new one, "" to remove it, or <hidden> to leave it.
func (im *importer) setDKIM(domain string, v any, path string) {
	s, err := asString(v)
	if err != nil {
		im.fail(path, "Not a valid string.")
		return
	}
	s = strings.TrimSpace(s)
	if s == hidden {
		return
	}
	if im.s.keys == nil {
		im.warn("%s: dkim_key ignored (DKIM_PATH is not set)", path)
		return
	}
	switch strings.ToLower(s) {
	case "":
		im.dkim[domain] = dkimOp{}
		return
	case "-generate-":
		im.dkim[domain] = dkimOp{generate: true}
		return
	}
	key, err := parseDKIMKey(s)
	if err != nil {
		short := s
		if len(short) > 40 {
			short = short[:25] + "..." + short[len(short)-10:]
		}
		im.fail(path, "invalid dkim key %q", short)
		return
	}
	im.dkim[domain] = dkimOp{key: key}
}

// parseDKIMKey accepts an RSA private key in PEM, or its base64 body
// without the armour as Mailu does, and returns it as PEM; a bare body is
// taken as PKCS#8, Mailu's default header.
func parseDKIMKey(s string) (string, error) {
	if !strings.HasPrefix(s, "-----BEGIN ") {
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return "", err
		}
		s = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	} else if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	if _, err := msgauth.ParsePrivateKey([]byte(s)); err != nil {
		return "", err
	}
	return s, nil
}

// dkimChanges lists the DKIM operations that change something, by domain.
func (im *importer) dkimChanges(ctx context.Context, want *state) map[string]dkimOp {
	out := map[string]dkimOp{}
	if want == nil {
		return out
	}
	for d, op := range im.dkim {
		if want.domains[d] == nil {
			continue
		}
		if !op.generate {
			cur, err := im.s.readDKIM(ctx, d)
			if err == nil && strings.TrimSpace(cur) == strings.TrimSpace(op.key) {
				continue
			}
		}
		out[d] = op
	}
	return out
}

// noteDKIM records the DKIM changes a dry run would make.
func (im *importer) noteDKIM(ctx context.Context, want *state) {
	for _, d := range sortedMapKeys(im.dkimChanges(ctx, want)) {
		im.change("Modified", "domain", displayDomain(d), "dkim_key: "+hidden)
	}
}

// writeDKIM stores, generates or removes keys once the transaction has
// committed, as Mailu saves keys after commit; every node's signer sees
// a replaced key at its next message.
func (im *importer) writeDKIM(ctx context.Context, want *state) error {
	for _, d := range sortedMapKeys(im.dkimChanges(ctx, want)) {
		op := im.dkim[d]
		var err error
		switch {
		case op.generate:
			err = im.s.keys.Generate(ctx, d)
		case op.key == "":
			err = im.s.keys.Remove(ctx, d)
		default:
			err = im.s.keys.Store(ctx, d, []byte(op.key))
		}
		if err != nil {
			return fmt.Errorf("admin: dkim key of %s: %w", d, err)
		}
		im.change("Modified", "domain", displayDomain(d), "dkim_key: "+hidden)
	}
	return nil
}
