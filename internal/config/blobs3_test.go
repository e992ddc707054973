package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBlobS3(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "s3key")
	if err := os.WriteFile(keyFile, []byte("MARKER-s3-file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		env     map[string]string
		want    BlobS3
		errVars []string // settings named by errors
	}{
		{"unset", with(), BlobS3{TLS: true}, nil},
		{"full", with("BLOB_S3_ENDPOINT", "s3.example.com:9000", "BLOB_S3_BUCKET", "mail", "BLOB_S3_ACCESS_KEY", "AK",
			"BLOB_S3_SECRET_KEY", "MARKER-s3-secret", "BLOB_S3_REGION", "eu-1", "BLOB_S3_TLS", "false"),
			BlobS3{Endpoint: "s3.example.com:9000", Bucket: "mail", AccessKey: "AK", SecretKey: "MARKER-s3-secret", Region: "eu-1"}, nil},
		{"file", with("BLOB_S3_ENDPOINT", "https://s3.example.com", "BLOB_S3_BUCKET", "mail", "BLOB_S3_ACCESS_KEY", "AK",
			"BLOB_S3_SECRET_KEY_FILE", keyFile),
			BlobS3{Endpoint: "https://s3.example.com", Bucket: "mail", AccessKey: "AK", SecretKey: "MARKER-s3-file-secret", TLS: true}, nil},
		{"no bucket", with("BLOB_S3_ENDPOINT", "s3.example.com", "BLOB_S3_ACCESS_KEY", "AK", "BLOB_S3_SECRET_KEY", "MARKER-s3-secret"),
			BlobS3{}, []string{"BLOB_S3_BUCKET"}},
		{"no keys", with("BLOB_S3_ENDPOINT", "s3.example.com", "BLOB_S3_BUCKET", "b"), BlobS3{}, []string{"BLOB_S3_ACCESS_KEY"}},
		{"bad url", with("BLOB_S3_ENDPOINT", "ftp://u:MARKER-s3-secret@h/x", "BLOB_S3_BUCKET", "b", "BLOB_S3_ACCESS_KEY", "AK",
			"BLOB_S3_SECRET_KEY", "MARKER-s3-secret"), BlobS3{}, []string{"BLOB_S3_ENDPOINT"}},
		{"missing file", with("BLOB_S3_ENDPOINT", "h", "BLOB_S3_BUCKET", "b", "BLOB_S3_ACCESS_KEY", "AK",
			"BLOB_S3_SECRET_KEY_FILE", "/nonexistent/key"), BlobS3{}, []string{"BLOB_S3_SECRET_KEY_FILE", "BLOB_S3_ACCESS_KEY"}},
	}
	for _, c := range cases {
		cfg, probs := Parse(c.env)
		var errs []string
		for _, p := range probs {
			if strings.Contains(p.String(), "MARKER") {
				t.Errorf("%s: problem shows a secret: %s", c.name, p)
			}
			if !p.Warning && strings.HasPrefix(p.Setting, "BLOB_S3") {
				errs = append(errs, p.Setting)
			}
		}
		if strings.Join(errs, ",") != strings.Join(c.errVars, ",") {
			t.Errorf("%s: errors on %v, want %v (%v)", c.name, errs, c.errVars, probs)
		}
		if c.errVars == nil && cfg.BlobS3 != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, cfg.BlobS3, c.want)
		}
	}
	// Settings without an endpoint are warned about, not silently ignored.
	_, probs := Parse(with("BLOB_S3_BUCKET", "b"))
	found := false
	for _, p := range probs {
		found = found || (p.Setting == "BLOB_S3_BUCKET" && p.Warning)
	}
	if !found {
		t.Errorf("BLOB_S3_BUCKET without an endpoint: %v", probs)
	}
}
