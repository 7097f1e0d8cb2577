//go:build !linux

package starterapp

import "os"

// fileIsTerminal takes a character device other than the null device for a terminal.
func fileIsTerminal(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}
