package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/text/secure/precis"

	"github.com/petrelmail/petrel/internal/store"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) with channel binding (-PLUS):
// tls-exporter (RFC 9266) for TLS 1.3 (and TLS 1.2 with the extended
// master secret), tls-unique (RFC 5929) for TLS 1.2. tls-server-end-point
// is not offered: the server's certificate is not in
// tls.ConnectionState. emersion/go-sasl has no SCRAM server, and
// xdg-go/scram is not among the modules the proxy serves, so the server
// is here: small, and tested with RFC 7677's vectors and an independent
// client.

// SCRAM mechanism names.
const (
	ScramSHA256     = "SCRAM-SHA-256"
	ScramSHA256Plus = "SCRAM-SHA-256-PLUS"
)

// DefaultScramIterations is the iteration count of new credentials
// (RFC 7677 4: at least 4096).
const DefaultScramIterations = 4096

// maxScramIterations bounds what a stored hash may make clients compute.
const maxScramIterations = 1 << 22

// Channel-binding types.
const (
	CBTLSExporter = "tls-exporter"
	CBTLSUnique   = "tls-unique"
)

// Errors of a SCRAM exchange that are the client's fault (malformed
// messages); the protocol answers with its syntax/failure reply. Refused
// logins come back as ErrBadCredentials or ErrRateLimited as elsewhere.
var (
	ErrScramMalformed = errors.New("scram: malformed message")
	ErrScramExchange  = errors.New("scram: unexpected message")
)

// NewScramCredentials derives SCRAM-SHA-256 credentials from password
// with a fresh random salt.
func NewScramCredentials(password string, iterations int) (store.ScramCredentials, error) {
	if iterations <= 0 {
		iterations = DefaultScramIterations
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return store.ScramCredentials{}, fmt.Errorf("auth: salt: %w", err)
	}
	return scramCredentials(password, salt, iterations)
}

// scramPassword prepares a password as RFC 5802 2.2's Normalize asks:
// SASLprep (RFC 4013) there, here its successor PRECIS OpaqueString (RFC
// 8265: non-ASCII spaces become spaces, NFC), as mox does. A password the
// profile refuses is used as it is.
func scramPassword(p string) string {
	if n, err := precis.OpaqueString.String(p); err == nil {
		return n
	}
	return p
}

func scramCredentials(password string, salt []byte, iterations int) (store.ScramCredentials, error) {
	salted, err := pbkdf2.Key(sha256.New, scramPassword(password), salt, iterations, sha256.Size)
	if err != nil {
		return store.ScramCredentials{}, fmt.Errorf("auth: pbkdf2: %w", err)
	}
	stored, server := scramKeys(salted)
	return store.ScramCredentials{Iterations: iterations, Salt: salt, StoredKey: stored, ServerKey: server}, nil
}

