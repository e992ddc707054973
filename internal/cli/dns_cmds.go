package cli

// dnsCommands are `petrel dns DOMAIN` and `petrel dkim DOMAIN` (the
// outbound issue).
func dnsCommands() []*command { return nil }
