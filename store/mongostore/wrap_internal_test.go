package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/vigilhq/vigil/store"
)

// TestWrapHidesDriverText: driver errors become the store's sentinels, and their text (hosts,
// addresses, collection names) stays out of the message, which the API answers with.
func TestWrapHidesDriverText(t *testing.T) {
	dup := mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000, Message: "E11000 duplicate key error collection: vigil.users index: _id_"}}}
	slow := fmt.Errorf("server selection error: context deadline exceeded, current topology: { Addr: db.internal:27017 }: %w", context.DeadlineExceeded)
	other := errors.New("connection pool for db.internal:27017 was cleared")
	tests := []struct {
		name string
		err  error
		want *store.Error
	}{
		{"duplicate key", dup, store.ErrConflict},
		{"timeout", slow, store.ErrUnavailable},
		{"anything else", other, store.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wrap(tt.err)
			var d *driverError
			if !errors.Is(got, tt.want) || !errors.As(got, &d) || d.cause == nil {
				t.Errorf("wrap(%v) = %v; want it to be %v and keep the cause", tt.err, got, tt.want)
			}
			for _, leak := range []string{"db.internal", "27017", "vigil.users", "E11000"} {
				if strings.Contains(got.Error(), leak) {
					t.Errorf("wrap(%v).Error() = %q; names %q", tt.err, got.Error(), leak)
				}
			}
			if c := store.Cause(fmt.Errorf("user alice: %w", got)); c == nil || c.Error() != tt.err.Error() {
				t.Errorf("store.Cause(wrap(%v)) = %v; want the driver's error, for the log", tt.err, c)
			}
			var coded interface{ Code() string }
			if !errors.As(got, &coded) || coded.Code() != tt.want.Code() {
				t.Errorf("wrap(%v) has no code %q", tt.err, tt.want.Code())
			}
		})
	}
	if wrap(mongo.ErrNoDocuments) != store.ErrNotFound || wrap(nil) != nil {
		t.Error("wrap(no documents) is not ErrNotFound, or wrap(nil) is not nil")
	}
}
