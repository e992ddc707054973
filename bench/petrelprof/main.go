// Command petrelprof is `petrel serve` with a Go CPU profile switch, for
// bench/inbound.sh's profile step. It runs the same composition root
// (config.Parse, obs.NewLogger, app.Run) as cmd/petrel, so the profile is
// of the real inbound path: go-smtp sessions, smtpd, inbound routing and
// group commit, sqlstore on SQLite.
//
// SIGUSR1 starts a CPU profile, SIGUSR2 stops it and writes it to
// $PPROF_OUT (default petrel.cpu.pprof); read it with `go tool pprof -top`.
// With PPROF_BLOCK=1 the same window also records where goroutines wait
// (blocking and mutex contention), written beside it as $PPROF_OUT.block
// and $PPROF_OUT.mutex: the time off the CPU that a CPU profile misses.
// With PPROF_HEAP_AFTER (a duration) the live heap is written as
// $PPROF_OUT.heap that long after SIGUSR1, while the load still holds its
// sessions: where a peak RSS comes from.
// Petrel itself has no pprof endpoint, and this keeps one out of it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/petrelmail/petrel/internal/app"
	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/obs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "petrelprof:", err)
		os.Exit(1)
	}
}

func run() error {
	out := os.Getenv("PPROF_OUT")
	if out == "" {
		out = "petrel.cpu.pprof"
	}
	cfg, probs := config.Parse(config.Merge(nil, os.Environ()))
	for _, p := range probs {
		fmt.Fprintln(os.Stderr, p.String())
	}
	if config.HasErrors(probs) {
		return errors.New("configuration errors")
	}
	log, err := obs.NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sig)
	profErr := make(chan error, 1)
	block := os.Getenv("PPROF_BLOCK") == "1"
	var heapAfter time.Duration
	if v := os.Getenv("PPROF_HEAP_AFTER"); v != "" {
		if heapAfter, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("PPROF_HEAP_AFTER: %w", err)
		}
	}
	go func() { profErr <- profileOnSignal(ctx, sig, out, block, heapAfter) }()

	runErr := app.Run(ctx, cfg, log)
	stop()
	if err := <-profErr; err != nil {
		return err
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// profileOnSignal starts the CPU profile on SIGUSR1 and writes it on
// SIGUSR2 (or when ctx ends while profiling); with block, the blocking
// and mutex profiles of the same window too.
func profileOnSignal(ctx context.Context, sig <-chan os.Signal, path string, block bool, heapAfter time.Duration) error {
	var f *os.File
	finish := func() error {
		if f == nil {
			return nil
		}
		pprof.StopCPUProfile()
		err := f.Close()
		f = nil
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if block {
			for _, name := range []string{"block", "mutex"} {
				if err := writeProfile(name, path+"."+name); err != nil {
					return err
				}
			}
			runtime.SetBlockProfileRate(0)
			runtime.SetMutexProfileFraction(0)
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return finish()
		case s := <-sig:
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				var err error
				if f, err = os.Create(path); err != nil {
					return fmt.Errorf("profile: %w", err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					f.Close()
					return fmt.Errorf("profile: %w", err)
				}
				if heapAfter > 0 {
					time.AfterFunc(heapAfter, func() {
						runtime.GC() // inuse figures are as of the last GC
						if err := writeProfile("heap", path+".heap"); err != nil {
							fmt.Fprintln(os.Stderr, "petrelprof:", err)
						}
					})
				}
				if block {
					// Every blocking event of 10 µs or more is sampled, and
					// one mutex contention in 10.
					runtime.SetBlockProfileRate(10000)
					runtime.SetMutexProfileFraction(10)
				}
			case s == syscall.SIGUSR2:
				if err := finish(); err != nil {
					return err
				}
			}
		}
	}
}

// writeProfile writes the named runtime profile to path.
func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
