package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// writeMaildir writes the n messages the fill delivers to Petrel (the same
// generator, seed and order) as files in dir/cur, a Maildir that another
// server indexes on its first sync. It prints their count and bytes.
func writeMaildir(dir string, n, size int) error {
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	g := newGen(1)
	t0 := time.Now()
	base := t0.Unix() - int64(n)
	var total int64
	for i := 0; i < n; i++ {
		msg := g.message(i, size)
		name := fmt.Sprintf("%d.M%dP%d.ftsbench,S=%d:2,", base+int64(i), i, os.Getpid(), len(msg))
		if err := os.WriteFile(filepath.Join(dir, "cur", name), msg, 0o600); err != nil {
			return err
		}
		total += int64(len(msg))
	}
	fmt.Printf("maildir: %d messages, %d bytes (%.1f MiB) in %s, %.1f s\n", n, total, float64(total)/(1<<20), dir, time.Since(t0).Seconds())
	return nil
}

// treeCPU is the CPU time in seconds (the scheduler's nanosecond count,
// /proc/PID/task/TID/schedstat) of process root and every live
// descendant; 0 when root is 0. Children reaped meanwhile are not counted.
func treeCPU(root int) float64 {
	if root == 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	var ns int64
	for pid := range parent {
		q := pid
		for q > 1 && q != root {
			q = parent[q]
		}
		if q != root {
			continue
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			if f := strings.Fields(string(b)); len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				ns += v
			}
		}
	}
	return float64(ns) / 1e9
}
