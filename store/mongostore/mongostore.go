// Package mongostore is Vigil's MongoDB store (go.mongodb.org/mongo-driver/v2), for production and
// for several Vigil processes sharing one database.
//
// It relies on single-document atomicity only: no transactions and no change streams. An alert
// and its history are one document, so an update and its audit event land together; versions
// make concurrent writers safe. Indexes are created at start (retried in the background while
// the server is down). Vitals retention uses a TTL index where the server has one and a sweeper
// in every case, so servers without TTL (FerretDB) still expire samples.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/vigilhq/vigil/store"
)

// Options configure Open.
type Options struct {
	// Database is used when the URI names none (default "vigil").
	Database string
	// Retention is how long vitals samples are kept; 0 keeps them for ever.
	Retention  time.Duration
	SweepEvery time.Duration // default 10 min
	// Timeout bounds each operation that has no deadline of its own (default 10 s).
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// Store is the MongoDB store.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	opts   Options
	log    *slog.Logger
	wc     *writeconcern.WriteConcern // of every write

	users, devices, patients, vitals, alerts, states, triage, beds, staff, broadcasts *mongo.Collection

	indexed chan struct{} // closed once the indexes exist
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var _ store.Store = (*Store)(nil)

// ParseURI checks a MongoDB connection string and returns the database it names ("" if none).
// A mongodb+srv URI is checked for shape only: resolving it needs DNS, which Open does later.
func ParseURI(uri string) (database string, err error) {
	if rest, ok := strings.CutPrefix(uri, "mongodb+srv://"); ok {
		u, err := url.Parse(uri)
		if err != nil || rest == "" || u.Host == "" || strings.Contains(u.Host, ",") || strings.Contains(u.Host, ":") {
			return "", fmt.Errorf("bad mongodb+srv uri: want mongodb+srv://host/[database]")
		}
		return strings.TrimPrefix(u.Path, "/"), nil
	}
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return "", err
	}
	return cs.Database, nil
}

// Open connects to MongoDB. It does not wait for the server: while the server is down the store
// answers ErrUnavailable, Ping fails, and index creation is retried in the background.
func Open(ctx context.Context, uri string, opts Options) (*Store, error) {
	dbName, err := ParseURI(uri)
	if err != nil {
		return nil, fmt.Errorf("mongodb uri: %w", err)
	}
	if dbName == "" {
		dbName = opts.Database
	}
	if dbName == "" {
		dbName = "vigil"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = 10 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	co := options.Client().ApplyURI(uri).SetAppName("vigil")
	if co.ServerSelectionTimeout == nil {
		co.SetServerSelectionTimeout(5 * time.Second)
	}
	// What Vigil acknowledges (a sample's PUBACK, an alert change it publishes) must survive the
	// primary's loss: writes wait for a majority of the replica set, journaled. A URI asking for
	// less durability is refused; one asking for fewer nodes is allowed, with a warning.
	switch wc := co.WriteConcern; {
	case wc == nil:
		journal := true
		co.SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &journal})
	case !wc.Acknowledged() || (wc.Journal != nil && !*wc.Journal):
		return nil, fmt.Errorf("mongodb: the URI's write concern (w=%v, journal=%v) does not make acknowledged writes durable; leave w and journal unset (Vigil uses w=majority, journaled)", wc.W, journalString(wc.Journal))
	case wc.W == nil:
		// journal=true alone: the server's default w (1 on many deployments) is not enough.
		co.SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: wc.Journal})
	case wc.W != "majority":
		opts.Logger.Warn("mongodb: the URI's write concern is not w=majority: writes acknowledged to devices and clinicians may be lost on a failover", "w", wc.W)
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("mongodb: %w", err)
	}
	db := client.Database(dbName)
	s := &Store{
		client:     client,
		db:         db,
		opts:       opts,
		log:        opts.Logger.With("component", "store.mongo", "database", dbName),
		users:      db.Collection("users"),
		devices:    db.Collection("devices"),
		patients:   db.Collection("patients"),
		vitals:     db.Collection("vitals"),
		alerts:     db.Collection("alerts", alertsRead(co.WriteConcern)),
		states:     db.Collection("patient_states"),
		triage:     db.Collection("triage"),
		beds:       db.Collection("beds"),
		staff:      db.Collection("staff"),
		broadcasts: db.Collection("broadcasts"),
		wc:         co.WriteConcern,
		indexed:    make(chan struct{}),
		stop:       make(chan struct{}),
	}
	s.log.Info("writes wait for", "w", s.wc.W, "journal", journalString(s.wc.Journal))
	s.wg.Add(1)
	go s.maintain()
	return s, nil
}

