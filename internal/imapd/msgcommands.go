package imapd

// messageCommands are FETCH and SEARCH (and their UID forms), merged into
// the command table by commandTable.
func messageCommands() map[string]commandSpec { return nil }
