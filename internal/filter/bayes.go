package filter

import (
	"bufio"
	"context"
	"io"
	"math"
	"sort"
	"strings"
	"unicode"

	"github.com/emersion/go-message"
)

// Classifier parameters. The method is Paul Graham's "A Plan for Spam"
// with Gary Robinson's smoothing of rare words (as in bogofilter and
// mox's junk filter): per-token spam probabilities from the user's
// trained counts, the most telling tokens combined naively.
const (
	maxTokens      = 2000 // distinct tokens kept from one message
	maxTokenBytes  = 256 << 10
	minTokenLen    = 3
	maxTokenLen    = 32
	interesting    = 15   // tokens combined
	robinsonS      = 1.0  // strength of the prior
	robinsonX      = 0.5  // the prior (unknown)
	minInteresting = 0.1  // |p - 0.5| a token needs to count
	classWeight    = 14.0 // probability 0..1 maps to -7..+7 points
)

// Tokens returns the distinct tokens of a message for the classifier:
// lower-cased words of the Subject and of the text parts (decoded), and
// the sender's domain from From, prefixed by where they came from.
func Tokens(r io.Reader) []string {
	ent, err := message.Read(r)
	if ent == nil {
		_ = err
		return nil
	}
	t := &tokenizer{seen: map[string]bool{}}
	if s := ent.Header.Get("Subject"); s != "" {
		if d, err := ent.Header.Text("Subject"); err == nil {
			s = d
		}
		t.words("s:", s)
	}
	if from := ent.Header.Get("From"); from != "" {
		if i := strings.LastIndexByte(from, '@'); i >= 0 {
			d := strings.TrimRight(strings.ToLower(from[i+1:]), "> \t")
			t.add("fd:" + d)
		}
	}
	t.entity(ent, 0)
	return t.list
}

type tokenizer struct {
	seen  map[string]bool
	list  []string
	bytes int
}

func (t *tokenizer) add(w string) {
	if len(t.list) >= maxTokens || t.seen[w] {
		return
	}
	t.seen[w] = true
	t.list = append(t.list, w)
}

func (t *tokenizer) words(prefix, s string) {
	for _, w := range strings.FieldsFunc(s, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '$' && r != '\'' && r != '-'
	}) {
		w = strings.Trim(strings.ToLower(w), "'-")
		if n := len(w); n < minTokenLen || n > maxTokenLen {
			continue
		}
		if isNumber(w) {
			continue
		}
		t.add(prefix + w)
	}
}

func isNumber(w string) bool {
	for _, r := range w {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

func (t *tokenizer) entity(e *message.Entity, depth int) {
	if depth > maxDepth || len(t.list) >= maxTokens || t.bytes >= maxTokenBytes {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF || (err != nil && p == nil) {
				return
			}
			t.entity(p, depth+1)
		}
	}
	mt, _, _ := e.Header.ContentType()
	if mt != "" && !strings.HasPrefix(mt, "text/") {
		if fn := partFileName(e.Header); fn != "" {
			t.add("att:" + strings.ToLower(fn))
		}
		t.add("ct:" + mt)
		return
	}
	html := mt == "text/html"
	sc := bufio.NewScanner(io.LimitReader(e.Body, int64(maxTokenBytes-t.bytes)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		t.bytes += len(line)
		if html {
			line = stripTags(line)
		}
		t.words("", line)
	}
}

// stripTags drops <...> runs (roughly; the classifier only needs words).
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// SpamProbability combines token counts into the probability that the
// message is spam. totals are the messages trained; with no spam or no
// ham trained there is no opinion (ok false).
func SpamProbability(counts map[string]countPair, spamMsgs, hamMsgs int64) (p float64, ok bool) {
	if spamMsgs == 0 || hamMsgs == 0 {
		return 0.5, false
	}
	probs := make([]float64, 0, len(counts))
	for _, c := range counts {
		if c.spam == 0 && c.ham == 0 {
			continue
		}
		ps := float64(c.spam) / float64(spamMsgs)
		ph := float64(c.ham) / float64(hamMsgs)
		pw := ps / (ps + ph)
		n := float64(c.spam + c.ham)
		f := (robinsonS*robinsonX + n*pw) / (robinsonS + n)
		if math.Abs(f-0.5) < minInteresting {
			continue
		}
		probs = append(probs, math.Min(0.99, math.Max(0.01, f)))
	}
	if len(probs) == 0 {
		return 0.5, false
	}
	sort.Slice(probs, func(i, j int) bool { return math.Abs(probs[i]-0.5) > math.Abs(probs[j]-0.5) })
	if len(probs) > interesting {
		probs = probs[:interesting]
	}
	// Graham's combination in log space: p = Πf / (Πf + Π(1-f)).
	var ls, lh float64
	for _, f := range probs {
		ls += math.Log(f)
		lh += math.Log(1 - f)
	}
	return 1 / (1 + math.Exp(lh-ls)), true
}

type countPair struct{ spam, ham int64 }

// ClassifierScore maps a probability onto points: 0.5 is 0, 1 is +7, 0 is -7.
func ClassifierScore(p float64) float64 {
	return (p - 0.5) * classWeight
}

// classify returns the classifier's points for every user of m whose
// classifier has been trained on both spam and ham.
func (b *Builtin) classify(ctx context.Context, m *Message) (map[string]float64, error) {
	users := m.Users
	if len(users) == 0 {
		users = m.Rcpts
	}
	if len(users) == 0 {
		return nil, nil
	}
	totals, err := b.opts.Totals.JunkTotals(ctx, users)
	if err != nil {
		return nil, err
	}
	var trained []string
	for _, u := range users {
		if t, ok := totals[u]; ok && t.Spam > 0 && t.Ham > 0 {
			trained = append(trained, u)
		}
	}
	if len(trained) == 0 {
		return nil, nil
	}
	rc, err := m.Open()
	if err != nil {
		return nil, err
	}
	toks := Tokens(rc)
	rc.Close()
	out := map[string]float64{}
	for _, u := range trained {
		got, err := b.opts.Store.JunkTokens(ctx, u, toks)
		if err != nil {
			return out, err
		}
		counts := make(map[string]countPair, len(got))
		for k, c := range got {
			counts[k] = countPair{c.Spam, c.Ham}
		}
		if p, ok := SpamProbability(counts, totals[u].Spam, totals[u].Ham); ok {
			out[u] = ClassifierScore(p)
		}
	}
	return out, nil
}
