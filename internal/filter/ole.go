package filter

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode/utf16"
)

// oleMagic starts every OLE2 compound file (MS-CFB 2.2).
var oleMagic = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}

// MS-CFB special sector numbers.
const (
	oleEndOfChain = 0xFFFFFFFE
	oleFreeSect   = 0xFFFFFFFF
	oleMaxSectors = 1 << 20 // walking bound for corrupt chains
)

// oleHasMacros reports whether an OLE2 compound file (a .doc, .xls, .ppt,
// or an embedded object) holds a VBA project: a storage named "VBA",
// "_VBA_PROJECT_CUR" (Excel) or "Macros" (Word), or the "_VBA_PROJECT"
// stream (MS-OVBA 2.2). It reads the directory through the FAT as MS-CFB
// lays it out; a file that does not parse is not reported.
func oleHasMacros(data []byte) bool {
	names := oleDirNames(data)
	for _, n := range names {
		switch strings.ToUpper(n) {
		case "VBA", "_VBA_PROJECT_CUR", "_VBA_PROJECT", "MACROS":
			return true
		}
	}
	return false
}

// oleDirNames lists the names of the directory entries of a compound file.
func oleDirNames(data []byte) []string {
	if len(data) < 512 || !bytes.HasPrefix(data, oleMagic) {
		return nil
	}
	le := binary.LittleEndian
	shift := le.Uint16(data[0x1E:])
	if shift != 9 && shift != 12 {
		return nil
	}
	secSize := 1 << shift
	sector := func(n uint32) []byte {
		off := (int64(n) + 1) * int64(secSize)
		if n >= oleEndOfChain-16 || off+int64(secSize) > int64(len(data)) {
			return nil
		}
		return data[off : off+int64(secSize)]
	}
	// The FAT sectors: the first 109 in the header's DIFAT, the rest in
	// the DIFAT chain.
	numFAT := le.Uint32(data[0x2C:])
	var fatSecs []uint32
	for i := 0; i < 109 && uint32(len(fatSecs)) < numFAT; i++ {
		fatSecs = append(fatSecs, le.Uint32(data[0x4C+4*i:]))
	}
	difat := le.Uint32(data[0x44:])
	for guard := 0; uint32(len(fatSecs)) < numFAT && difat < oleEndOfChain-16 && guard < oleMaxSectors; guard++ {
		s := sector(difat)
		if s == nil {
			break
		}
		per := secSize/4 - 1
		for i := 0; i < per && uint32(len(fatSecs)) < numFAT; i++ {
			fatSecs = append(fatSecs, le.Uint32(s[4*i:]))
		}
		difat = le.Uint32(s[4*per:])
	}
	var fat []uint32
	for _, fs := range fatSecs {
		s := sector(fs)
		if s == nil {
			break
		}
		for i := 0; i+4 <= len(s); i += 4 {
			fat = append(fat, le.Uint32(s[i:]))
		}
	}
	var names []string
	seen := map[uint32]bool{}
	for dir := le.Uint32(data[0x30:]); dir < oleEndOfChain-16 && !seen[dir] && len(seen) < oleMaxSectors; {
		seen[dir] = true
		s := sector(dir)
		if s == nil {
			break
		}
		for off := 0; off+128 <= len(s); off += 128 {
			e := s[off : off+128]
			nlen := int(le.Uint16(e[0x40:]))
			typ := e[0x42]
			if typ == 0 || nlen < 2 || nlen > 64 {
				continue
			}
			u := make([]uint16, 0, nlen/2-1)
			for i := 0; i+1 < nlen-2; i += 2 {
				u = append(u, le.Uint16(e[i:]))
			}
			names = append(names, string(utf16.Decode(u)))
		}
		if int(dir) >= len(fat) {
			break
		}
		dir = fat[dir]
	}
	return names
}
