package app

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestAnnouncementMessage(t *testing.T) {
	raw := announcement("Petrel Mäil", "postmaster@example.com", "Wartung heute Nacht", "Zeile eins\nZeile zwei: ünïcödé "+strings.Repeat("x", 100),
		"abc@mail.example.com", time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC))
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("bare LF in the message")
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subj, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subj != "Wartung heute Nacht" {
		t.Fatalf("subject %q %v", subj, err)
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Petrel Mäil" || from[0].Address != "postmaster@example.com" {
		t.Fatalf("from %v %v", from, err)
	}
	if m.Header.Get("Message-ID") != "<abc@mail.example.com>" || m.Header.Get("Date") == "" {
		t.Fatalf("headers %v", m.Header)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
	if !strings.Contains(string(body), "Zeile eins\r\nZeile zwei: ünïcödé "+strings.Repeat("x", 100)) {
		t.Fatalf("body %q", body)
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Fatal("line over 998 octets (RFC 5322 2.1.1)")
		}
	}
}
