package cli

// queueCommands are `petrel queue ...` (the outbound issue).
func queueCommands() []*command { return nil }