// WaitIndexed waits until the indexes exist (tests and start-up use it).
func (s *Store) WaitIndexed(ctx context.Context) error {
	select {
	case <-s.indexed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mongodb indexes: %w", ctx.Err())
	}
}

// Close stops background work and disconnects.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = s.client.Disconnect(ctx)
	})
	return err
}

// Ping reports whether the server answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	return wrap(s.client.Ping(ctx, nil))
}

// maintain creates the indexes (retrying with backoff) and then sweeps expired vitals.
func (s *Store) maintain() {
	defer s.wg.Done()
	wait := 100 * time.Millisecond
	for {
		err := s.createIndexes()
		if err == nil {
			close(s.indexed)
			break
		}
		s.log.Warn("creating indexes failed; retrying", "retry_in", wait, "err", err)
		select {
		case <-s.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
	if s.opts.Retention <= 0 {
		return
	}
	t := time.NewTicker(s.opts.SweepEvery)
	defer t.Stop()
	for {
		if err := s.DeleteSamplesBefore(context.Background(), s.opts.Now().Add(-s.opts.Retention)); err != nil {
			s.log.Warn("vitals retention sweep failed", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Store) createIndexes() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type index struct {
		name string
		keys bson.D
	}
	idx := func(name string, keys bson.D) index { return index{name, keys} }
	sets := []struct {
		c      *mongo.Collection
		models []index
	}{
		{s.devices, []index{idx("hospital_id", bson.D{{Key: "hospital", Value: 1}, {Key: "_id", Value: 1}})}},
		{s.patients, []index{idx("hospital_id", bson.D{{Key: "hospital", Value: 1}, {Key: "_id", Value: 1}})}},
		{s.vitals, []index{idx("hospital_patient_ts", bson.D{{Key: "hospital", Value: 1}, {Key: "patient", Value: 1}, {Key: "ts", Value: 1}})}},
		{s.alerts, []index{
			idx("hospital_state_raised", bson.D{{Key: "hospital", Value: 1}, {Key: "state", Value: 1}, {Key: "raised_at", Value: -1}}),
			idx("hospital_id_desc", bson.D{{Key: "hospital", Value: 1}, {Key: "_id", Value: -1}}),
			idx("hospital_patient_state", bson.D{{Key: "hospital", Value: 1}, {Key: "patient", Value: 1}, {Key: "state", Value: 1}}),
		}},
		{s.triage, []index{idx("hospital_id", bson.D{{Key: "hospital", Value: 1}, {Key: "_id", Value: 1}})}},
		{s.beds, []index{idx("hospital_id", bson.D{{Key: "hospital", Value: 1}, {Key: "_id", Value: 1}})}},
		{s.staff, []index{idx("hospital_id", bson.D{{Key: "hospital", Value: 1}, {Key: "_id", Value: 1}})}},
		{s.broadcasts, []index{idx("hospital_id_desc", bson.D{{Key: "hospital", Value: 1}, {Key: "_id", Value: -1}})}},
	}
	for _, set := range sets {
		// Create only the missing ones: asking again for an existing index is harmless on
		// MongoDB but crashes the connection on FerretDB 1.24.
		have, err := indexNames(ctx, set.c)
		if err != nil {
			return fmt.Errorf("indexes of %s: %w", set.c.Name(), err)
		}
		var missing []mongo.IndexModel
		for _, m := range set.models {
			if !have[m.name] {
				missing = append(missing, mongo.IndexModel{Keys: m.keys, Options: options.Index().SetName(m.name)})
			}
		}
		if len(missing) == 0 {
			continue
		}
		if _, err := set.c.Indexes().CreateMany(ctx, missing); err != nil {
			return fmt.Errorf("indexes of %s: %w", set.c.Name(), err)
		}
	}
	if s.opts.Retention <= 0 {
		// Vitals are kept for ever: the TTL index of an earlier retention must not go on
		// expiring them.
		have, err := indexNames(ctx, s.vitals)
		if err != nil {
			return fmt.Errorf("indexes of %s: %w", s.vitals.Name(), err)
		}
		if have["vitals_ttl"] {
			if err := s.vitals.Indexes().DropOne(ctx, "vitals_ttl"); err != nil {
				return fmt.Errorf("dropping the vitals TTL index (retention 0: for ever): %w", err)
			}
			s.log.Info("vitals are kept for ever: the TTL index of an earlier retention dropped")
		}
	}
	if s.opts.Retention > 0 {
		ttl := mongo.IndexModel{
			Keys:    bson.D{{Key: "ts", Value: 1}},
			Options: options.Index().SetExpireAfterSeconds(int32(s.opts.Retention / time.Second)).SetName("vitals_ttl"),
		}
		_, err := s.vitals.Indexes().CreateOne(ctx, ttl)
		var ce mongo.CommandError
		switch {
		case err == nil:
		case errors.As(err, &ce) && (ce.Code == 238 || ce.Code == 115): // NotImplemented, CommandNotSupported
			s.log.Info("server has no TTL indexes; the retention sweeper alone expires vitals", "err", err)
		case errors.As(err, &ce) && (ce.Code == 85 || ce.Code == 86): // IndexOptionsConflict, IndexKeySpecsConflict
			// The retention changed: drop and recreate.
			if err := s.vitals.Indexes().DropOne(ctx, "vitals_ttl"); err != nil {
				return fmt.Errorf("replacing the vitals TTL index: %w", err)
			}
			if _, err := s.vitals.Indexes().CreateOne(ctx, ttl); err != nil {
				return fmt.Errorf("vitals TTL index: %w", err)
			}
		default:
			return fmt.Errorf("vitals TTL index: %w", err)
		}
	}
	return nil
}

func indexNames(ctx context.Context, c *mongo.Collection) (map[string]bool, error) {
	specs, err := c.Indexes().ListSpecifications(ctx)
	if err != nil {
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.Code == 26 { // NamespaceNotFound: no collection yet
			return map[string]bool{}, nil
		}
		return nil, err
	}
	have := make(map[string]bool, len(specs))
	for _, sp := range specs {
		have[sp.Name] = true
	}
	return have, nil
}

func (s *Store) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// wrap maps driver errors onto the store's sentinels. The driver's own text stays behind
// (driverError): it names hosts, addresses and collections, and the API answers with the
// text of conflict and unavailable errors.
func wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return store.ErrNotFound
	case mongo.IsDuplicateKeyError(err):
		return &driverError{store.ErrConflict, "already exists", err}
	case mongo.IsTimeout(err), errors.Is(err, context.DeadlineExceeded):
		return &driverError{store.ErrUnavailable, "the database did not answer in time", err}
	case mongo.IsNetworkError(err), errors.Is(err, mongo.ErrClientDisconnected):
		return &driverError{store.ErrUnavailable, "the database cannot be reached", err}
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		return err
	}
	return &driverError{store.ErrUnavailable, "database error", err}
}

// driverError is a store sentinel with the driver's error behind it. Error says only the
// sentinel and a short reason; errors.Is and errors.As see both.
type driverError struct {
	sentinel *store.Error
	reason   string
	cause    error
}

func (e *driverError) Error() string   { return e.sentinel.Error() + ": " + e.reason }
func (e *driverError) Unwrap() []error { return []error{e.sentinel, e.cause} }
func (e *driverError) Cause() error    { return e.cause } // see store.Cause

func what(kind, id string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s: %w", kind, id, err)
}

// DropDatabase drops the database the URI names (tests use it to clean up).
func DropDatabase(ctx context.Context, uri string) error {
	db, err := ParseURI(uri)
	if err != nil {
		return err
	}
	if db == "" {
		return errors.New("uri names no database")
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer c.Disconnect(ctx)
	return c.Database(db).Drop(ctx)
}

func journalString(j *bool) string {
	if j == nil {
		return "unset"
	}
	return fmt.Sprint(*j)
}

// alertsRead is how alerts are read: at majority when writes wait for a majority, so what a
// read sees is what a failover keeps, and a write whose answer was lost counts as stored only
// once it is durable (ingest reads an alert back to tell). With fewer nodes acknowledging
// writes, majority reads could miss acknowledged ones: local reads then.
func alertsRead(wc *writeconcern.WriteConcern) *options.CollectionOptionsBuilder {
	o := options.Collection()
	if wc != nil && wc.W == "majority" {
		o.SetReadConcern(readconcern.Majority())
	}
	return o
}