// scramKeys computes StoredKey and ServerKey from SaltedPassword (RFC 5802 3).
func scramKeys(salted []byte) (storedKey, serverKey []byte) {
	clientKey := hmacSHA256(salted, "Client Key")
	h := sha256.Sum256(clientKey)
	return h[:], hmacSHA256(salted, "Server Key")
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// ScramFromHash returns SCRAM credentials for a passlib pbkdf2_sha256
// hash: its checksum is SCRAM's SaltedPassword (PBKDF2-HMAC-SHA-256 of
// the UTF-8 password, 32 bytes), so such users can use SCRAM without the
// password ever being seen. Other schemes return false.
func ScramFromHash(hash string) (store.ScramCredentials, bool) {
	if !strings.HasPrefix(hash, "$pbkdf2-sha256$") {
		return store.ScramCredentials{}, false
	}
	h, err := parsePBKDF2(hash)
	if err != nil || len(h.checksum) != sha256.Size || h.rounds > maxScramIterations || len(h.salt) == 0 {
		return store.ScramCredentials{}, false
	}
	stored, server := scramKeys(h.checksum)
	return store.ScramCredentials{Iterations: h.rounds, Salt: h.salt, StoredKey: stored, ServerKey: server}, true
}

// ChannelBindingData returns the channel-binding data of cbType for the
// TLS connection cs, or an error if cbType is unknown or undefined for
// the connection (RFC 9266 3: tls-exporter needs TLS 1.3 or the extended
// master secret; RFC 5929 3: tls-unique is not defined for TLS 1.3).
func ChannelBindingData(cs *tls.ConnectionState, cbType string) ([]byte, error) {
	if cs == nil {
		return nil, errors.New("no TLS")
	}
	switch cbType {
	case CBTLSExporter:
		return cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	case CBTLSUnique:
		if cs.Version >= tls.VersionTLS13 || len(cs.TLSUnique) == 0 {
			return nil, errors.New("tls-unique is undefined for this connection")
		}
		return cs.TLSUnique, nil
	}
	return nil, fmt.Errorf("unsupported channel binding %q", cbType)
}

// ScramOutcome is what a SCRAM exchange found, handed to ScramConfig.Finish.
type ScramOutcome struct {
	Username  string // as the client sent it (unescaped)
	Valid     bool   // the proof matched valid credentials and the binding matched
	Reason    string // when not Valid: ReasonBadAuth, ReasonChannelBinding, ReasonNoScram
	ClientKey []byte // recovered from the proof: the same for the same password (fingerprints)
}

// Reasons specific to SCRAM.
const (
	ReasonChannelBinding = "channel-binding"
	ReasonNoScram        = "no-scram-credentials"
)

// ScramConfig configures one server-side SCRAM exchange.
type ScramConfig struct {
	Plus bool                 // SCRAM-SHA-256-PLUS
	TLS  *tls.ConnectionState // the connection's TLS state; nil = plaintext
	// Credentials looks up username's credentials when the client's first
	// message arrives; ok=false (no such user, or no SCRAM keys) continues
	// with fake credentials, so that the exchange does not tell whether
	// the user exists, and fails at the end. An error ends the exchange.
	Credentials func(username string) (c store.ScramCredentials, ok bool, err error)
	// Finish is called once, with the verdict on the client's proof. A
	// nil error with a Valid outcome lets the login succeed.
	Finish func(o ScramOutcome) error
	// FakeKey keys the fake salts of unknown users (stable per user).
	FakeKey []byte
	// Nonce returns the server's nonce part; nil = 24 random bytes, base64.
	Nonce func() string
}

// ScramServer is the server side of SCRAM-SHA-256[-PLUS]; it implements
// go-sasl's sasl.Server. Because SMTP, IMAP and POP3 carry no "additional
// data with success", the server-final message is sent as a last
// challenge that the client answers with an empty response.
type ScramServer struct {
	cfg   ScramConfig
	step  int // 0 want client-first, 1 want client-final, 2 want empty, 3 done
	valid bool

	username        string
	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
	creds           store.ScramCredentials
	credsOK         bool
	serverSignature []byte
}

// NewScramServer returns a server for one exchange.
func NewScramServer(cfg ScramConfig) *ScramServer { return &ScramServer{cfg: cfg} }

// Username returns the username the client sent ("" before its first
// message).
func (s *ScramServer) Username() string { return s.username }

// Next implements sasl.Server.
func (s *ScramServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		if response == nil {
			// RFC 4422 5: no initial response; an empty challenge asks for it.
			s.step = 0
			return []byte{}, false, nil
		}
		s.step = 3 // any error below ends the exchange
		ch, err := s.first(string(response))
		if err != nil {
			return nil, true, err
		}
		s.step = 1
		return []byte(ch), false, nil
	case 1:
		s.step = 3
		ch, err := s.final(string(response))
		if err != nil {
			return nil, true, err
		}
		s.step = 2
		return []byte(ch), false, nil
	case 2:
		s.step = 3
		if len(response) != 0 {
			return nil, true, fmt.Errorf("%w: non-empty response after the server's final message", ErrScramExchange)
		}
		return nil, true, nil
	}
	return nil, true, ErrScramExchange
}

