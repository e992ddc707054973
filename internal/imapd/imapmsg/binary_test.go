package imapmsg

import (
	"bytes"
	"errors"
	"testing"
)

func TestBinary(t *testing.T) {
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Transfer-Encoding: BASE64\r\n\r\n  aGVs\tbG8A \r\nd29y\r\nbGQ=\r\nignored\r\n" +
		"--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc \r\n" +
		"--b\r\nContent-Transfer-Encoding: x-gzip\r\n\r\nzz\r\n" +
		"--b\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xe4\r\n" +
		"--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGk\r\n" + // no padding
		"--b--\r\n"
	st := ParseBytes([]byte(msg))
	r := bytes.NewReader([]byte(msg))
	for _, tc := range []struct {
		part int
		want string
	}{{1, "hello\x00world"}, {2, "a=bc"}, {4, "\xe4"}, {5, "hi"}, {9, ""}} {
		got, err := st.Binary(r, []int{tc.part})
		if err != nil || string(got) != tc.want {
			t.Errorf("Binary(%d) = %q, %v; want %q", tc.part, got, err, tc.want)
		}
	}
	if _, err := st.Binary(r, []int{3}); !errors.Is(err, ErrUnknownCTE) {
		t.Errorf("Binary of x-gzip: %v, want ErrUnknownCTE", err)
	}
	if got, _ := st.Binary(r, nil); string(got) != msg {
		t.Errorf("Binary of the whole message is not the message")
	}
}

func TestEncodeBinaryParts(t *testing.T) {
	plain := []byte("Subject: x\r\n\r\nno nul\r\n")
	if out, ok := EncodeBinaryParts(plain); !ok || &out[0] != &plain[0] {
		t.Error("a message without NUL is not returned as it is")
	}
	msg := "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nkeep\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02" +
		"\r\n--b--\r\n"
	out, ok := EncodeBinaryParts([]byte(msg))
	if !ok || bytes.IndexByte(out, 0) >= 0 {
		t.Fatalf("EncodeBinaryParts = %q, %v", out, ok)
	}
	want := "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nkeep\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n" +
		"\r\n--b--\r\n"
	if string(out) != want {
		t.Fatalf("EncodeBinaryParts:\n%q\nwant\n%q", out, want)
	}
	st := ParseBytes(out)
	if got, err := st.Binary(bytes.NewReader(out), []int{2}); err != nil || string(got) != "\x00\x01\x02" {
		t.Fatalf("Binary of the encoded part = %q, %v", got, err)
	}
	if _, ok := EncodeBinaryParts([]byte("Subject: \x00\r\n\r\nbody")); ok {
		t.Error("a NUL in the header was accepted")
	}
}

// FuzzEncodeBinaryParts: whatever the input, an accepted result has no
// NUL and each part's binary content is what the input's was.
func FuzzEncodeBinaryParts(f *testing.F) {
	f.Add([]byte("A: b\r\n\r\n\x00x"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n\x00\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, ok := EncodeBinaryParts(msg)
		if !ok {
			return
		}
		if bytes.IndexByte(out, 0) >= 0 {
			t.Fatalf("NUL left in %q", out)
		}
		if bytes.IndexByte(msg, 0) < 0 && !bytes.Equal(out, msg) {
			t.Fatalf("a message without NUL changed")
		}
	})
}
