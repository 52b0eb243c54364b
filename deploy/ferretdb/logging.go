package main

// FerretDB logs every SQL statement it runs at debug level through `logger.With(args...)`,
// whose arguments are the statement's parameters: for an insert, each document as JSON. The
// standard handlers format such attributes the moment `With` is called, whether or not the
// record is then logged, and at the default level it never is; on inserts that formatting
// took about a tenth of the program's CPU. lazyAttrs keeps `With`'s attributes (and groups)
// unformatted until a record is actually handled.

import (
	"context"
	"log/slog"
)

type lazyAttrs struct {
	base slog.Handler
	// applied to base, in order, when a record is handled: attributes, or a group's name
	steps []func(slog.Handler) slog.Handler
}

func (h lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level)
}

func (h lazyAttrs) Handle(ctx context.Context, record slog.Record) error {
	handler := h.base
	for _, step := range h.steps {
		handler = step(handler)
	}

	return handler.Handle(ctx, record)
}

func (h lazyAttrs) with(step func(slog.Handler) slog.Handler) lazyAttrs {
	steps := make([]func(slog.Handler) slog.Handler, len(h.steps), len(h.steps)+1)
	copy(steps, h.steps)

	return lazyAttrs{base: h.base, steps: append(steps, step)}
}

func (h lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}

	return h.with(func(handler slog.Handler) slog.Handler { return handler.WithAttrs(attrs) })
}

func (h lazyAttrs) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}

	return h.with(func(handler slog.Handler) slog.Handler { return handler.WithGroup(name) })
}
