package postgres

import (
	"hash/maphash"
	"slices"

	"github.com/txflow/txflow/txn"
)

// KeyHashes tells, from a 64-bit hash of each line's key, whether the lines of a run are all under
// distinct keys, so that its settlement need not look for duplicates (FileFacts.Distinct): at
// 1,000,000 lines that search is a hash aggregate over the whole run, more than a second of
// PostgreSQL alone while the rest of the pipeline waits. The key hashed is the one LoadBatch stores
// the line under: its account (the run's when it has none) and the NFC form of its id. Equal keys
// have equal hashes, so Distinct never says distinct of a run with a duplicate; two keys whose
// hashes collide only make the settlement look for duplicates as it would without a KeyHashes.
//
// It holds 8 bytes per line up to its limit, and nothing more past it: a run with more lines is
// not known to be distinct. The zero value and nil are not usable; use NewKeyHashes.
type KeyHashes struct {
	seed   maphash.Seed
	limit  int
	hashes []uint64
	over   bool
}

// NewKeyHashes returns an empty KeyHashes for at most limit lines, with room for expect of them
// (at most limit): growing by copies would leave several times its size to collect.
func NewKeyHashes(limit, expect int) *KeyHashes {
	return &KeyHashes{seed: maphash.MakeSeed(), limit: limit, hashes: make([]uint64, 0, max(0, min(expect, limit)))}
}

// Add records the key of r, a line of a run whose account is runAccount (the account BeginIngest
// recorded: "" is txn.DefaultAccount).
func (k *KeyHashes) Add(r *txn.Record, runAccount string) {
	if k.over {
		return
	}
	if len(k.hashes) >= k.limit {
		k.over, k.hashes = true, nil
		return
	}
	if runAccount == "" {
		runAccount = txn.DefaultAccount
	}
	id, _ := nfcKey(cleanText(r.ID))
	var h maphash.Hash
	h.SetSeed(k.seed)
	// No account holds a NUL byte once stored (cleanText): the separator keeps pairs apart.
	h.WriteString(lineAccount(r.Account, runAccount))
	h.WriteByte(0)
	h.WriteString(id)
	k.hashes = append(k.hashes, h.Sum64())
}

// Distinct reports whether every line added has a key of its own: false past the limit or when
// two hashes are equal. It sorts the hashes; Add may follow.
func (k *KeyHashes) Distinct() bool {
	if k.over {
		return false
	}
	slices.Sort(k.hashes)
	for i := 1; i < len(k.hashes); i++ {
		if k.hashes[i] == k.hashes[i-1] {
			return false
		}
	}
	return true
}