// first handles client-first-message and returns server-first-message.
func (s *ScramServer) first(msg string) (string, error) {
	cf, err := parseClientFirst(msg)
	if err != nil {
		return "", err
	}
	s.username = cf.username
	// RFC 5802 6 and 7: the gs2 channel-binding flag.
	switch {
	case s.cfg.Plus && cf.cbFlag != "p":
		return "", fmt.Errorf("%w: %s needs channel binding (p=)", ErrScramMalformed, ScramSHA256Plus)
	case !s.cfg.Plus && cf.cbFlag == "p":
		return "", fmt.Errorf("%w: channel binding requested with %s; use %s", ErrScramMalformed, ScramSHA256, ScramSHA256Plus)
	case !s.cfg.Plus && cf.cbFlag == "y" && s.cfg.TLS != nil:
		// The client could bind but thinks the server cannot, while
		// this server offers -PLUS over TLS: a downgrade (RFC 5802 6).
		return "", fmt.Errorf("%w: channel-binding downgrade (gs2 flag y over TLS)", ErrBadCredentials)
	}
	if cf.authzid != "" && cf.authzid != cf.username {
		return "", fmt.Errorf("%w: authorization identity differs from the username", ErrBadCredentials)
	}
	if s.cfg.Plus {
		if _, err := ChannelBindingData(s.cfg.TLS, cf.cbName); err != nil {
			return "", fmt.Errorf("%w: %v", ErrScramMalformed, err)
		}
	}
	s.gs2Header = cf.gs2Header
	s.clientFirstBare = cf.bare
	c, ok, err := s.cfg.Credentials(cf.username)
	if err != nil {
		return "", err
	}
	if ok && c.Valid() && c.Iterations <= maxScramIterations {
		s.creds, s.credsOK = c, true
	} else {
		s.creds = s.fakeCredentials(cf.username)
	}
	n := ""
	if s.cfg.Nonce != nil {
		n = s.cfg.Nonce()
	} else {
		b := make([]byte, 24)
		rand.Read(b) // never fails (Go >= 1.24)
		n = base64.RawStdEncoding.EncodeToString(b)
	}
	s.nonce = cf.nonce + n
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.creds.Salt) +
		",i=" + strconv.Itoa(s.creds.Iterations)
	return s.serverFirst, nil
}

// fakeCredentials gives an unknown user (or one without SCRAM keys) a salt
// that stays the same across attempts, as a real user's would.
func (s *ScramServer) fakeCredentials(username string) store.ScramCredentials {
	m := hmac.New(sha256.New, s.cfg.FakeKey)
	m.Write([]byte("scram-fake-salt\x00" + username))
	sum := m.Sum(nil)
	return store.ScramCredentials{Iterations: DefaultScramIterations, Salt: sum[:16],
		StoredKey: make([]byte, 32), ServerKey: make([]byte, 32)}
}

// final handles client-final-message and returns server-final-message.
func (s *ScramServer) final(msg string) (string, error) {
	cf, err := parseClientFinal(msg)
	if err != nil {
		return "", err
	}
	if cf.nonce != s.nonce {
		return "", fmt.Errorf("%w: nonce mismatch", ErrScramMalformed)
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + cf.withoutProof
	clientSignature := hmacSHA256(s.creds.StoredKey, authMessage)
	clientKey := make([]byte, len(cf.proof))
	subtle.XORBytes(clientKey, cf.proof, clientSignature)
	out := ScramOutcome{Username: s.username, ClientKey: clientKey}
	h := sha256.Sum256(clientKey)
	proofOK := s.credsOK && len(cf.proof) == sha256.Size && subtle.ConstantTimeCompare(h[:], s.creds.StoredKey) == 1
	// RFC 5802 7: c= is base64(gs2-header [cbind-data]).
	want := []byte(s.gs2Header)
	if s.cfg.Plus {
		data, err := ChannelBindingData(s.cfg.TLS, cbNameOf(s.gs2Header))
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrScramMalformed, err)
		}
		want = append(want, data...)
	}
	bindingOK := subtle.ConstantTimeCompare(cf.binding, want) == 1
	switch {
	case !s.credsOK:
		out.Reason = ReasonNoScram
	case !bindingOK:
		out.Reason = ReasonChannelBinding
	case !proofOK:
		out.Reason = ReasonBadAuth
	default:
		out.Valid = true
	}
	if err := s.cfg.Finish(out); err != nil {
		return "", err
	}
	if !out.Valid {
		// Finish must refuse an invalid outcome; never let it through.
		return "", ErrBadCredentials
	}
	s.valid = true
	s.serverSignature = hmacSHA256(s.creds.ServerKey, authMessage)
	return "v=" + base64.StdEncoding.EncodeToString(s.serverSignature), nil
}

