package mongostore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/vigilhq/vigil/internal/testenv"
)

// TestWriteConcernDefaults: what Vigil acknowledges is written with w=majority, journaled,
// unless the URI says otherwise: journal=true alone still gets w=majority, and a w other than
// majority is kept but logged. (The driver connects lazily: no server is needed here.)
func TestWriteConcernDefaults(t *testing.T) {
	for _, tt := range []struct {
		query, w, journal string
		warns             bool
	}{
		{"", "majority", "true", false},
		{"&journal=true", "majority", "true", false},
		{"&w=majority", "majority", "unset", false},
		{"&w=1", "1", "unset", true},
	} {
		t.Run(tt.query, func(t *testing.T) {
			var log testenv.Buffer // the store's background goroutine logs too
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := Open(ctx, "mongodb://127.0.0.1:1/vigilwc?serverSelectionTimeoutMS=50"+tt.query, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			wc := s.wc
			if wc == nil || fmt.Sprint(wc.W) != tt.w || journalString(wc.Journal) != tt.journal {
				t.Fatalf("write concern %+v; want w=%s, journal %s", wc, tt.w, tt.journal)
			}
			if warned := strings.Contains(log.String(), "not w=majority"); warned != tt.warns {
				t.Fatalf("warning logged: %v (%s); want %v", warned, log.String(), tt.warns)
			}
		})
	}
}

// TestAlertsReadAtMajority: with w=majority writes, alerts are read at majority (a read sees
// what a failover keeps); with fewer nodes acknowledging writes, locally (a majority read could
// miss an acknowledged write).
func TestAlertsReadAtMajority(t *testing.T) {
	level := func(wc *writeconcern.WriteConcern) string {
		var o options.CollectionOptions
		for _, f := range alertsRead(wc).Opts {
			if err := f(&o); err != nil {
				t.Fatal(err)
			}
		}
		if o.ReadConcern == nil {
			return "default"
		}
		return o.ReadConcern.Level
	}
	if got := level(&writeconcern.WriteConcern{W: "majority"}); got != "majority" {
		t.Errorf("alerts read with w=majority writes: %s; want majority", got)
	}
	if got := level(&writeconcern.WriteConcern{W: 1}); got != "default" {
		t.Errorf("alerts read with w=1 writes: %s; want the default", got)
	}
}
