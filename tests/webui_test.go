package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium (package chromium, see .ci/run).
func chromiumPath() string {
	for _, p := range []string{os.Getenv("PETREL_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// TestWebUIInBrowser is issue 12's browser test: headless Chromium signs in
// to the real binary's web UI as the admin, creates a domain, a user and
// an alias, signs in as that user, changes the password and sets an
// auto-reply; then SMTP and IMAP (Python's smtplib and imaplib) show that
// all of it works. Screenshots of each page go to PETREL_SCREENSHOT_DIR
// (or the test's temporary directory).
func TestWebUIInBrowser(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("chromium not installed (Debian package chromium; .ci/run installs it)")
	}
	shots := os.Getenv("PETREL_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, map[string]string{
		"INITIAL_ADMIN_ACCOUNT": "admin",
		"INITIAL_ADMIN_DOMAIN":  "example.test",
		"INITIAL_ADMIN_PW":      "Admin-Pass-1",
	})
	s.start()
	_, port, _ := net.SplitHostPort(s.addr[443])
	base := "https://mail.example.test:" + port

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The test server's certificate is self-signed for HOSTNAMES.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("host-resolver-rules", "MAP mail.example.test 127.0.0.1"),
		chromedp.WindowSize(1100, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The first run starts the browser; it must not carry a timeout
	// (the timeout would end the browser), later ones may.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()

	n := 0
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			n++
			buf, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100: PNG
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, fmt.Sprintf("%02d-%s.png", n, name)), buf, 0o644)
		})
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\n%s", step, err, s.logs())
		}
	}
	var text string
	// textOf reads the text of the first element matching sel.
	textOf := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			v, err := chromedp.Text(chromedp.CSS(sel))(ctx, tg)
			text = v
			return err
		})
	}
	// submit fills a form and submits it with the keyboard (Enter in the
	// last field), as a user without a mouse would.
	signIn := func(email, pw string) []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(base + "/sso/login"),
			chromedp.WaitVisible(chromedp.CSS("#email")),
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.SendKeys(chromedp.CSS("#pw"), pw+"\r"),
			chromedp.WaitVisible(chromedp.CSS("nav")),
		}
	}

	run("login page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#email")), shot("login"))
	run("admin signs in", signIn("admin@example.test", "Admin-Pass-1")...)
	run("create domain",
		chromedp.Navigate(base+"/admin/domain/create"),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "shop.test"),
		shot("domain-create"),
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		textOf("main"),
		shot("domains"),
	)
	if !strings.Contains(text, "shop.test") {
		t.Fatalf("domain list: %q", text)
	}
	run("create user",
		chromedp.Navigate(base+"/admin/user/create/shop.test"),
		chromedp.WaitVisible(chromedp.CSS("#localpart")),
		chromedp.SendKeys(chromedp.CSS("#localpart"), "carol"),
		chromedp.SendKeys(chromedp.CSS("#pw"), "Carol-First-1"),
		chromedp.SendKeys(chromedp.CSS("#pw2"), "Carol-First-1"),
		chromedp.SendKeys(chromedp.CSS("#displayed_name"), "Carol Shop"),
		shot("user-create"),
		chromedp.Submit(chromedp.CSS("#localpart")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		textOf("main"),
		shot("users"),
	)
	if !strings.Contains(text, "carol@shop.test") {
		t.Fatalf("user list: %q", text)
	}
	run("create alias",
		chromedp.Navigate(base+"/admin/alias/create/shop.test"),
		chromedp.WaitVisible(chromedp.CSS("#localpart")),
		chromedp.SendKeys(chromedp.CSS("#localpart"), "sales"),
		chromedp.SendKeys(chromedp.CSS("#destination"), "carol@shop.test"),
		shot("alias-create"),
		chromedp.Submit(chromedp.CSS("#localpart")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		textOf("main"),
		shot("aliases"),
	)
	if !strings.Contains(text, "sales@shop.test") {
		t.Fatalf("alias list: %q", text)
	}
	run("domain details", chromedp.Navigate(base+"/admin/domain/details/shop.test"), chromedp.WaitVisible(chromedp.CSS("table")),
		textOf("main"), shot("domain-details"))
	if !strings.Contains(text, "_dmarc.shop.test.") || !strings.Contains(text, "v=DKIM1") {
		t.Fatalf("domain details lack DMARC/DKIM: %q", text)
	}
	run("status", chromedp.Navigate(base+"/admin/status"), chromedp.WaitVisible(chromedp.CSS("svg.chart")), shot("status"))
	run("announcement",
		chromedp.Navigate(base+"/admin/announcement"),
		chromedp.WaitVisible(chromedp.CSS("#announcement_subject")),
		chromedp.SendKeys(chromedp.CSS("#announcement_subject"), "Maintenance tonight"),
		chromedp.SendKeys(chromedp.CSS("#announcement_body"), "The server restarts at 22:00 UTC."),
		chromedp.Submit(chromedp.CSS("#announcement_subject")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		textOf(".flash"),
		shot("announcement"),
	)
	if !strings.Contains(text, "delivered to 2 users") {
		t.Fatalf("announcement: %q", text)
	}
	run("admin signs out",
		chromedp.Click(chromedp.CSS("header button")),
		chromedp.WaitVisible(chromedp.CSS("#email")),
	)

	run("user signs in", signIn("carol@shop.test", "Carol-First-1")...)
	run("change password",
		chromedp.Navigate(base+"/admin/user/password"),
		chromedp.WaitVisible(chromedp.CSS("#current_pw")),
		chromedp.SendKeys(chromedp.CSS("#current_pw"), "Carol-First-1"),
		chromedp.SendKeys(chromedp.CSS("#pw"), "Carol-Second-2"),
		chromedp.SendKeys(chromedp.CSS("#pw2"), "Carol-Second-2"),
		shot("password"),
		chromedp.Submit(chromedp.CSS("#pw2")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		textOf(".flash"),
		shot("settings"),
	)
	if !strings.Contains(text, "password was changed") {
		t.Fatalf("password change: %q", text)
	}
	run("auto-reply",
		chromedp.Navigate(base+"/admin/user/reply"),
		chromedp.WaitVisible(chromedp.CSS("#reply_subject")),
		chromedp.Click(chromedp.CSS(`input[name="reply_enabled"]`)),
		chromedp.SendKeys(chromedp.CSS("#reply_subject"), "Out of office"),
		chromedp.SendKeys(chromedp.CSS("#reply_body"), "Carol is away until Monday."),
		chromedp.Submit(chromedp.CSS("#reply_subject")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		textOf("main"),
		shot("reply"),
	)
	if !strings.Contains(text, "active today") {
		t.Fatalf("auto-reply page: %q", text)
	}
	run("client setup", chromedp.Navigate(base+"/admin/client"), chromedp.WaitVisible(chromedp.CSS("table")),
		textOf("main"), shot("client"))
	if !strings.Contains(text, "993") || !strings.Contains(text, "465") || !strings.Contains(text, "carol@shop.test") {
		t.Fatalf("client page: %q", text)
	}
	run("tokens", chromedp.Navigate(base+"/admin/token/list"), chromedp.WaitVisible(chromedp.CSS("#comment")), shot("tokens"))
	run("two-factor enrolment",
		chromedp.Navigate(base+"/admin/user/totp"),
		chromedp.WaitVisible(chromedp.CSS("main button")),
		chromedp.Click(chromedp.CSS("main button")),
		chromedp.WaitVisible(chromedp.CSS("main img")),
		textOf("main"),
		shot("totp"),
	)
	if !strings.Contains(text, "otpauth://totp/") {
		t.Fatalf("enrolment page: %q", text)
	}
	// A phone-sized window gets the same pages.
	run("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/admin/user/settings"),
		chromedp.WaitVisible(chromedp.CSS("#displayed_name")), shot("phone-settings"))

	// Now over the mail protocols, with independent clients: admin writes
	// to the alias on 465; carol reads it over IMAP with her new password;
	// her auto-reply lands in admin's inbox.
	script := `
import imaplib, smtplib, os, ssl, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
h, p = os.environ["A465"].split(":")
s = smtplib.SMTP_SSL(h, int(p), context=ctx)
s.login("admin@example.test", "Admin-Pass-1")
s.sendmail("admin@example.test", ["sales@shop.test"], b"From: admin@example.test\r\nTo: sales@shop.test\r\nSubject: order 42\r\nMessage-ID: <o42@example.test>\r\n\r\nPlease ship order 42.\r\n")
s.quit()
h, p = os.environ["A993"].split(":")
def inbox(user, pw, want):
    for _ in range(100):
        m = imaplib.IMAP4_SSL(h, int(p), ssl_context=ctx)
        m.login(user, pw)
        m.select("INBOX")
        typ, data = m.search(None, "SUBJECT", "\"%s\"" % want)
        ids = data[0].split()
        if ids:
            typ, msg = m.fetch(ids[-1], "(BODY.PEEK[])")
            m.logout()
            return msg[0][1].decode("utf-8", "replace")
        m.logout()
        time.sleep(0.1)
    raise SystemExit("no message %r for %s" % (want, user))
print("CAROL", inbox("carol@shop.test", "Carol-Second-2", "order 42").replace("\r\n", "|"))
try:
    m = imaplib.IMAP4_SSL(h, int(p), ssl_context=ctx)
    m.login("carol@shop.test", "Carol-First-1")
    print("OLDPW accepted")
except imaplib.IMAP4.error:
    print("OLDPW refused")
print("REPLY", inbox("admin@example.test", "Admin-Pass-1", "Out of office").replace("\r\n", "|"))
print("ANNOUNCE", inbox("carol@shop.test", "Carol-Second-2", "Maintenance tonight").replace("\r\n", "|"))
`
	out, err := runPython(t, script, map[string]string{"A465": s.addr[465], "A993": s.addr[993]})
	if err != nil {
		t.Fatalf("smtplib/imaplib: %v\n%s\n%s", err, out, s.logs())
	}
	for _, want := range []string{"CAROL ", "Please ship order 42.", "OLDPW refused", "REPLY ", "Carol is away until Monday.", "ANNOUNCE ", "The server restarts at 22:00 UTC."} {
		if !strings.Contains(out, want) {
			t.Fatalf("mail check lacks %q:\n%s", want, out)
		}
	}
	t.Logf("screenshots in %s", shots)
}
