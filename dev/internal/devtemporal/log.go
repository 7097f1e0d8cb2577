package devtemporal

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// levelOff is above every slog level; a logger at this level writes nothing.
const levelOff = slog.Level(100)

// parseLogLevel maps a level name to a slog level. The empty string means
// "warn"; "off" and "never" silence the server entirely.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return slog.LevelWarn, nil
	case "off", "never", "none":
		return levelOff, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("invalid log level %q (want debug, info, warn, error or off): %w", s, err)
	}
	return l, nil
}

// serverLogger adapts a *slog.Logger to the Temporal server's log.Logger.
//
// It drops warnings that are expected in this setup, and once stopping is set
// it drops everything below error: while shutting down, the server's internal
// clients and workers warn about every connection their peers close.
type serverLogger struct {
	log      *slog.Logger
	stopping *atomic.Bool
}

// expectedWarnings are prefixes of server warnings that describe this
// deliberate configuration rather than a problem.
var expectedWarnings = []string{
	// The frontend HTTP API (and with it Nexus) is not enabled.
	"HTTP API port has not been set.",
}

var (
	_ log.Logger      = serverLogger{}
	_ log.SLogWrapper = serverLogger{}
)

func (l serverLogger) Debug(msg string, tags ...tag.Tag) { l.emit(slog.LevelDebug, msg, tags) }
func (l serverLogger) Info(msg string, tags ...tag.Tag)  { l.emit(slog.LevelInfo, msg, tags) }
func (l serverLogger) Warn(msg string, tags ...tag.Tag)  { l.emit(slog.LevelWarn, msg, tags) }
func (l serverLogger) Error(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }

// DPanic, Panic and Fatal are logged as errors: an embedded server must never
// take the host process down.
func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }
func (l serverLogger) Panic(msg string, tags ...tag.Tag)  { l.emit(slog.LevelError, msg, tags) }
func (l serverLogger) Fatal(msg string, tags ...tag.Tag)  { l.emit(slog.LevelError, msg, tags) }

// SLog implements log.SLogWrapper.
func (l serverLogger) SLog() *slog.Logger { return l.log }

func (l serverLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) || level < slog.LevelError && l.stopping.Load() {
		return
	}
	if level == slog.LevelWarn {
		for _, p := range expectedWarnings {
			if strings.HasPrefix(msg, p) {
				return
			}
		}
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// slogWithMinLevel returns a logger writing to l's handler that drops records
// below min, whatever the handler's own level.
func slogWithMinLevel(l *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(minLevelHandler{inner: l.Handler(), min: min})
}

type minLevelHandler struct {
	inner slog.Handler
	min   slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.min && h.inner.Enabled(ctx, level)
}

func (h minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.inner.Handle(ctx, r)
}

func (h minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{inner: h.inner.WithAttrs(attrs), min: h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{inner: h.inner.WithGroup(name), min: h.min}
}
