package main

// FerretDB v1 updates a document by reading it, applying the change in Go and writing the
// whole document back, with nothing in between that stops a second writer (both of its
// backends, SQLite and PostgreSQL, do this). Two updates of one document at the same moment
// therefore keep only one of the changes, a conditional update (`{state: "free"}` → `taken`)
// can be won by several callers, and an `update_many` writes stale copies over every
// `update_one` that ran meanwhile. MongoDB applies each update to a document atomically, and
// Mailsync relies on that (tests/integration/test_store_semantics.py states what exactly).
//
// serializeUpdates restores it: the program listens for clients itself and passes each
// command on to FerretDB over a private Unix socket. While a read-modify-write command
// (update, findAndModify, delete) runs it holds a lock on each document its filters name by
// `_id` (`{_id: x, ...}`: most of Mailsync's writes), or on the whole collection when a filter
// may match several documents (`update_many`, a filter on other fields). Writes of different
// documents still run at once; inserts, reads and every other command pass without waiting (a
// unique index decides insert races in FerretDB itself).

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
)

const (
	opMsg            = 2013
	maxMessageBytes  = 48 << 20 // MongoDB's own limit for one wire message
	msgChecksum      = 1 << 0
	msgMoreToCome    = 1 << 1
	headerBytes      = 16
	bsonStringType   = 0x02
	bsonDocumentType = 0x03
	bsonArrayType    = 0x04
	bsonRegexType    = 0x0B
)

// writeCommands read documents and write them back: the statements of the filters they carry.
var writeCommands = map[string]string{"update": "updates", "delete": "deletes", "findandmodify": ""}

// scope is what one write command may touch: the documents with these `_id`s, or any document
// of the collection (whole) when a filter does not name one `_id`.
type scope struct {
	namespace string
	ids       []string
	whole     bool
}

// collectionLock lets writes of different documents run at once and one document's writes
// (and any write that may touch many documents) one at a time.
type collectionLock struct {
	whole sync.RWMutex
	mu    sync.Mutex
	ids   map[string]*documentLock
}

type documentLock struct {
	sync.Mutex
	users int
}

type collectionLocks struct {
	mu    sync.Mutex
	locks map[string]*collectionLock
}

func (c *collectionLocks) of(namespace string) *collectionLock {
	c.mu.Lock()
	defer c.mu.Unlock()

	lock, ok := c.locks[namespace]
	if !ok {
		lock = &collectionLock{ids: map[string]*documentLock{}}
		c.locks[namespace] = lock
	}

	return lock
}

// acquire locks what s may touch and returns the function that releases it.
func (c *collectionLocks) acquire(s scope) func() {
	lock := c.of(s.namespace)
	if s.whole || len(s.ids) == 0 {
		lock.whole.Lock()
		return lock.whole.Unlock
	}

	lock.whole.RLock()

	ids := slices.Compact(slices.Sorted(slices.Values(s.ids))) // one order: no deadlock
	held := make([]*documentLock, 0, len(ids))

	for _, id := range ids {
		lock.mu.Lock()
		document, ok := lock.ids[id]
		if !ok {
			document = new(documentLock)
			lock.ids[id] = document
		}
		document.users++
		lock.mu.Unlock()

		document.Lock()
		held = append(held, document)
	}

	return func() {
		for i, document := range held {
			document.Unlock()
			lock.mu.Lock()
			if document.users--; document.users == 0 {
				delete(lock.ids, ids[i])
			}
			lock.mu.Unlock()
		}
		lock.whole.RUnlock()
	}
}

// serializeUpdates accepts clients on listener and relays each to a new connection to backend.
func serializeUpdates(listener net.Listener, dialBackend func() (net.Conn, error)) error {
	locks := &collectionLocks{locks: map[string]*collectionLock{}}

	for {
		client, err := listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}

			return err
		}

		go func() {
			defer client.Close()

			backend, err := dialBackend()
			if err != nil {
				log.Printf("atomic updates: connect to ferretdb: %v", err)
				return
			}
			defer backend.Close()

			if err := relay(client, backend, locks); err != nil && !errors.Is(err, io.EOF) {
				log.Printf("atomic updates: %v", err)
			}
		}()
	}
}

