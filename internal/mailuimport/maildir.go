package mailuimport

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// A Mailu user's mail is a Maildir at /mail/<email> written by Dovecot
// (Mailu's dovecot.conf: mail_location = maildir:/mail/%u), with
// Maildir++ folders (".Sent", ".Work.2024") under it and Dovecot's own
// files beside cur/new/tmp: dovecot-uidlist (UIDs), dovecot-keywords
// (keyword letters) and subscriptions.

// folder is one Maildir++ folder of a user.
type folder struct {
	Dir  string // the directory with cur/ new/ tmp/
	Name string // Petrel's name: "INBOX", "Work/2024" (decoded from modified UTF-7)
}

// mailFile is one message file of a folder.
type mailFile struct {
	Path  string
	Base  string // the name before ":2," (what dovecot-uidlist records)
	Info  string // the flags after ":2,", "" in new/
	MTime time.Time
	Size  int64 // on disk (compressed when it is)
}

// uidList is a parsed dovecot-uidlist.
type uidList struct {
	Validity uint32
	Next     uint32
	UIDs     map[string]uint32 // base file name -> UID
}

// findFolders lists a user's folders: the Maildir itself is INBOX, every
// ".name" directory holding cur/ is a folder (Maildir++ with "." as the
// hierarchy separator, Dovecot's default that Mailu keeps). bad lists the
// directories whose names do not decode.
func findFolders(root string) (folders []folder, bad []string, err error) {
	if _, err := os.Stat(filepath.Join(root, "cur")); err == nil {
		folders = append(folders, folder{Dir: root, Name: "INBOX"})
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || !strings.HasPrefix(n, ".") || n == "." || n == ".." {
			continue
		}
		dir := filepath.Join(root, n)
		if _, err := os.Stat(filepath.Join(dir, "cur")); err != nil {
			continue
		}
		name, err := folderName(n[1:])
		if err != nil {
			bad = append(bad, n)
			continue
		}
		folders = append(folders, folder{Dir: dir, Name: name})
	}
	sort.Slice(folders, func(i, j int) bool { return folders[i].Name < folders[j].Name })
	return folders, bad, nil
}

// folderName turns a Maildir++ directory name (without its leading dot)
// into Petrel's: levels split on ".", each decoded from modified UTF-7
// (RFC 3501 5.1.3, Dovecot's on-disk names), joined with "/". INBOX's
// children may be stored as "INBOX.x".
func folderName(dir string) (string, error) {
	levels := strings.Split(dir, ".")
	for i, l := range levels {
		if l == "" {
			return "", fmt.Errorf("empty level in %q", dir)
		}
		d, err := decodeUTF7(l)
		if err != nil {
			return "", err
		}
		if strings.Contains(d, "/") {
			return "", fmt.Errorf("%q holds the hierarchy delimiter", d)
		}
		levels[i] = d
	}
	if strings.EqualFold(levels[0], "INBOX") {
		levels[0] = "INBOX"
	}
	return strings.Join(levels, "/"), nil
}

// listMail lists the message files of a folder, cur/ and new/ (tmp/ holds
// deliveries that never finished).
func listMail(dir string) ([]mailFile, int, error) {
	var out []mailFile
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // gone meanwhile (Dovecot moved it)
			}
			f := mailFile{Path: filepath.Join(dir, sub, e.Name()), Base: e.Name(), MTime: fi.ModTime(), Size: fi.Size()}
			if i := strings.Index(e.Name(), ":2,"); i >= 0 {
				f.Base, f.Info = e.Name()[:i], e.Name()[i+3:]
			}
			out = append(out, f)
		}
	}
	tmp := 0
	if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err == nil {
		tmp = len(ents)
	}
	// Dovecot numbers new files in file name order (time first).
	sort.Slice(out, func(i, j int) bool { return out[i].Base < out[j].Base })
	return out, tmp, nil
}

