package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The CPU each part of the benchmark uses over the big run, read from /proc (Linux): whether the
// machine's cores were busy, and with what. Times in /proc are in USER_HZ, 100 a second on Linux.
const userHZ = 100

// cpuSample holds cumulative CPU times at one moment.
type cpuSample struct {
	at               time.Time
	postgres, worker time.Duration
	self             time.Duration // this process: the Temporal server, and NATS with -delivery
	busy, idle       time.Duration // the whole machine, every core
	cores            int
}

// cpuUse is what the parts used between two samples.
type cpuUse struct {
	wall                                time.Duration
	postgres, worker, self, other, idle time.Duration
	cores                               int
	selfName                            string // what this process runs besides the benchmark
}

func (u cpuUse) String() string {
	s := func(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }
	return fmt.Sprintf("%d cores × %s s = %s core-s: PostgreSQL %s, worker(s) %s, this process (%s) %s, other %s, idle %s",
		u.cores, s(u.wall), s(time.Duration(u.cores)*u.wall), s(u.postgres), s(u.worker), u.selfName, s(u.self), s(u.other), s(u.idle))
}

// to is what was used from a to b; selfName says what this process runs.
func (a cpuSample) to(b cpuSample, selfName string) cpuUse {
	u := cpuUse{
		wall: b.at.Sub(a.at), cores: b.cores, selfName: selfName,
		postgres: b.postgres - a.postgres, worker: b.worker - a.worker, self: b.self - a.self,
		idle: b.idle - a.idle,
	}
	u.other = max(0, (b.busy-a.busy)-u.postgres-u.worker-u.self)
	return u
}

// cpuProbe finds what to sample: the PostgreSQL server behind dbURL when it runs on this machine
// (the parent of a backend: the postmaster, whose reaped children's times it accumulates), and
// the workers.
type cpuProbe struct {
	postmaster int // 0 when PostgreSQL is not on this machine
	workers    []int
}

func newCPUProbe(ctx context.Context, dbURL string, workers []int) cpuProbe {
	p := cpuProbe{workers: workers}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return p
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var backend int
	if conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend) != nil {
		return p
	}
	if f, err := procStat(backend); err == nil {
		p.postmaster, _ = strconv.Atoi(f[1])
	}
	return p
}

// sample reads the cumulative times now; it fails where /proc is missing.
func (p cpuProbe) sample() (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(stat), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 5 && f[0] == "cpu":
			for i, v := range f[1:] {
				n, _ := strconv.ParseInt(v, 10, 64)
				d := ticks(n)
				switch i {
				case 3, 4: // idle, iowait
					s.idle += d
				case 8, 9: // guest time, counted in user already
				default:
					s.busy += d
				}
			}
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			s.cores++
		}
	}
	if f, err := procStat(os.Getpid()); err == nil {
		s.self = procTime(f, false)
	}
	for _, pid := range p.workers {
		if f, err := procStat(pid); err == nil {
			s.worker += procTime(f, false)
		}
	}
	if p.postmaster == 0 {
		return s, nil
	}
	if f, err := procStat(p.postmaster); err == nil {
		s.postgres = procTime(f, true)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if f, err := procStat(pid); err == nil && f[1] == strconv.Itoa(p.postmaster) {
			s.postgres += procTime(f, false)
		}
	}
	return s, nil
}

// procStat returns the fields of /proc/pid/stat after the command's name: f[0] is the state,
// f[1] the parent's pid, f[11] and f[12] utime and stime, f[13] and f[14] those of reaped children.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f, nil
}

func procTime(f []string, children bool) time.Duration {
	var n int64
	fields := []int{11, 12}
	if children {
		fields = append(fields, 13, 14)
	}
	for _, i := range fields {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return ticks(n)
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / userHZ }
