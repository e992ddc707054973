package admin

import (
	"strconv"

	"github.com/petrelmail/petrel/internal/store"
)

// setTokens applies a user's tokens list. Tokens are matched to existing
// ones by id, else (update mode) by equal content, so their ids stay.
func (im *importer) setTokens(us *userState, oldTokens []store.Token, v any, merge bool, path string) {
	var items []any
	if v != nil {
		l, ok := v.([]any)
		if !ok {
			im.fail(path, "Not a valid list.")
			return
		}
		items = l
	}
	var result []store.Token
	if merge {
		result = us.tokens
	}
	find := func(ts []store.Token, id int64) int {
		for i := range ts {
			if id != 0 && ts[i].ID == id {
				return i
			}
		}
		return -1
	}
	mentioned := map[int64]bool{}
	prune := false
	for i, it := range items {
		tp := path + "." + strconv.Itoa(i)
		obj, ok := it.(map[string]any)
		if !ok {
			im.fail(tp, "Invalid input type.")
			continue
		}
		if merge {
			if dv, ok := obj["-id"]; ok {
				if dv == nil {
					prune = true
					continue
				}
				id, err := asInt(dv)
				j := find(result, id)
				if err != nil || j < 0 {
					im.fail(tp+".-id", "Item to delete not found: %v.", dv)
					continue
				}
				result = append(result[:j], result[j+1:]...)
				continue
			}
		}
		var id int64
		if iv, ok := obj["id"]; ok && iv != nil {
			n, err := asInt(iv)
			if err != nil {
				im.fail(tp+".id", "Not a valid integer.")
				continue
			}
			id = n
		}
		t := store.Token{UserEmail: us.u.Email}
		idx := -1
		if merge {
			idx = find(result, id)
		}
		prev := ""
		switch {
		case idx >= 0:
			t = result[idx]
			prev = t.Password
		case find(oldTokens, id) >= 0:
			o := oldTokens[find(oldTokens, id)]
			t.ID, t.CreatedAt, prev = o.ID, o.CreatedAt, o.Password
		}
		if !im.tokenFields(&t, obj, prev, tp) {
			continue
		}
		if idx < 0 && merge && id == 0 {
			// Mailu: an item without id matches an equal existing one.
			for j := range result {
				if sameToken(&result[j], &t) {
					idx = j
					t = result[j]
					break
				}
			}
		}
		if t.ID != 0 {
			if mentioned[t.ID] {
				im.fail(tp+".id", "duplicate token id %d", t.ID)
				continue
			}
			mentioned[t.ID] = true
		}
		if idx >= 0 {
			result[idx] = t
		} else {
			result = append(result, t)
		}
	}
	if prune {
		kept := result[:0]
		for _, t := range result {
			if t.ID == 0 || mentioned[t.ID] {
				kept = append(kept, t)
			}
		}
		result = kept
	}
	us.tokens = result
}

func sameToken(a, b *store.Token) bool {
	if a.Comment != b.Comment || a.Password != b.Password || len(a.IP) != len(b.IP) {
		return false
	}
	for i := range a.IP {
		if a.IP[i] != b.IP[i] {
			return false
		}
	}
	return true
}

// tokenFields applies one token object's attributes to t.
func (im *importer) tokenFields(t *store.Token, obj map[string]any, prev, path string) bool {
	ok := true
	hashIt := false
	if hv, has := obj["hash_password"]; has {
		var err error
		if hashIt, err = asBool(hv); err != nil {
			im.fail(path+".hash_password", "Not a valid boolean.")
			ok = false
		}
	}
	if pv, has := obj["password"]; has {
		if h, good := im.importHash(pv, hashIt, prev, path+".password", true); good {
			t.Password = h
		} else {
			ok = false
		}
	} else if prev == "" {
		im.fail(path+".password", "Missing data for required field.")
		ok = false
	}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch k {
		case "id", "password", "hash_password", "created_at", "updated_at":
		case "comment":
			s, err := asString(v)
			if err != nil || len(s) > maxComment {
				im.fail(path+".comment", "Not a valid string of at most %d characters.", maxComment)
				ok = false
			}
			t.Comment = s
		case "ip":
			l, err := asList(v)
			if err == nil {
				l, err = normIPs(l)
			}
			if err != nil {
				im.failErr(path+".ip", err)
				ok = false
			}
			t.IP = l
		default:
			im.fail(path+"."+k, "Unknown field.")
			ok = false
		}
	}
	return ok
}
