package config

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeSettingsTable keeps the README's settings table equal to what
// Parse really reads. Regenerate it with: petrel config-check --list --markdown
func TestReadmeSettingsTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- settings:start -->\n", "<!-- settings:end -->"
	s := string(readme)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", start, end)
	}
	if got, want := s[i+len(start):j], MarkdownTable(); got != want {
		t.Errorf("README.md settings table is out of date; regenerate it with `petrel config-check --list --markdown`")
	}
	for _, d := range Known() {
		if !strings.Contains(s, "`"+d.Name+"`") {
			t.Errorf("README.md does not mention %s", d.Name)
		}
	}
}
