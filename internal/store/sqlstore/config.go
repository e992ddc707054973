package sqlstore

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/store/bucket"
)

// OpenConfig opens the database the configuration names: DATA_DIR/main.db
// for SQLite (DATA_DIR is created 0700 when missing), Mailu's DB_* settings
// or SQLALCHEMY_DATABASE_URI for PostgreSQL. Bodies too large to keep in
// the database go to DATA_DIR/blobs. serve uses it and every CLI command
// OpenConfigCommand, so they always agree on where the data is.
func OpenConfig(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Store, error) {
	return openConfig(ctx, cfg, log, false)
}

// OpenConfigCommand is OpenConfig for one-shot commands (the CLI): on
// PostgreSQL its changes are announced to the running nodes, but it holds
// no LISTEN connection of its own.
func OpenConfigCommand(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Store, error) {
	return openConfig(ctx, cfg, log, true)
}

func openConfig(ctx context.Context, cfg *config.Config, log *slog.Logger, noListen bool) (*Store, error) {
	flavor := strings.ToLower(cfg.DBFlavor)
	if flavor == "" {
		flavor = "sqlite"
	}
	opt := Options{Flavor: flavor, BlobDir: filepath.Join(cfg.DataDir, "blobs"), Logger: log, NoListen: noListen}
	switch flavor {
	case "sqlite":
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create DATA_DIR: %w", err)
		}
		opt.Path = filepath.Join(cfg.DataDir, "main.db")
	default:
		opt.DSN = postgresDSN(cfg)
	}
	objs, err := BucketFromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if objs != nil {
		opt.Objects = objs
		if !noListen && log != nil {
			log.Info("message bodies over the inline limit go to the S3 bucket", "bucket", objs.String())
		}
	}
	st, err := Open(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

// BucketFromConfig returns the BLOB_S3_* bucket, or nil when
// BLOB_S3_ENDPOINT is unset. It does not contact the server.
func BucketFromConfig(cfg *config.Config) (*bucket.Bucket, error) {
	b := cfg.BlobS3
	if !b.Enabled() {
		return nil, nil
	}
	return bucket.New(bucket.Config{Endpoint: b.Endpoint, Bucket: b.Bucket, AccessKey: b.AccessKey,
		SecretKey: b.SecretKey, Region: b.Region, TLS: b.TLS})
}

// postgresDSN builds a connection URL from Mailu's DB_* settings unless
// SQLALCHEMY_DATABASE_URI gives one.
func postgresDSN(cfg *config.Config) string {
	if cfg.DBURL != "" {
		// SQLAlchemy's "postgresql+driver://" is a plain URL for pgx.
		if scheme, rest, ok := strings.Cut(cfg.DBURL, "://"); ok && strings.HasPrefix(scheme, "postgresql+") {
			return "postgresql://" + rest
		}
		return cfg.DBURL
	}
	port := cfg.DBPort
	if port == 0 {
		port = 5432
	}
	u := url.URL{Scheme: "postgresql", Host: net.JoinHostPort(cfg.DBHost, strconv.Itoa(port)), Path: "/" + cfg.DBName}
	if cfg.DBUser != "" {
		if cfg.DBPw != "" {
			u.User = url.UserPassword(cfg.DBUser, cfg.DBPw)
		} else {
			u.User = url.User(cfg.DBUser)
		}
	}
	return u.String()
}
