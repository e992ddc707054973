package filter

import (
	"bytes"
	"strings"
	"testing"
)

// The parsers that are ours: rspamd's JSON reply (and its milter
// headers), clamd's reply line, the MIME/zip/OLE2 attachment scan and
// the classifier's tokenizer. None may panic or let a header value start
// a new field.
func FuzzRspamdReply(f *testing.F) {
	f.Add([]byte(`{"action":"add header","score":7,"milter":{"add_headers":{"X-A":{"value":"v","order":0},"X-B":["x",{"value":"y"}]},"remove_headers":{"X-Spam":0}}}`))
	f.Add([]byte(`{"action":"reject","messages":{"smtp_message":"Gtube pattern"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := parseRspamdReply(data)
		if err != nil {
			return
		}
		add, remove := res.MilterHeaders()
		for _, h := range add {
			if !validHeaderName(h.Name) {
				t.Fatalf("bad name %q", h.Name)
			}
			v := strings.ReplaceAll(h.Value, "\r\n\t", "")
			v = strings.ReplaceAll(v, "\r\n ", "")
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("value %q can start a new field", h.Value)
			}
		}
		for _, n := range remove {
			if !validHeaderName(n) {
				t.Fatalf("bad name %q", n)
			}
		}
		_ = replyText(res.SMTPMessage())
		_ = res.SymbolNames()
	})
}

func FuzzClamdReply(f *testing.F) {
	f.Add("stream: OK")
	f.Add("stream: Eicar-Test-Signature FOUND")
	f.Add("INSTREAM size limit exceeded. ERROR")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseScanReply(s)
		if err == nil && v != "" && !strings.HasSuffix(s, " FOUND") {
			t.Fatalf("%q: virus %q without FOUND", s, v)
		}
	})
}

func FuzzAttachments(f *testing.F) {
	f.Add([]byte(mimeWith(attachment("Content-Disposition: attachment", "a.exe", []byte("MZ")))))
	f.Add([]byte(mimeWith(attachment("Content-Disposition: attachment", "a.doc", oleFile("Macros")))))
	f.Add(oleFile("VBA"))
	sc := newAttachScanner(ForbiddenExtensions, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = sc.scan(bytes.NewReader(data))
		_ = oleHasMacros(data)
		_, _ = sc.inspectZip(data)
		_ = Tokens(bytes.NewReader(data))
	})
}
