package config

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ReadEnvFile reads a mailu.env style file: KEY=VALUE lines, # comments and
// blank lines, an optional "export " prefix, values optionally in single
// quotes (literal) or double quotes (\" \\ \n \t \r \$ escapes). There is no
// variable interpolation. An unquoted value ends at " #" (an inline comment,
// as docker compose reads it). A line holding only a KEY passes that
// variable through from the environment (compose semantics), which Merge
// does anyway, so it is skipped. Later lines win over earlier ones.
//
// Every bad line is reported, each error naming the file and line number;
// errors never repeat a value (it might be a secret).
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()

	env := make(map[string]string)
	var errs []error
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff") // UTF-8 BOM
		}
		key, value, ok, err := parseEnvLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", path, n, err))
			continue
		}
		if ok {
			env[key] = value
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return env, nil
}

// parseEnvLine parses one line. ok is false for blank lines, comments and
// bare KEY lines.
func parseEnvLine(line string) (key, value string, ok bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	s := strings.TrimSpace(line)
	if s == "" || s[0] == '#' {
		return "", "", false, nil
	}
	if rest, found := strings.CutPrefix(s, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		s = strings.TrimSpace(rest)
	}
	key, raw, hasEq := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !validKey(key) {
		// The text is not repeated: a misplaced line may be a secret.
		return "", "", false, errors.New("no valid variable name before '=' (letters, digits and _, not starting with a digit)")
	}
	if !hasEq {
		return "", "", false, nil
	}
	raw = strings.TrimLeft(raw, " \t")
	if raw == "" {
		return key, "", true, nil
	}
	switch raw[0] {
	case '\'':
		end := strings.IndexByte(raw[1:], '\'')
		if end < 0 {
			return "", "", false, fmt.Errorf("%s: missing closing single quote (values cannot span lines)", key)
		}
		value = raw[1 : 1+end]
		if err := checkAfterQuote(raw[2+end:]); err != nil {
			return "", "", false, fmt.Errorf("%s: %w", key, err)
		}
		return key, value, true, nil
	case '"':
		value, rest, err := unquoteDouble(raw[1:])
		if err != nil {
			return "", "", false, fmt.Errorf("%s: %w", key, err)
		}
		if err := checkAfterQuote(rest); err != nil {
			return "", "", false, fmt.Errorf("%s: %w", key, err)
		}
		return key, value, true, nil
	}
	// Unquoted: an inline comment starts at whitespace followed by #.
	if i := strings.Index(raw, " #"); i >= 0 {
		raw = raw[:i]
	}
	if i := strings.Index(raw, "\t#"); i >= 0 {
		raw = raw[:i]
	}
	return key, strings.TrimSpace(raw), true, nil
}

// unquoteDouble reads a double-quoted value up to its closing quote and
// returns the value and what follows the quote.
func unquoteDouble(s string) (value, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 >= len(s) {
				return "", "", errors.New("missing closing double quote (values cannot span lines)")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '"', '\\', '$', '\'':
				b.WriteByte(s[i])
			default: // unknown escape: keep it as written
				b.WriteByte('\\')
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("missing closing double quote (values cannot span lines)")
}

func checkAfterQuote(rest string) error {
	rest = strings.TrimLeft(rest, " \t")
	if rest == "" || rest[0] == '#' {
		return nil
	}
	return errors.New("unexpected text after the closing quote")
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Merge combines the env file with the process environment ("KEY=VALUE"
// strings as os.Environ returns them). The process environment wins, as it
// does for docker compose's env_file, even when its value is empty. file may
// be nil.
func Merge(file map[string]string, environ []string) map[string]string {
	env := make(map[string]string, len(file)+len(environ))
	for k, v := range file {
		env[k] = v
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		env[k] = v
	}
	return env
}