func cbNameOf(gs2Header string) string {
	flag, _, _ := strings.Cut(gs2Header, ",")
	return strings.TrimPrefix(flag, "p=")
}

// clientFirst is a parsed client-first-message (RFC 5802 7).
type clientFirst struct {
	gs2Header string // "n,," / "y,," / "p=tls-exporter,,", with the authzid
	cbFlag    string // "n", "y" or "p"
	cbName    string // with "p"
	authzid   string
	bare      string // client-first-message-bare
	username  string // unescaped
	nonce     string
}

// parseClientFirst parses gs2-header client-first-message-bare.
func parseClientFirst(msg string) (clientFirst, error) {
	var cf clientFirst
	bad := func(what string) (clientFirst, error) {
		return clientFirst{}, fmt.Errorf("%w: client-first: %s", ErrScramMalformed, what)
	}
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return bad("no gs2 header")
	}
	switch {
	case flag == "n" || flag == "y":
		cf.cbFlag = flag
	case strings.HasPrefix(flag, "p="):
		cf.cbFlag, cf.cbName = "p", flag[2:]
		if cf.cbName == "" || strings.IndexFunc(cf.cbName, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-')
		}) >= 0 {
			return bad("bad channel-binding name")
		}
	default:
		return bad("bad channel-binding flag")
	}
	az, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return bad("no authzid field")
	}
	if az != "" {
		v, ok := strings.CutPrefix(az, "a=")
		if !ok {
			return bad("bad authzid")
		}
		name, err := unescapeSASLName(v)
		if err != nil || name == "" {
			return bad("bad authzid")
		}
		cf.authzid = name
	}
	cf.gs2Header = msg[:len(msg)-len(bare)]
	cf.bare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return bad("needs a username and a nonce")
	}
	if strings.HasPrefix(attrs[0], "m=") {
		// RFC 5802 5.1: mandatory extensions this server does not know.
		return bad("unsupported mandatory extension")
	}
	u, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return bad("no username")
	}
	name, err := unescapeSASLName(u)
	if err != nil || name == "" {
		return bad("bad username")
	}
	cf.username = name
	r, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !validNonce(r) {
		return bad("bad nonce")
	}
	cf.nonce = r
	return cf, nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	binding      []byte // decoded c=
	nonce        string
	proof        []byte
	withoutProof string
}

func parseClientFinal(msg string) (clientFinal, error) {
	var cf clientFinal
	bad := func(what string) (clientFinal, error) {
		return clientFinal{}, fmt.Errorf("%w: client-final: %s", ErrScramMalformed, what)
	}
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return bad("no proof")
	}
	cf.withoutProof = msg[:i]
	proof, err := base64.StdEncoding.Strict().DecodeString(msg[i+3:])
	if err != nil || len(proof) == 0 {
		return bad("bad proof")
	}
	cf.proof = proof
	attrs := strings.Split(cf.withoutProof, ",")
	if len(attrs) < 2 {
		return bad("needs channel binding and nonce")
	}
	c, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok {
		return bad("no channel binding")
	}
	if cf.binding, err = base64.StdEncoding.Strict().DecodeString(c); err != nil {
		return bad("bad channel binding")
	}
	r, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !validNonce(r) {
		return bad("bad nonce")
	}
	cf.nonce = r
	return cf, nil
}

// validNonce: printable ASCII except "," (RFC 5802 7).
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// unescapeSASLName undoes RFC 5802 5.1's "=2C" and "=3D"; any other "="
// is an error.
func unescapeSASLName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("bad escape")
		}
		i += 2
	}
	return b.String(), nil
}