// readUIDList parses dovecot-uidlist (Dovecot: maildir-uidlist.c).
// Version 3: "3 V<uidvalidity> N<nextuid> G<guid>", then
// "<uid> [<ext>...] :<file>"; versions 1 and 2: "1 <uidvalidity>
// <nextuid>", then "<uid> <file>". A missing file is an empty list.
func readUIDList(dir string) (*uidList, error) {
	l := &uidList{UIDs: map[string]uint32{}}
	f, err := os.Open(filepath.Join(dir, "dovecot-uidlist"))
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return l, sc.Err()
	}
	hdr := strings.Fields(sc.Text())
	if len(hdr) == 0 {
		return nil, fmt.Errorf("dovecot-uidlist: empty header")
	}
	version := hdr[0]
	switch version {
	case "3":
		for _, h := range hdr[1:] {
			if len(h) < 2 {
				continue
			}
			n, err := strconv.ParseUint(h[1:], 10, 32)
			switch {
			case err != nil:
			case h[0] == 'V':
				l.Validity = uint32(n)
			case h[0] == 'N':
				l.Next = uint32(n)
			}
		}
	case "1", "2":
		if len(hdr) >= 3 {
			v, _ := strconv.ParseUint(hdr[1], 10, 32)
			n, _ := strconv.ParseUint(hdr[2], 10, 32)
			l.Validity, l.Next = uint32(v), uint32(n)
		}
	default:
		return nil, fmt.Errorf("dovecot-uidlist: unknown version %q", version)
	}
	line := 1
	for sc.Scan() {
		line++
		text := sc.Text()
		sp := strings.IndexByte(text, ' ')
		if sp < 0 {
			continue
		}
		uid, err := strconv.ParseUint(text[:sp], 10, 32)
		if err != nil || uid == 0 {
			return nil, fmt.Errorf("dovecot-uidlist line %d: bad UID", line)
		}
		rest := text[sp+1:]
		var name string
		if version == "3" {
			// Extensions ("G<guid>", "W<vsize>") come first; the file
			// name follows " :" (or ":" when there are none).
			switch i := strings.Index(rest, " :"); {
			case strings.HasPrefix(rest, ":"):
				name = rest[1:]
			case i >= 0:
				name = rest[i+2:]
			default:
				return nil, fmt.Errorf("dovecot-uidlist line %d: no file name", line)
			}
		} else {
			name = strings.TrimSpace(rest)
		}
		if j := strings.Index(name, ":2,"); j >= 0 {
			name = name[:j]
		}
		l.UIDs[name] = uint32(uid)
		if uint32(uid) >= l.Next {
			l.Next = uint32(uid) + 1
		}
	}
	return l, sc.Err()
}

// readKeywords parses dovecot-keywords: "<index> <keyword>" per line;
// index 0 is the letter 'a' in file names.
func readKeywords(dir string) (map[byte]string, error) {
	out := map[byte]string{}
	data, err := os.ReadFile(filepath.Join(dir, "dovecot-keywords"))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, ln := range strings.Split(string(data), "\n") {
		idx, kw, ok := strings.Cut(strings.TrimRight(ln, "\r"), " ")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n > 25 || kw == "" {
			continue
		}
		out[byte('a'+n)] = kw
	}
	return out, nil
}

// flagsOf turns a file name's info part into IMAP flags (Maildir: D F P R
// S T; Dovecot: lower-case letters are keywords). unknown lists letters
// with no keyword in dovecot-keywords.
func flagsOf(info string, keywords map[byte]string) (flags []string, unknown string) {
	for i := 0; i < len(info); i++ {
		c := info[i]
		switch c {
		case 'D':
			flags = append(flags, `\Draft`)
		case 'F':
			flags = append(flags, `\Flagged`)
		case 'P':
			flags = append(flags, `$Forwarded`) // "passed": resent, forwarded
		case 'R':
			flags = append(flags, `\Answered`)
		case 'S':
			flags = append(flags, `\Seen`)
		case 'T':
			flags = append(flags, `\Deleted`)
		default:
			if c >= 'a' && c <= 'z' {
				if kw, ok := keywords[c]; ok {
					flags = append(flags, kw)
					continue
				}
				unknown += string(c)
			}
		}
	}
	return flags, unknown
}

// readSubscriptions parses Dovecot's subscriptions file: version 2
// ("V\t2", an empty line, then names with the levels separated by TAB)
// or the older one name per line with the "." separator; Dovecot 2.3
// writes the levels in modified UTF-7 in both. ok is false
// when there is no file.
func readSubscriptions(root string) (names map[string]bool, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(root, "subscriptions"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	names = map[string]bool{}
	lines := strings.Split(string(data), "\n")
	v2 := len(lines) > 0 && strings.HasPrefix(lines[0], "V\t")
	if v2 {
		lines = lines[1:]
	}
	for _, ln := range lines {
		ln = strings.TrimRight(ln, "\r")
		if ln == "" {
			continue
		}
		var levels []string
		if v2 {
			levels = strings.Split(ln, "\t")
		} else {
			levels = strings.Split(ln, ".")
		}
		// Both versions hold the levels as Dovecot names them on disk,
		// in modified UTF-7.
		for i, l := range levels {
			if d, err := decodeUTF7(l); err == nil {
				levels[i] = d
			}
		}
		if strings.EqualFold(levels[0], "INBOX") {
			levels[0] = "INBOX"
		}
		names[strings.Join(levels, "/")] = true
	}
	return names, true, nil
}

// Modified UTF-7 (RFC 3501 5.1.3), the encoding of Dovecot's folder
// names on disk; the same as internal/imapd's, which this package may
// not import.
var utf7Enc = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

var errBadUTF7 = errors.New("folder name is not valid modified UTF-7")

func decodeUTF7(s string) (string, error) {
	if !strings.Contains(s, "&") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errBadUTF7
		}
		enc := s[i+1 : i+1+j]
		i += j + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := utf7Enc.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", errBadUTF7
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(u) {
			if r == utf8.RuneError {
				return "", errBadUTF7
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}
