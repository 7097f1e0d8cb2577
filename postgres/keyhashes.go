package postgres

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"io"
	"os"
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
// It holds at most 8 bytes per line for memLines lines; past them it writes the hashes it holds,
// sorted, to a temporary file and starts again, and Distinct merges those runs. Past maxLines
// lines, or when the file cannot be written, it gives up: the run is not known to be distinct.
// Close removes the file. The zero value and nil are not usable; use NewKeyHashes.
type KeyHashes struct {
	seed     maphash.Seed
	memLines int
	maxLines int64
	hashes   []uint64
	lines    int64   // lines added
	spilled  []int64 // the length of each sorted run in the file, in order
	file     *os.File
	w        *bufio.Writer
	// notDistinct: a duplicate already found, more than maxLines lines, or a file error; the
	// hashes are let go.
	notDistinct bool
}

// NewKeyHashes returns an empty KeyHashes that holds at most memLines hashes in memory, with room
// for expect of them (at most memLines: growing by copies would leave several times its size to
// collect), and gives up past maxLines lines.
func NewKeyHashes(memLines int, maxLines int64, expect int) *KeyHashes {
	return &KeyHashes{seed: maphash.MakeSeed(), memLines: max(memLines, 1), maxLines: maxLines,
		hashes: make([]uint64, 0, max(0, min(expect, memLines)))}
}

// Add records the key of r, a line of a run whose account is runAccount (the account BeginIngest
// recorded: "" is txn.DefaultAccount).
func (k *KeyHashes) Add(r *txn.Record, runAccount string) {
	if k.notDistinct {
		return
	}
	if k.lines++; k.lines > k.maxLines {
		k.giveUp()
		return
	}
	if len(k.hashes) == k.memLines {
		if k.spill(); k.notDistinct {
			return
		}
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

// sortRun sorts the hashes in memory and reports whether two of them are equal.
func (k *KeyHashes) sortRun() (dup bool) {
	slices.Sort(k.hashes)
	for i := 1; i < len(k.hashes); i++ {
		if k.hashes[i] == k.hashes[i-1] {
			return true
		}
	}
	return false
}

// spill writes the hashes in memory, sorted, to the file as one more run.
func (k *KeyHashes) spill() {
	if k.sortRun() {
		k.giveUp()
		return
	}
	if k.file == nil {
		f, err := os.CreateTemp("", "txflow-keys-*")
		if err != nil {
			k.giveUp()
			return
		}
		k.file, k.w = f, bufio.NewWriterSize(f, 1<<16)
	}
	var b [8]byte
	for _, h := range k.hashes {
		binary.LittleEndian.PutUint64(b[:], h)
		if _, err := k.w.Write(b[:]); err != nil {
			k.giveUp()
			return
		}
	}
	k.spilled = append(k.spilled, int64(len(k.hashes)))
	k.hashes = k.hashes[:0]
}

// Distinct reports whether every line added has a key of its own: false when two hashes are
// equal or when it gave up. It sorts the hashes; Add must not follow.
func (k *KeyHashes) Distinct() bool {
	if k.notDistinct {
		return false
	}
	if k.sortRun() {
		return false
	}
	if len(k.spilled) == 0 {
		return true
	}
	if err := k.w.Flush(); err != nil {
		return false
	}
	// Merge the runs in the file and the one in memory: equal hashes come out one after the other.
	runs := &hashRuns{}
	var off int64
	for _, n := range k.spilled {
		runs.add(&fileRun{r: bufio.NewReaderSize(io.NewSectionReader(k.file, off, n*8), 1<<16)})
		off += n * 8
	}
	runs.add(&memRun{hashes: k.hashes})
	if runs.err != nil {
		return false
	}
	heap.Init(runs)
	first := true
	var last uint64
	for runs.Len() > 0 {
		h := runs.items[0].head
		if !first && h == last {
			return false
		}
		first, last = false, h
		runs.next()
		if runs.err != nil {
			return false
		}
	}
	return true
}

// Close removes the temporary file, if any, and lets go of the hashes.
func (k *KeyHashes) Close() {
	k.hashes = nil
	if k.file != nil {
		_ = k.file.Close()
		_ = os.Remove(k.file.Name())
		k.file, k.w = nil, nil
	}
}

func (k *KeyHashes) giveUp() {
	k.notDistinct = true
	k.hashes = nil
}

// A run of sorted hashes.
type hashRun interface {
	// next returns the run's next hash; ok is false at its end.
	next() (h uint64, ok bool, err error)
}

type memRun struct{ hashes []uint64 }

func (r *memRun) next() (uint64, bool, error) {
	if len(r.hashes) == 0 {
		return 0, false, nil
	}
	h := r.hashes[0]
	r.hashes = r.hashes[1:]
	return h, true, nil
}

type fileRun struct{ r *bufio.Reader }

func (r *fileRun) next() (uint64, bool, error) {
	var b [8]byte
	if _, err := io.ReadFull(r.r, b[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, false, nil
		}
		return 0, false, err
	}
	return binary.LittleEndian.Uint64(b[:]), true, nil
}

// hashRuns is a min-heap of runs by their next hash.
type hashRuns struct {
	items []runHead
	err   error
}

type runHead struct {
	head uint64
	run  hashRun
}

// add adds a run by its first hash (none: an empty run, left out).
func (rs *hashRuns) add(r hashRun) {
	h, ok, err := r.next()
	if err != nil {
		rs.err = err
	}
	if ok {
		rs.items = append(rs.items, runHead{head: h, run: r})
	}
}

// next moves the smallest run to its next hash, or drops it at its end.
func (rs *hashRuns) next() {
	h, ok, err := rs.items[0].run.next()
	switch {
	case err != nil:
		rs.err = err
	case ok:
		rs.items[0].head = h
		heap.Fix(rs, 0)
	default:
		heap.Pop(rs)
	}
}

func (rs *hashRuns) Len() int           { return len(rs.items) }
func (rs *hashRuns) Less(i, j int) bool { return rs.items[i].head < rs.items[j].head }
func (rs *hashRuns) Swap(i, j int)      { rs.items[i], rs.items[j] = rs.items[j], rs.items[i] }
func (rs *hashRuns) Push(x any)         { rs.items = append(rs.items, x.(runHead)) }
func (rs *hashRuns) Pop() any {
	x := rs.items[len(rs.items)-1]
	rs.items = rs.items[:len(rs.items)-1]
	return x
}
