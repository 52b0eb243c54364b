// Command ferretdb runs an embedded FerretDB (MongoDB wire protocol) over SQLite (or
// PostgreSQL) for local development and CI, where MongoDB itself is not installable.
//
// Clients connect to -listen; each command is passed on to FerretDB over a private Unix socket
// in the data directory, with updates of one collection applied one at a time
// (atomic_updates.go), so that every update of a document is atomic as on MongoDB.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const gcPercent = 300

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data", "./data", "directory for the SQLite databases and the socket")
	postgresURL := flag.String("postgresql-url", "", "store in this PostgreSQL database instead of SQLite")
	pprofAddr := flag.String("pprof", "", "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060")
	flag.Parse()

	// FerretDB allocates freely for every command: at Go's default GC target (100) collecting
	// took about a twentieth of the program's CPU in the backfill benchmark. A local store can
	// spend the memory instead; GOGC in the environment still decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}

	if *pprofAddr != "" {
		go func() { log.Printf("pprof: %v", http.ListenAndServe(*pprofAddr, nil)) }()
	}

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		log.Fatalf("create data directory: %v", err)
	}

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen on %s: %v", *listen, err)
	}

	// Listening first: a second copy started by mistake stops here, before the socket.
	socket := filepath.Join(*dataDir, "ferretdb.sock")
	if err := os.Remove(socket); err != nil && !os.IsNotExist(err) {
		log.Fatalf("remove stale socket: %v", err)
	}

	config := &ferretdb.Config{
		Logger:   slog.New(lazyAttrs{base: slog.Default().Handler()}),
		Listener: ferretdb.ListenerConfig{Unix: socket},
		Handler:  "sqlite",
		// A multi-row insert in a transaction keeps a statement journal to undo itself on a
		// duplicate key; past 64 KiB SQLite spilled it to a temporary file, written for every
		// such insert and thrown away. In memory it costs no system calls. (FerretDB adds its
		// own pragmas: busy_timeout, journal_mode(wal), auto_vacuum.)
		SQLiteURL: "file:" + *dataDir + "/?_pragma=temp_store(memory)",
	}
	if *postgresURL != "" {
		config.Handler, config.SQLiteURL, config.PostgreSQLURL = "postgresql", "", *postgresURL
	}

	server, err := ferretdb.New(config)
	if err != nil {
		log.Fatalf("configure ferretdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *postgresURL == "" {
		go keepIDIndexes(ctx, *dataDir, time.Second)
	}

	go func() {
		<-ctx.Done()
		listener.Close()
	}()

	go func() {
		dial := func() (net.Conn, error) { return net.Dial("unix", socket) }
		if err := serializeUpdates(listener, dial); err != nil {
			log.Fatalf("serve clients: %v", err)
		}
	}()

	log.Printf("ferretdb (%s) listening on %s", config.Handler, *listen)
	server.Run(ctx)
}
