package mongostore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/testenv"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/mongostore"
	"github.com/vigilhq/vigil/store/storetest"
)

// testURI returns the test server's URI for database db. FerretDB applies updates as
// read-modify-write without checking the document is unchanged, so concurrent updates of one
// document lose writes there (MongoDB's are atomic); one connection serialises them and keeps
// the suite's concurrency tests meaningful on FerretDB.
func testURI(t *testing.T, db string) string {
	u, err := url.Parse(testenv.MongoURI(t))
	if err != nil {
		t.Fatalf("VIGIL_TEST_MONGO_URI: %v", err)
	}
	u.Path = "/" + db
	q := u.Query()
	if strings.Contains(u.Host, "127.0.0.1") || strings.Contains(u.Host, "localhost") {
		q.Set("maxPoolSize", "1")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

type factory struct{ dbs map[store.Store]string }

func (f *factory) Open(t *testing.T) store.Store {
	b := make([]byte, 6)
	rand.Read(b)
	db := "vigiltest_" + hex.EncodeToString(b)
	s := f.open(t, db)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := mongostore.DropDatabase(ctx, testURI(t, db)); err != nil {
			t.Logf("dropping %s: %v", db, err)
		}
	})
	return s
}

func (f *factory) open(t *testing.T, db string) store.Store {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mongostore.Open(ctx, testURI(t, db), mongostore.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WaitIndexed(ctx); err != nil {
		t.Fatalf("WaitIndexed: %v", err)
	}
	f.dbs[s] = db
	return s
}

func (f *factory) Reopen(t *testing.T, s store.Store) store.Store {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return f.open(t, f.dbs[s])
}

func TestConformance(t *testing.T) {
	storetest.Run(t, &factory{dbs: map[store.Store]string{}})
}

func TestParseURI(t *testing.T) {
	tests := []struct {
		uri, db string
		ok      bool
	}{
		{"mongodb://127.0.0.1:27017/vigil", "vigil", true},
		{"mongodb://a,b,c/?replicaSet=rs0", "", true},
		{"mongodb+srv://cluster.example.com/prod", "prod", true},
		{"http://127.0.0.1:27017", "", false},
		{"mongodb://", "", false},
		{"not a uri", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			db, err := mongostore.ParseURI(tt.uri)
			if (err == nil) != tt.ok || db != tt.db {
				t.Fatalf("ParseURI(%q) = %q, %v; want %q, ok=%v", tt.uri, db, err, tt.db, tt.ok)
			}
		})
	}
}

// TestUnavailable: a server that does not answer gives ErrUnavailable and a failing Ping, not a
// hang or a panic.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	s, err := mongostore.Open(ctx, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", mongostore.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping of a closed port = nil; want an error")
	}
	if _, err := s.GetUser(ctx, "alice"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetUser with the server down = %v; want ErrUnavailable", err)
	}
}
