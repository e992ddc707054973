package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/managesieve"
	"github.com/petrelmail/petrel/internal/sieve"
	"github.com/petrelmail/petrel/internal/store"
)

// sieveCommands is `petrel sieve`: a user's Sieve scripts from the shell,
// with the checks and limits ManageSieve (port 4190) applies, so that the
// CLI stores nothing the user's client could not have stored.
func sieveCommands() []*command {
	return []*command{
		{name: "sieve", args: "USER [list | show NAME | put NAME [FILE|-] | activate NAME | deactivate | delete NAME]", min: 1, max: 4, store: true,
			summary: "List, show and set a user's Sieve scripts.",
			help: `Without an action, lists the user's scripts (name, size, which is active).
show prints a script; put stores one from FILE, or standard input when
FILE is "-" or left out, after the syntax check ManageSieve does (the
error names the line); activate makes a script the one that runs at
delivery, deactivate leaves the user with none; delete removes a script
that is not active. Script size and count are limited as on port 4190.`,
			run: runSieve},
	}
}

func runSieve(c *call) error {
	ss, ok := c.st.(store.SieveScripts)
	if !ok {
		return errors.New("this store keeps no Sieve scripts")
	}
	user, err := admin.NormalizeEmail(c.pos[0])
	if err != nil {
		return usagef("USER: %v", err)
	}
	if _, err := c.st.GetUser(c.ctx, user); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no such user: %s", user)
		}
		return err
	}
	action, args := "list", c.pos[1:]
	if len(args) > 0 {
		action, args = args[0], args[1:]
	}
	want := map[string][2]int{"list": {0, 0}, "show": {1, 1}, "put": {1, 2}, "activate": {1, 1}, "deactivate": {0, 0}, "delete": {1, 1}}
	n, known := want[action]
	switch {
	case !known:
		return usagef("unknown action %q (list, show, put, activate, deactivate, delete)", action)
	case len(args) < n[0] || len(args) > n[1]:
		return usagef("wrong number of arguments for %s", action)
	}
	name := ""
	if len(args) > 0 {
		name = args[0]
		if why := managesieve.ValidName(name); why != "" {
			return usagef("NAME: %s", why)
		}
	}
	switch action {
	case "list":
		return sieveList(c, ss, user)
	case "show":
		b, err := ss.GetSieveScript(c.ctx, user, name)
		if err != nil {
			return sieveErr(user, name, err)
		}
		_, err = c.stdout.Write(b)
		return err
	case "put":
		return sievePut(c, ss, user, name, args[1:])
	case "activate":
		if err := ss.SetActiveSieveScript(c.ctx, user, name); err != nil {
			return sieveErr(user, name, err)
		}
		fmt.Fprintf(c.stdout, "activated Sieve script %q of %s\n", name, user)
	case "deactivate":
		if err := ss.SetActiveSieveScript(c.ctx, user, ""); err != nil {
			return sieveErr(user, name, err)
		}
		fmt.Fprintf(c.stdout, "%s has no active Sieve script now\n", user)
	case "delete":
		if err := ss.DeleteSieveScript(c.ctx, user, name); err != nil {
			return sieveErr(user, name, err)
		}
		fmt.Fprintf(c.stdout, "deleted Sieve script %q of %s\n", name, user)
	}
	return nil
}

func sieveList(c *call, ss store.SieveScripts, user string) error {
	l, err := ss.ListSieveScripts(c.ctx, user)
	if err != nil {
		return err
	}
	if len(l) == 0 {
		fmt.Fprintf(c.stdout, "%s has no Sieve scripts\n", user)
		return nil
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSIZE\tACTIVE")
	for _, s := range l {
		act := ""
		if s.Active {
			act = "active"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\n", s.Name, s.Size, act)
	}
	return w.Flush()
}

func sievePut(c *call, ss store.SieveScripts, user, name string, file []string) error {
	lim := managesieve.Limits(store.SieveLimits{})
	in := c.stdin
	if len(file) > 0 && file[0] != "-" {
		f, err := os.Open(file[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	// One octet more than the limit is enough to know it is too large.
	body, err := io.ReadAll(io.LimitReader(in, lim.MaxSize+1))
	if err != nil {
		return fmt.Errorf("read script: %w", err)
	}
	if int64(len(body)) > lim.MaxSize {
		return sieveErr(user, name, store.ErrSieveMaxSize)
	}
	if err := sieve.Check(body); err != nil {
		return fmt.Errorf("script %q not stored: %v", name, err)
	}
	if err := ss.PutSieveScript(c.ctx, user, name, body, lim); err != nil {
		return sieveErr(user, name, err)
	}
	fmt.Fprintf(c.stdout, "stored Sieve script %q of %s (%d bytes)\n", name, user, len(body))
	return nil
}

// sieveErr says what a store error means for the script, as ManageSieve's
// response codes do.
func sieveErr(user, name string, err error) error {
	lim := managesieve.Limits(store.SieveLimits{})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%s has no Sieve script %q", user, name)
	case errors.Is(err, store.ErrSieveActive):
		return fmt.Errorf("Sieve script %q is active; run 'petrel sieve %s deactivate' first", name, user)
	case errors.Is(err, store.ErrSieveMaxSize):
		return fmt.Errorf("Sieve script %q is larger than %d bytes", name, lim.MaxSize)
	case errors.Is(err, store.ErrSieveMaxScripts):
		return fmt.Errorf("%s has too many Sieve scripts: at most %d", user, lim.MaxScripts)
	case errors.Is(err, store.ErrSieveMaxStorage):
		return fmt.Errorf("the Sieve scripts of %s would take more than %d bytes", user, lim.MaxStorage)
	}
	return err
}
