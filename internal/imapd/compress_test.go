package imapd

import (
	"bufio"
	"compress/flate"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deflateConn is the client's side of COMPRESS=DEFLATE: every write is
// deflated and sync-flushed, every read inflated.
type deflateConn struct {
	net.Conn
	zr io.Reader
	zw *flate.Writer
	// wire counts the compressed bytes read, to see that they are.
	wire *countingReader
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *deflateConn) Read(p []byte) (int, error) { return c.zr.Read(p) }
func (c *deflateConn) Write(p []byte) (int, error) {
	n, err := c.zw.Write(p)
	if err == nil {
		err = c.zw.Flush()
	}
	return n, err
}

// startDeflate switches c to DEFLATE after the server's OK; bytes the
// client's reader already holds would be compressed ones, and there are
// none because the client sent nothing after COMPRESS.
func startDeflate(t *testing.T, c *client) *deflateConn {
	t.Helper()
	if n := c.r.Buffered(); n != 0 {
		t.Fatalf("%d bytes after the COMPRESS OK", n)
	}
	zw, _ := flate.NewWriter(c.conn, flate.DefaultCompression)
	wire := &countingReader{r: c.conn}
	dc := &deflateConn{Conn: c.conn, zr: flate.NewReader(wire), zw: zw, wire: wire}
	c.conn, c.r = dc, bufio.NewReader(dc)
	return dc
}

// RFC 4978: COMPRESS DEFLATE after login; everything after the tagged OK
// travels deflated both ways, literals included; a second COMPRESS is NO
// [COMPRESSIONACTIVE] and the capability goes.
func TestCompressDeflate(t *testing.T) {
	ts := startServer(t, nil)
	body := testMessage("squeeze") + strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 200)
	deliver(t, ts.st, alice, "INBOX", body)

	c := ts.dial()
	c.greeting()
	if u := c.ok("CAPABILITY"); len(u) != 1 || strings.Contains(u[0], "COMPRESS") {
		t.Fatalf("CAPABILITY before login: %q", u)
	}
	c.expect("COMPRESS DEFLATE", "BAD") // not before login
	c.ok("LOGIN " + quote(alice) + " " + quote(alicePass))
	if u := c.ok("CAPABILITY"); len(u) != 1 || !strings.Contains(u[0], " COMPRESS=DEFLATE") {
		t.Fatalf("CAPABILITY after login: %q", u)
	}
	c.expect("COMPRESS GZIP", "BAD")
	if _, tagged := c.cmd("COMPRESS DEFLATE"); tagged != "OK DEFLATE active" {
		t.Fatalf("COMPRESS: %q", tagged)
	}
	dc := startDeflate(t, c)

	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1 BODY.PEEK[]")
	if len(u) != 1 || !strings.HasSuffix(u[0], body+")") {
		t.Fatalf("FETCH over DEFLATE: %d responses, %.80q", len(u), u)
	}
	if dc.wire.n*2 > len(body) {
		t.Errorf("%d compressed bytes for a %d-byte message: not deflated", dc.wire.n, len(body))
	}
	// A literal from the client, deflated.
	msg := "Subject: back\r\n\r\n" + strings.Repeat("zip ", 100) + "\r\n"
	c.send("a1 APPEND INBOX {" + strconv.Itoa(len(msg)) + "}\r\n")
	if r := c.read(); !strings.HasPrefix(r, "+ ") {
		t.Fatalf("continuation: %q", r)
	}
	c.send(msg + "\r\n")
	if _, tagged := c.collect("a1"); !strings.HasPrefix(tagged, "OK [APPENDUID") {
		t.Fatalf("APPEND over DEFLATE: %q", tagged)
	}
	if u := c.ok("UID FETCH 2 BODY.PEEK[TEXT]"); len(u) < 1 || !strings.Contains(u[len(u)-1], strings.Repeat("zip ", 100)) {
		t.Fatalf("appended text: %.120q", u)
	}
	// IDLE: a delivery reaches the client at once, so each response was
	// flushed through the compressor.
	c.send("i1 IDLE\r\n")
	if r := c.read(); !strings.HasPrefix(r, "+ ") {
		t.Fatalf("IDLE: %q", r)
	}
	deliver(t, ts.st, alice, "INBOX", testMessage("while idle"))
	c.waitFor("* 3 EXISTS", 30*time.Second)
	c.send("DONE\r\n")
	if _, tagged := c.collect("i1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("IDLE end: %q", tagged)
	}
	c.expect("COMPRESS DEFLATE", "NO [COMPRESSIONACTIVE]")
	if u := c.ok("CAPABILITY"); strings.Contains(u[0], "COMPRESS=") {
		t.Fatalf("CAPABILITY with DEFLATE on: %q", u)
	}
	c.send("z LOGOUT\r\n")
	if _, tagged := c.collect("z"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("LOGOUT: %q", tagged)
	}
}

// TestCompressDeflateZlib speaks COMPRESS=DEFLATE through Python's zlib
// (raw DEFLATE, wbits -15), an implementation independent of Go's.
func TestCompressDeflateZlib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("zlib")+strings.Repeat("zlib zlib zlib\r\n", 100))
	script := `
import socket, sys, zlib
host, port, user, pw = sys.argv[1:5]
s = socket.create_connection((host, int(port)), timeout=20)
f = s.makefile("rb")
def line():
    return f.readline().decode()
line()
s.sendall(('a LOGIN "%s" "%s"\r\n' % (user, pw)).encode())
while not line().startswith("a "): pass
s.sendall(b"b COMPRESS DEFLATE\r\n")
r = line()
assert r.startswith("b OK"), r
co, de = zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)
s.sendall(co.compress(b"c SELECT INBOX\r\nd UID FETCH 1 (BODY.PEEK[TEXT])\r\ne LOGOUT\r\n") + co.flush(zlib.Z_SYNC_FLUSH))
out = b""
while not out.endswith(b"e OK Logout completed\r\n") and b"e OK" not in out:
    chunk = s.recv(65536)
    if not chunk: break
    out += de.decompress(chunk)
sys.stdout.write(out.decode())
`
	host, port, _ := net.SplitHostPort(ts.addr)
	out, err := exec.Command(py, "-c", script, host, port, alice, alicePass).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, want := range []string{"c OK [READ-WRITE]", strings.Repeat("zlib zlib zlib\r\n", 100), "* BYE", "e OK"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("zlib session lacks %.40q:\n%.400s", want, out)
		}
	}
}
