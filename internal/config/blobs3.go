package config

import (
	"net/url"
	"strings"
)

// BlobS3 is the S3-compatible object store for message bodies over the
// inline limit (BLOB_S3_*). Endpoint "" means none.
type BlobS3 struct {
	Endpoint  string // BLOB_S3_ENDPOINT: host[:port] or an http(s):// URL
	Bucket    string // BLOB_S3_BUCKET
	AccessKey string // BLOB_S3_ACCESS_KEY (never logged)
	SecretKey string // BLOB_S3_SECRET_KEY or BLOB_S3_SECRET_KEY_FILE's contents (never logged)
	Region    string // BLOB_S3_REGION
	TLS       bool   // BLOB_S3_TLS, default true; an endpoint URL's scheme wins
}

// Enabled reports whether bodies go to the object store.
func (b BlobS3) Enabled() bool { return b.Endpoint != "" }

// blobS3 reads BLOB_S3_*. The secret comes from BLOB_S3_SECRET_KEY or,
// when that is unset, BLOB_S3_SECRET_KEY_FILE (like SECRET_KEY_FILE).
func (r *reader) blobS3(cfg *Config) {
	b := &cfg.BlobS3
	b.Endpoint = r.str("BLOB_S3_ENDPOINT", "")
	b.Bucket = r.str("BLOB_S3_BUCKET", "")
	b.Region = r.str("BLOB_S3_REGION", "")
	b.TLS = r.boolean("BLOB_S3_TLS", true)
	if v, ok := r.getRaw("BLOB_S3_ACCESS_KEY"); ok {
		b.AccessKey = strings.TrimSpace(v)
	}
	if key, _, ok := r.secretOrFile("BLOB_S3_SECRET_KEY", "point BLOB_S3_SECRET_KEY_FILE at a readable file holding the secret key",
		"put the bucket's secret access key in the file"); ok {
		b.SecretKey = key
	}
	if b.Endpoint == "" {
		for _, n := range []string{"BLOB_S3_BUCKET", "BLOB_S3_ACCESS_KEY", "BLOB_S3_SECRET_KEY", "BLOB_S3_SECRET_KEY_FILE", "BLOB_S3_REGION"} {
			if _, ok := r.get(n); ok {
				r.warnf(n, "", "set BLOB_S3_ENDPOINT, or remove "+n, "is ignored without BLOB_S3_ENDPOINT")
			}
		}
		return
	}
	const fix = "set BLOB_S3_ENDPOINT (host:port or https://host), BLOB_S3_BUCKET, BLOB_S3_ACCESS_KEY and BLOB_S3_SECRET_KEY"
	shown := b.Endpoint // never a URL's user info
	if strings.Contains(shown, "@") {
		shown = ""
	}
	if strings.Contains(b.Endpoint, "://") {
		u, err := url.Parse(b.Endpoint)
		switch {
		case err != nil || u.Host == "":
			r.errorf("BLOB_S3_ENDPOINT", "", fix, "not a URL with a host")
		case u.Scheme != "http" && u.Scheme != "https":
			r.errorf("BLOB_S3_ENDPOINT", shown, fix, "the scheme must be http or https")
		case u.Path != "" && u.Path != "/":
			r.errorf("BLOB_S3_ENDPOINT", shown, "name the bucket in BLOB_S3_BUCKET, not in the endpoint", "has a path")
		case u.User != nil:
			r.errorf("BLOB_S3_ENDPOINT", "", "put the keys in BLOB_S3_ACCESS_KEY and BLOB_S3_SECRET_KEY", "holds credentials")
		}
	}
	if b.Bucket == "" {
		r.errorf("BLOB_S3_BUCKET", "", fix, "is required with BLOB_S3_ENDPOINT")
	}
	if b.AccessKey == "" || b.SecretKey == "" {
		r.errorf("BLOB_S3_ACCESS_KEY", "", fix, "BLOB_S3_ACCESS_KEY and BLOB_S3_SECRET_KEY (or _FILE) are required with BLOB_S3_ENDPOINT")
	}
}
