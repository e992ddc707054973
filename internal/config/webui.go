package config

import (
	"regexp"
	"strings"
	"time"
)

// cssColour is what LOGO_BACKGROUND may hold: a hex colour, a colour
// name, or rgb()/hsl() with plain numbers (it goes into a stylesheet).
var cssColour = regexp.MustCompile(`^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,30}|(rgb|rgba|hsl|hsla)\([0-9., %]{1,40}\))$`)

// webUI reads the web UI's settings (Mailu: ADMIN, SESSION_*, LOGO_*).
func (r *reader) webUI(cfg *Config) {
	cfg.Admin = true
	if v, ok := r.get("ADMIN"); ok && strings.EqualFold(v, "none") {
		cfg.Admin = false
	} else {
		cfg.Admin = r.boolean("ADMIN", true)
	}
	cfg.SessionCookieSecure = r.boolean("SESSION_COOKIE_SECURE", true)
	const fixT = "give SESSION_TIMEOUT in seconds, e.g. 3600"
	cfg.SessionTimeout = time.Duration(r.integer("SESSION_TIMEOUT", 3600, 60, 365*86400, fixT)) * time.Second
	const fixL = "give PERMANENT_SESSION_LIFETIME in seconds, e.g. 2592000 (30 days)"
	cfg.SessionLifetime = time.Duration(r.integer("PERMANENT_SESSION_LIFETIME", 2592000, 60, 10*365*86400, fixL)) * time.Second
	if cfg.SessionLifetime < cfg.SessionTimeout {
		r.warnf("PERMANENT_SESSION_LIFETIME", "", "make PERMANENT_SESSION_LIFETIME at least SESSION_TIMEOUT",
			"is shorter than SESSION_TIMEOUT, so sessions end at PERMANENT_SESSION_LIFETIME")
	}
	cfg.LogoURL = strings.TrimSpace(r.str("LOGO_URL", ""))
	if v := cfg.LogoURL; v != "" && !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "/") {
		r.errorf("LOGO_URL", v, "use an https:// URL or a path on this server", "is not a URL")
		cfg.LogoURL = ""
	}
	cfg.LogoBackground = strings.TrimSpace(r.str("LOGO_BACKGROUND", ""))
	if v := cfg.LogoBackground; v != "" && !cssColour.MatchString(v) {
		r.errorf("LOGO_BACKGROUND", v, "use a CSS colour such as #1f5fa8 or navy", "is not a CSS colour")
		cfg.LogoBackground = ""
	}
}