// relay passes requests from client to backend and their replies back, one exchange at a time
// (drivers never pipeline on one connection), holding the collection's lock around writes.
func relay(client, backend net.Conn, locks *collectionLocks) error {
	fromClient := bufio.NewReaderSize(client, 64<<10)
	fromBackend := bufio.NewReaderSize(backend, 64<<10)

	for {
		request, err := readMessage(fromClient)
		if err != nil {
			return err
		}

		release := func() {}
		if s, ok := writeScope(request); ok {
			release = locks.acquire(s)
		}

		err = exchange(request, client, backend, fromBackend)
		release()

		if err != nil {
			return err
		}
	}
}

// exchange sends one request and relays every reply it has (none if the client asked for none,
// several for an exhaust cursor).
func exchange(request []byte, client, backend net.Conn, fromBackend *bufio.Reader) error {
	if _, err := backend.Write(request); err != nil {
		return err
	}

	if moreToCome(request) {
		return nil
	}

	for {
		reply, err := readMessage(fromBackend)
		if err != nil {
			return err
		}

		if _, err := client.Write(reply); err != nil {
			return err
		}

		if !moreToCome(reply) {
			return nil
		}
	}
}

func readMessage(r *bufio.Reader) ([]byte, error) {
	header, err := r.Peek(headerBytes)
	if err != nil {
		return nil, err
	}

	length := int(int32(binary.LittleEndian.Uint32(header)))
	if length < headerBytes || length > maxMessageBytes {
		return nil, fmt.Errorf("wire message of %d bytes", length)
	}

	message := make([]byte, length)
	if _, err := io.ReadFull(r, message); err != nil {
		return nil, err
	}

	return message, nil
}

func isOpMsg(message []byte) bool {
	return len(message) >= headerBytes+4 && binary.LittleEndian.Uint32(message[12:16]) == opMsg
}

func moreToCome(message []byte) bool {
	return isOpMsg(message) && binary.LittleEndian.Uint32(message[16:20])&msgMoreToCome != 0
}

// writeScope is what message may touch when it is a read-modify-write command.
func writeScope(message []byte) (scope, bool) {
	if !isOpMsg(message) {
		return scope{}, false
	}

	end := len(message)
	if binary.LittleEndian.Uint32(message[16:20])&msgChecksum != 0 {
		end -= 4
	}

	var (
		body      []byte
		sequences = map[string][]byte{}
	)

	for at := headerBytes + 4; at < end; {
		kind := message[at]
		at++

		size, ok := int32At(message, at, end)
		if !ok || size < 4 {
			return scope{}, false
		}

		section := message[at : at+size]
		at += size

		if kind == 0 {
			body = section
			continue
		}

		// A document sequence: its size, the field it stands for, then documents.
		nameEnd := indexByte(section, 4, 0)
		if nameEnd < 0 {
			return scope{}, false
		}
		sequences[string(section[4:nameEnd])] = section[nameEnd+1:]
	}

	if body == nil {
		return scope{}, false
	}

	return commandScope(body, sequences)
}

// commandScope reads the command's name, collection, `$db` and the `_id` each filter names.
func commandScope(body []byte, sequences map[string][]byte) (scope, bool) {
	var (
		command, collection, db string
		statements              [][]byte // the filters
		isWrite, first, whole   = false, true, false
	)

	parsed := elements(body, func(kind byte, key string, value []byte) bool {
		if first {
			first = false
			command = strings.ToLower(key)
			_, isWrite = writeCommands[command]
			if !isWrite || kind != bsonStringType {
				isWrite = false
				return false
			}
			collection = bsonString(value)
			return true
		}

		switch {
		case key == "$db" && kind == bsonStringType:
			db = bsonString(value)
		case command == "findandmodify" && key == "query" && kind == bsonDocumentType:
			statements = append(statements, value)
		case key == writeCommands[command] && kind == bsonArrayType:
			whole = whole || !elements(value, func(kind byte, _ string, statement []byte) bool {
				if kind != bsonDocumentType {
					return false
				}
				statements = append(statements, filterOf(statement))
				return true
			})
		}

		return true
	})

	if !isWrite {
		return scope{}, false
	}

	if sequence, ok := sequences[writeCommands[command]]; ok && command != "findandmodify" {
		for len(sequence) > 0 {
			size, ok := int32At(sequence, 0, len(sequence))
			if !ok || size < 5 {
				whole = true
				break
			}
			statements = append(statements, filterOf(sequence[:size]))
			sequence = sequence[size:]
		}
	}

	s := scope{namespace: db + "." + collection, whole: whole || !parsed || len(statements) == 0}
	for _, filter := range statements {
		id, ok := idOf(filter)
		if !ok {
			s.whole = true
			break
		}
		s.ids = append(s.ids, id)
	}

	return s, true
}

