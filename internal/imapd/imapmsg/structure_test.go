package imapmsg

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// describe renders everything Parse found: the FETCH items and a table of
// part offsets, one line per part, named by IMAP part number.
func describe(st *Structure) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "RFC822.SIZE %d\n", st.Size)
	fmt.Fprintf(&b, "ENVELOPE %s\n", st.AppendEnvelope(nil))
	fmt.Fprintf(&b, "BODYSTRUCTURE %s\n", st.AppendBodyStructure(nil, true))
	fmt.Fprintf(&b, "BODY %s\n", st.AppendBodyStructure(nil, false))
	b.WriteString("PARTS\n")
	var walk func(p *Part, name string)
	walk = func(p *Part, name string) {
		if name == "" {
			name = "(root)"
		}
		fmt.Fprintf(&b, "%s %s/%s header=[%d,%d) body=[%d,%d) lines=%d\n",
			name, p.Type, p.Subtype, p.HeaderOffset, p.BodyOffset, p.BodyOffset, p.EndOffset, p.Lines)
		prefix := strings.TrimPrefix(name+".", "(root).")
		for i, c := range p.Children {
			walk(c, fmt.Sprintf("%s%d", prefix, i+1))
		}
		if p.Message != nil {
			walk(p.Message, prefix+"msg")
		}
	}
	walk(st.Root, "")
	return b.Bytes()
}

func TestStructureGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test messages: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			msg, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			st, err := Parse(bytes.NewReader(msg), int64(len(msg)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkInvariants(t, st)
			got := describe(st)
			golden := strings.TrimSuffix(f, ".eml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				_ = os.WriteFile(golden+".got", got, 0o644)
				t.Errorf("%s differs from %s (wrote %s.got)\ngot:\n%s", f, golden, golden, got)
			}
		})
	}
}

// checkInvariants asserts what must hold for any message: offsets nest,
// children lie inside their parent's body, in order.
func checkInvariants(t testing.TB, st *Structure) {
	t.Helper()
	var walk func(p *Part, lo, hi int64, path string)
	walk = func(p *Part, lo, hi int64, path string) {
		if !(lo <= p.HeaderOffset && p.HeaderOffset <= p.BodyOffset && p.BodyOffset <= p.EndOffset && p.EndOffset <= hi) {
			t.Fatalf("part %q offsets %d %d %d outside [%d,%d]", path, p.HeaderOffset, p.BodyOffset, p.EndOffset, lo, hi)
		}
		if p.Lines < 0 || p.Lines > p.Size() {
			t.Fatalf("part %q: %d lines in %d octets", path, p.Lines, p.Size())
		}
		if strings.EqualFold(p.Type, "multipart") != p.IsMultipart() {
			t.Fatalf("part %q: type %s/%s with %d children", path, p.Type, p.Subtype, len(p.Children))
		}
		if (p.Message != nil) != isMessageType(p) {
			t.Fatalf("part %q: type %s/%s, message %v", path, p.Type, p.Subtype, p.Message != nil)
		}
		if p.Message != nil && p.Message.Envelope == "" {
			t.Fatalf("part %q: encapsulated message without envelope", path)
		}
		prev := p.BodyOffset
		for i, c := range p.Children {
			walk(c, prev, p.EndOffset, fmt.Sprintf("%s.%d", path, i+1))
			prev = c.EndOffset
		}
		if p.Message != nil {
			walk(p.Message, p.BodyOffset, p.EndOffset, path+".msg")
		}
	}
	if st.Root.Envelope == "" {
		t.Fatal("root without envelope")
	}
	walk(st.Root, 0, st.Size, "")
}

// TestEmptyEnvelope holds the constant for an unparsed message's
// envelope to what the renderer writes for an envelope with no fields.
func TestEmptyEnvelope(t *testing.T) {
	if got := string((&Envelope{}).AppendIMAP(nil)); got != emptyEnvelope {
		t.Errorf("empty envelope %q, want %q", got, emptyEnvelope)
	}
}
