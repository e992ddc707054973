//go:build race

package web

// raceEnabled: the race detector slows SQLite (pure Go) about 50 times.
const raceEnabled = true