// filterOf is the `q` of an update or delete statement (nil when absent).
func filterOf(statement []byte) []byte {
	var filter []byte
	elements(statement, func(kind byte, key string, value []byte) bool {
		if key == "q" && kind == bsonDocumentType {
			filter = value
			return false
		}
		return true
	})
	return filter
}

// idOf is the `_id` a filter requires equal to a plain value (the bytes of its type and value):
// such a filter matches that one document at most.
func idOf(filter []byte) (string, bool) {
	var id string
	elements(filter, func(kind byte, key string, value []byte) bool {
		if key != "_id" {
			return true
		}
		if kind != bsonDocumentType && kind != bsonArrayType && kind != bsonRegexType {
			id = string(append([]byte{kind}, value...))
		}
		return false
	})
	return id, id != ""
}

// elements calls fn with each element of a BSON document until fn returns false; it returns
// false when the document cannot be read.
func elements(document []byte, fn func(kind byte, key string, value []byte) bool) bool {
	if len(document) < 5 {
		return false
	}

	for at := 4; at < len(document)-1; {
		kind := document[at]
		at++

		keyEnd := indexByte(document, at, 0)
		if keyEnd < 0 {
			return false
		}

		key := string(document[at:keyEnd])
		at = keyEnd + 1

		size, ok := valueSize(document, kind, at)
		if !ok {
			return false
		}

		if !fn(kind, key, document[at:at+size]) {
			return true
		}

		at += size
	}

	return true
}

// valueSize is the length in bytes of a BSON value of type kind starting at document[at].
func valueSize(document []byte, kind byte, at int) (int, bool) {
	fixed := map[byte]int{0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0x7F: 0, 0xFF: 0}
	if size, ok := fixed[kind]; ok {
		return size, at+size <= len(document)
	}

	switch kind {
	case bsonStringType, 0x0D, 0x0E: // string, JavaScript, symbol: int32 length, bytes, NUL
		size, ok := int32At(document, at, len(document))
		return size + 4, ok && at+size+4 <= len(document)
	case bsonDocumentType, bsonArrayType, 0x0F: // document, array, code with scope: length counts itself
		return int32At(document, at, len(document))
	case bsonRegexType: // pattern and options, two C strings
		patternEnd := indexByte(document, at, 0)
		if patternEnd < 0 {
			return 0, false
		}
		optionsEnd := indexByte(document, patternEnd+1, 0)
		return optionsEnd + 1 - at, optionsEnd >= 0
	case 0x05: // binary: int32 length, subtype, bytes
		size, ok := int32At(document, at, len(document))
		return size + 5, ok && at+size+5 <= len(document)
	}

	return 0, false
}

func int32At(b []byte, at, end int) (int, bool) {
	if at+4 > end {
		return 0, false
	}

	size := int(int32(binary.LittleEndian.Uint32(b[at : at+4])))

	return size, size >= 0 && at+size <= end
}

func indexByte(b []byte, from int, c byte) int {
	for i := from; i < len(b); i++ {
		if b[i] == c {
			return i
		}
	}

	return -1
}

func bsonString(value []byte) string {
	if len(value) < 5 {
		return ""
	}

	return string(value[4 : len(value)-1])
}
