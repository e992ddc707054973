package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// testTLSPolicies checks the MTA-STS cache and the TLS-RPT counters.
func testTLSPolicies(t *testing.T, open Open) {
	st := open(t)
	defer st.Close()
	tp, ok := st.(store.TLSPolicies)
	if !ok {
		t.Skip("backend has no TLS policy store")
	}
	ctx := context.Background()
	if _, err := tp.GetMTASTSPolicy(ctx, "example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMTASTSPolicy of unknown domain: %v, want ErrNotFound", err)
	}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	p := store.MTASTSPolicy{Domain: "example.org", ID: "abc1", Text: "version: STSv1\n", FetchedAt: now, Expires: now.Add(time.Hour)}
	if err := tp.PutMTASTSPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.ID, p.Expires = "abc2", now.Add(2*time.Hour)
	if err := tp.PutMTASTSPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := tp.GetMTASTSPolicy(ctx, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "abc2" || got.Text != p.Text || !got.Expires.Equal(p.Expires) || !got.FetchedAt.Equal(now) {
		t.Errorf("policy = %+v, want %+v", got, p)
	}

	day := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	r := store.TLSResult{Day: day, PolicyDomain: "example.org", PolicyType: "sts", PolicyString: "version: STSv1",
		MXHost: "mx.example.org", ReceivingIP: "192.0.2.1", Count: 2}
	fail := r
	fail.ResultType, fail.Detail, fail.Count = "certificate-expired", "x509: expired", 1
	if err := tp.AddTLSResults(ctx, []store.TLSResult{r, fail, r}); err != nil {
		t.Fatal(err)
	}
	other := r
	other.Day = day.Add(-24 * time.Hour)
	if err := tp.AddTLSResults(ctx, []store.TLSResult{other}); err != nil {
		t.Fatal(err)
	}
	rs, err := tp.TLSResults(ctx, day.Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ResultType != "" || rs[0].Count != 4 || rs[1].ResultType != "certificate-expired" || rs[1].Count != 1 || rs[1].Detail != "x509: expired" {
		t.Fatalf("results = %+v, want 4 successes and 1 failure", rs)
	}

	ok, err = tp.ClaimTLSReport(ctx, day, "example.org")
	if err != nil || !ok {
		t.Fatalf("first claim = %v, %v; want true", ok, err)
	}
	if ok, err = tp.ClaimTLSReport(ctx, day, "example.org"); err != nil || ok {
		t.Fatalf("second claim = %v, %v; want false", ok, err)
	}
	if err := tp.PruneTLSResults(ctx, day); err != nil {
		t.Fatal(err)
	}
	if rs, _ := tp.TLSResults(ctx, other.Day); len(rs) != 0 {
		t.Errorf("pruned day still has %d rows", len(rs))
	}
	if rs, _ := tp.TLSResults(ctx, day); len(rs) != 2 {
		t.Errorf("kept day has %d rows, want 2", len(rs))
	}
}

// testQueueDSN checks that RFC 3461 parameters go with each queue entry.
func testQueueDSN(t *testing.T, open Open) {
	s := open(t)
	defer s.Close()
	c := ctx(t)
	qs, ok := s.(store.QueueStore)
	if !ok {
		t.Skip("backend has no queue store")
	}
	m := &store.NewMessage{ID: "dsn-params", Sender: "a@example.com", Body: []byte("Subject: x\r\n\r\nhi\r\n"),
		Remote: []string{"x@remote.example", "y@remote.example"},
		DSN: &store.DSNParams{Ret: "HDRS", EnvID: "env+1", Rcpts: map[string]store.RcptDSN{
			"x@remote.example": {Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;X@Remote.Example"}}}}
	must(t, s.CommitMessages(c, []*store.NewMessage{m}))
	items, err := qs.ClaimQueue(c, "w", time.Now().Add(time.Minute), time.Minute, 10)
	must(t, err)
	if len(items) != 2 {
		t.Fatalf("claimed %d entries, want 2", len(items))
	}
	for _, it := range items {
		want := store.RcptDSN{}
		if it.Recipient == "x@remote.example" {
			want = store.RcptDSN{Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;X@Remote.Example"}
		}
		if it.DSNRet != "HDRS" || it.DSNEnvID != "env+1" || it.DSNNotify != want.Notify || it.DSNORcpt != want.ORcpt {
			t.Errorf("entry %s: ret=%q envid=%q notify=%q orcpt=%q; want HDRS env+1 %+v", it.Recipient, it.DSNRet, it.DSNEnvID, it.DSNNotify, it.DSNORcpt, want)
		}
	}
}

// testQueueRequireTLS checks that MAIL FROM REQUIRETLS goes with each
// queue entry (RFC 8689), and that entries without it do not get it.
func testQueueRequireTLS(t *testing.T, open Open) {
	s := open(t)
	defer s.Close()
	c := ctx(t)
	qs, ok := s.(store.QueueStore)
	if !ok {
		t.Skip("backend has no queue store")
	}
	body := []byte("Subject: x\r\n\r\nhi\r\n")
	must(t, s.CommitMessages(c, []*store.NewMessage{
		{ID: "rtls-on", Sender: "a@example.com", Body: body, Remote: []string{"x@remote.example", "y@remote.example"}, RequireTLS: true},
		{ID: "rtls-off", Sender: "a@example.com", Body: body, Remote: []string{"z@remote.example"}},
	}))
	items, err := qs.ClaimQueue(c, "w", time.Now().Add(time.Minute), time.Minute, 10)
	must(t, err)
	if len(items) != 3 {
		t.Fatalf("claimed %d entries, want 3", len(items))
	}
	for _, it := range items {
		if want := it.MessageID == "rtls-on"; it.RequireTLS != want {
			t.Errorf("entry %s of %s: RequireTLS=%v, want %v", it.Recipient, it.MessageID, it.RequireTLS, want)
		}
	}
	all, err := qs.ListQueueEntries(c)
	must(t, err)
	n := 0
	for _, it := range all {
		if it.RequireTLS {
			n++
		}
	}
	if n != 2 {
		t.Errorf("ListQueueEntries: %d entries with RequireTLS, want 2", n)
	}
}
