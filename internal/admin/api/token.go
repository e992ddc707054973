package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// tokenJSON is a token as Mailu's handlers build it by hand: the id as a
// number, dates as Python's str() of a date ("None" when never edited).
func tokenJSON(t *store.Token) obj {
	return obj{
		{"id", t.ID},
		{"email", t.UserEmail},
		{"comment", nullable(t.Comment)},
		{"AuthorizedIP", nonNil(t.IP)},
		{"Created", pyDate(t.CreatedAt.IsZero(), t.CreatedAt.Format(dateLayout))},
		{"Last edit", pyDate(t.UpdatedAt.IsZero(), t.UpdatedAt.Format(dateLayout))},
	}
}

func pyDate(zero bool, s string) string {
	if zero {
		return "None"
	}
	return s
}

func (a *API) listTokens(c *call) {
	ts, err := a.svc.Tokens(c.ctx(), "")
	if err != nil {
		c.fail(err)
		return
	}
	out := make([]obj, len(ts))
	for i := range ts {
		// Mailu marshals this list with TokenGetResponse: id as a string,
		// missing dates left out.
		o := obj{
			{"id", strconv.FormatInt(ts[i].ID, 10)},
			{"email", ts[i].UserEmail},
			{"comment", nullable(ts[i].Comment)},
			{"AuthorizedIP", nonNil(ts[i].IP)},
			{"Created", ts[i].CreatedAt.Format(dateLayout)},
		}
		if !ts[i].UpdatedAt.IsZero() {
			o = append(o, kv{"Last edit", ts[i].UpdatedAt.Format(dateLayout)})
		}
		out[i] = o.skipNone()
	}
	c.json(http.StatusOK, out)
}

// authorizedIPs checks an AuthorizedIP list: addresses or networks, host
// bits allowed (Mailu: validators.ip_address with strict=False).
func (c *call) authorizedIPs() ([]string, bool) {
	ips, _ := c.body.list("AuthorizedIP")
	for _, ip := range ips {
		s := strings.TrimSpace(ip)
		if _, err := netip.ParsePrefix(s); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(s); err == nil {
			continue
		}
		c.msg(http.StatusBadRequest, fmt.Sprintf("Provided AuthorizedIP %s in %s is invalid", ip, pyList(ips)))
		return nil, false
	}
	return ips, true
}

// newToken creates a token for user and answers with the secret, shown
// this once (Mailu: 32 hex characters, 128 bits).
func (c *call) newToken(raw string) {
	email, ok := c.validEmail(raw, "Provided email address %s is not a valid email address")
	if !ok {
		return
	}
	if _, err := c.api.svc.User(c.ctx(), email); !c.found(err, fmt.Sprintf("User %s cannot be found", raw)) {
		return
	}
	ips, ok := c.authorizedIPs()
	if !ok {
		return
	}
	comment, _ := c.body.str("comment")
	secret, t, err := c.api.svc.CreateToken(c.ctx(), email, comment, ips)
	if err != nil {
		c.fail(err)
		return
	}
	c.json(http.StatusOK, obj{
		{"id", t.ID},
		{"token", secret},
		{"email", t.UserEmail},
		{"comment", nullable(t.Comment)},
		{"AuthorizedIP", nonNil(t.IP)},
		{"Created", pyDate(t.CreatedAt.IsZero(), t.CreatedAt.Format(dateLayout))},
	})
}

func (a *API) createToken(c *call) {
	raw, _ := c.body.str("email")
	c.newToken(raw)
}

func (a *API) createUserToken(c *call) { c.newToken(c.param("email")) }

func (a *API) userTokens(c *call) {
	raw := c.param("email")
	email, ok := c.validEmail(raw, "Provided email address %s is not a valid email address")
	if !ok {
		return
	}
	ts, err := a.svc.Tokens(c.ctx(), email)
	if !c.found(err, fmt.Sprintf("User %s cannot be found", raw)) {
		return
	}
	out := make([]obj, len(ts))
	for i := range ts {
		out[i] = tokenJSON(&ts[i])
	}
	c.json(http.StatusOK, out)
}

// token loads the {token_id} parameter, answering 404 for a missing or
// malformed id (Mailu's single message for both).
func (c *call) token() (*store.Token, bool) {
	raw := c.param("token_id")
	id, err := strconv.ParseInt(raw, 10, 64)
	var t *store.Token
	if err == nil && id > 0 {
		t, err = c.api.svc.Token(c.ctx(), id)
	} else {
		err = store.ErrNotFound
	}
	if !c.found(err, fmt.Sprintf("Record cannot be found for id %s or invalid id provided", raw)) {
		return nil, false
	}
	return t, true
}

func (a *API) getToken(c *call) {
	t, ok := c.token()
	if !ok {
		return
	}
	c.json(http.StatusOK, tokenJSON(t))
}

func (a *API) updateToken(c *call) {
	t, ok := c.token()
	if !ok {
		return
	}
	comment := t.Comment
	if v, ok := c.body.str("comment"); ok {
		comment = v
	}
	ips := t.IP
	if c.body.has("AuthorizedIP") {
		if ips, ok = c.authorizedIPs(); !ok {
			return
		}
	}
	if err := a.svc.UpdateToken(c.ctx(), t.ID, comment, ips); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Token with id %s has been updated", c.param("token_id")))
}

func (a *API) deleteToken(c *call) {
	t, ok := c.token()
	if !ok {
		return
	}
	if err := a.svc.DeleteToken(c.ctx(), t.ID); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Token with id %s has been deleted", c.param("token_id")))
}
