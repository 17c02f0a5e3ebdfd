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

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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

// TestPatientStoredBeforeVersions: a patient document written before records had a version
// (no version field) is updated as version 0, once; the next stale write is refused.
func TestPatientStoredBeforeVersions(t *testing.T) {
	f := &factory{dbs: map[store.Store]string{}}
	s := f.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := mongo.Connect(options.Client().ApplyURI(testURI(t, f.dbs[s])))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(ctx)
	old := bson.D{{Key: "_id", Value: "h1/p1"}, {Key: "hospital", Value: "h1"}, {Key: "id", Value: "p1"}, {Key: "name", Value: "Ada"}, {Key: "spo2_scale", Value: 1}}
	if _, err := cl.Database(f.dbs[s]).Collection("patients").InsertOne(ctx, old); err != nil {
		t.Fatalf("inserting a document without version: %v", err)
	}
	p, err := s.GetPatient(ctx, "h1", "p1")
	if err != nil || p.Version != 0 {
		t.Fatalf("GetPatient = %+v, %v; want version 0", p, err)
	}
	p.Bed, p.Version = "b1", 1
	if err := s.UpdatePatient(ctx, p); err != nil {
		t.Fatalf("UpdatePatient(version 1) of a document without version: %v", err)
	}
	if err := s.UpdatePatient(ctx, p); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdatePatient(version 1) again: %v; want a conflict", err)
	}
	if got, err := s.GetPatient(ctx, "h1", "p1"); err != nil || got.Bed != "b1" || got.Version != 1 {
		t.Fatalf("GetPatient after the update = %+v, %v; want bed b1, version 1", got, err)
	}
}

// TestWriteConcernRefused: a URI whose write concern would acknowledge writes that are not
// durable (w=0, or journal=false) is refused, naming the write concern (the defaults and w=1:
// TestWriteConcernDefaults).
func TestWriteConcernRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []string{"w=0", "journal=false"} {
		uri := testURI(t, "vigiltest_wc") + "&" + q
		if !strings.Contains(uri, "?") {
			uri = strings.Replace(uri, "&", "?", 1)
		}
		s, err := mongostore.Open(ctx, uri, mongostore.Options{})
		if err == nil {
			s.Close()
			t.Fatalf("Open with %s succeeded; want it refused", q)
		}
		if !strings.Contains(err.Error(), "write concern") {
			t.Fatalf("Open with %s: %v; want an error naming the write concern", q, err)
		}
	}
}

// TestRetentionZeroDropsTTL: with the retention set to 0 (for ever), the TTL index an earlier
// retention created is dropped, so the server stops expiring vitals.
func TestRetentionZeroDropsTTL(t *testing.T) {
	f := &factory{dbs: map[store.Store]string{}}
	s := f.Open(t)
	db := f.dbs[s]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := mongo.Connect(options.Client().ApplyURI(testURI(t, db)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(ctx)
	vitals := cl.Database(db).Collection("vitals")
	// FerretDB has no TTL indexes: an index of that name stands in for one.
	if _, err := vitals.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "ts", Value: 1}}, Options: options.Index().SetName("vitals_ttl")}); err != nil {
		t.Fatalf("creating vitals_ttl: %v", err)
	}
	s.Close()
	s2, err := mongostore.Open(ctx, testURI(t, db), mongostore.Options{Retention: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.WaitIndexed(ctx); err != nil {
		t.Fatalf("WaitIndexed: %v", err)
	}
	specs, err := vitals.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range specs {
		if sp.Name == "vitals_ttl" {
			t.Fatal("vitals_ttl still there with retention 0; want it dropped")
		}
	}
}
