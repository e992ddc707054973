// Package imapmsg holds the IMAP views of one stored message as pure
// functions over its bytes (an io.ReaderAt and a size): the MIME
// structure behind ENVELOPE, BODYSTRUCTURE and BODY (RFC 9051 7.5.2),
// section extraction for BODY[...] (RFC 9051 6.4.5) and the SEARCH key
// tree with its matcher (RFC 9051 6.4.4, RFC 7162 3.1.5).
//
// Parse scans a message once, line by line, and returns a Structure: part
// boundaries as byte offsets plus the few header fields IMAP reports. It
// keeps no reference to the message, so callers can cache it per stored
// body and later cut sections out of the same bytes with Extract.
//
// Malformed MIME never fails: a part whose Content-Type cannot be parsed
// is text/plain, a multipart without a usable boundary gets one empty
// part, and a multipart whose closing boundary is missing runs to the
// end of its parent, as Dovecot does.
package imapmsg
