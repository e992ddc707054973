package diagnose

import (
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store/bucket"
	"github.com/petrelmail/petrel/internal/testutil/s3fake"
)

// TestDoctorBodyStore: a reachable bucket is OK and keeps no probe
// object; a missing bucket and a stopped server are problems that say
// what large messages meet meanwhile, without the secret key.
func TestDoctorBodyStore(t *testing.T) {
	f := s3fake.Start(t)
	open := func(name string) *bucket.Bucket {
		b, err := bucket.New(bucket.Config{Endpoint: f.Endpoint(), Bucket: name, AccessKey: s3fake.AccessKey,
			SecretKey: s3fake.SecretKey, Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fs := Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Bodies: open(s3fake.Bucket)})
	if got := find(fs, "store", "probe object succeeded"); len(got) != 1 || got[0].Severity != OK ||
		!strings.Contains(got[0].Subject, f.Endpoint()+"/"+s3fake.Bucket) {
		t.Errorf("reachable bucket: %+v", fs)
	}
	if keys := f.Keys(); len(keys) != 0 {
		t.Errorf("probe left %v", keys)
	}
	fs = Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Bodies: open("no-such-bucket")})
	if got := find(fs, "store", "does not exist"); len(got) != 1 || got[0].Severity != Problem {
		t.Errorf("missing bucket: %+v", fs)
	}
	f.Stop()
	fs = Doctor(t.Context(), DoctorOptions{Config: cfgFor(t, nil), Bodies: open(s3fake.Bucket)})
	got := find(fs, "store", "451 4.3.0")
	if len(got) != 1 || got[0].Severity != Problem || !strings.Contains(got[0].Fix, "BLOB_S3_ENDPOINT") {
		t.Errorf("stopped server: %+v", fs)
	}
	for _, x := range fs {
		if strings.Contains(x.Detail+x.Fix+x.Subject, s3fake.SecretKey) {
			t.Errorf("finding shows the secret key: %+v", x)
		}
	}
}
