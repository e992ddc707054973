package config

import (
	"fmt"
	"strings"
)

// MarkdownTable renders Known() as the README's settings table (name,
// default, meaning, difference from Mailu).
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Setting | Default | Meaning | Differs from Mailu |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, d := range Known() {
		def := d.Default
		switch {
		case d.Secret && def != "":
			def = "(secret)"
		case def == "":
			def = "-"
		}
		differs := d.Differs
		if differs == "" {
			differs = "same"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", cell(d.Name), cell(def), cell(d.Meaning), cell(differs))
	}
	return b.String()
}
