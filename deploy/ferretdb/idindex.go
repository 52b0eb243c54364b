package main

// FerretDB v1's SQLite backend finds documents by `_ferretdb_sjson->'$._id'`, but the unique
// index it creates for `_id` is on `_ferretdb_sjson->"_id"`. SQLite uses an expression index
// only for the identical expression, so every find, update and delete by `_id` reads the whole
// table: an update of one document costs more the larger its collection grows (12 ms at 5,000
// small documents, 26 ms at 5,000 documents of 3 KiB). keepIDIndexes gives every collection
// table an index on the expression the queries use, which makes those look-ups constant time.
// FerretDB never sees the extra index (its own list of indexes lives in
// `_ferretdb_collections`), and dropping a collection or database drops it with the table.

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses
)

const idIndexSuffix = "_mailsync_id_lookup"

// keepIDIndexes indexes new collection tables in every database under dataDir until ctx ends.
func keepIDIndexes(ctx context.Context, dataDir string, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()

	for {
		files, err := filepath.Glob(filepath.Join(dataDir, "*.sqlite"))
		if err != nil {
			log.Printf("id indexes: list databases: %v", err)
		}

		for _, file := range files {
			if err := indexDatabase(ctx, file); err != nil && ctx.Err() == nil {
				log.Printf("id indexes: %s: %v", filepath.Base(file), err)
			}
		}

		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// indexDatabase creates the missing `_id` look-up indexes of one database file.
func indexDatabase(ctx context.Context, file string) error {
	// mode=rw: a database dropped since the listing is not created again.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()

	tables, err := unindexedTables(ctx, db)
	if err != nil {
		return err
	}

	for _, table := range tables {
		stmt := fmt.Sprintf(
			`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`,
			table+idIndexSuffix, table,
		)
		if _, err := db.ExecContext(ctx, stmt); err != nil && !strings.Contains(err.Error(), "no such table") {
			return fmt.Errorf("index %s: %w", table, err)
		}
	}

	return nil
}

// unindexedTables lists the collection tables that have no look-up index yet.
func unindexedTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT c.table_name FROM _ferretdb_collections c
		WHERE NOT EXISTS (
			SELECT 1 FROM sqlite_master m WHERE m.type = 'index' AND m.name = c.table_name || ?
		)`, idIndexSuffix)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, nil // a database FerretDB has not initialised yet
		}
		return nil, err
	}
	defer rows.Close()

	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			return nil, err
		}
		tables = append(tables, table)
	}

	return tables, rows.Err()
}
