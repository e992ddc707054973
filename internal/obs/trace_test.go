package obs

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// upperFilter hides lines that start with "SECRET", and treats "DATA n" as
// a line followed by n opaque octets.
type upperFilter struct{}

func (upperFilter) Line(fromClient bool, line string) (string, int64) {
	if strings.HasPrefix(line, "SECRET") {
		return "SECRET " + Redacted, 0
	}
	var n int64
	if _, err := fmt.Sscanf(line, "DATA %d", &n); err == nil {
		return line, n
	}
	return line, 0
}

func TestTrace(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewRedactHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: LevelTrace})))
	tr := NewTrace(log, upperFilter{})
	if tr == nil {
		t.Fatal("no trace at LevelTrace")
	}
	c, s := tr.Client(), tr.Server()
	io.WriteString(s, "220 ready\r\n")
	io.WriteString(c, "EHLO a")
	io.WriteString(c, "bc\r\nSECRET hunter2\r\n")
	io.WriteString(c, "DATA 5\r\nabc")
	io.WriteString(c, "\r\nNOOP\r\n")
	io.WriteString(c, strings.Repeat("x", 2000)+"\r\n")
	io.WriteString(c, "bad\x00\x1b[31m\r\n")
	out := buf.String()
	for _, want := range []string{
		`dir=S line="220 ready"`, `dir=C line="EHLO abc"`, `line="SECRET REDACTED"`,
		`line="DATA 5"`, `line="[5 octets of data]"`, `line=NOOP`, "[... 1489 more octets]",
		`line=bad\x00\x1b[31m`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "abc\r") {
		t.Errorf("secret or opaque data in the trace:\n%s", out)
	}
	if !strings.Contains(out, "level=TRACE") && !strings.Contains(out, "level=DEBUG-4") {
		t.Errorf("not at TRACE:\n%s", out)
	}

	// Below TRACE there is no trace at all.
	if NewTrace(slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})), upperFilter{}) != nil {
		t.Error("trace at DEBUG")
	}
}

// FuzzTrace writes arbitrary bytes in arbitrary chunks through a Trace:
// it must not panic, and no record may carry more than traceLineMax bytes
// of one line.
func FuzzTrace(f *testing.F) {
	f.Add([]byte("EHLO a\r\nDATA 3\r\nabcNOOP\r\n"), uint8(3))
	f.Add([]byte(strings.Repeat("x", 3000)+"\n\n\r\r\x00"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: LevelTrace}))
		tr := NewTrace(log, upperFilter{})
		step := int(chunk%64) + 1
		for i := 0; i < len(data); i += step {
			end := min(i+step, len(data))
			tr.Client().Write(data[i:end])
			tr.Server().Write(data[i:end])
		}
		for _, rec := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if len(rec) > 6*traceLineMax+400 {
				t.Fatalf("record of %d bytes", len(rec))
			}
		}
	})
}
