package k8smetaprocessor

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/podstore"
)

// identitiesKey is the storage key of the container identities.
const identitiesKey = "container_identities"

// identityKeeper keeps the store's container identities in a storage
// extension, so that a restarted collector names the series the receiver
// restores from its checkpoint as the last one did: container IDs that
// left their pod's status meanwhile are not in the API any more.
type identityKeeper struct {
	client storage.Client
	logger *zap.Logger
	// saved is the store's change count at the last save.
	saved uint64
}

// openIdentityKeeper opens the storage extension id for the processor self.
func openIdentityKeeper(ctx context.Context, host component.Host, id, self component.ID, logger *zap.Logger) (*identityKeeper, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("storage %q: no such extension; add it under `extensions:` and `service.extensions`", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("storage %q is not a storage extension (use e.g. file_storage)", id)
	}
	c, err := se.GetClient(ctx, component.KindProcessor, self, "")
	if err != nil {
		return nil, fmt.Errorf("storage %q: %w", id, err)
	}
	return &identityKeeper{client: c, logger: logger}, nil
}

// restore reads the saved identities into the store. A missing or broken
// record is logged and skipped: the collector starts without them.
func (k *identityKeeper) restore(ctx context.Context, s *podstore.Store) {
	data, err := k.client.Get(ctx, identitiesKey)
	switch {
	case err != nil:
		k.logger.Warn("Cannot read the saved container identities; series of containers that left their pod's status before this start get only their pod's attributes", zap.Error(err))
		return
	case data == nil:
		return
	}
	n, err := s.Restore(data)
	if err != nil {
		k.logger.Warn("Skipping broken saved container identities; series of containers that left their pod's status before this start get only their pod's attributes",
			zap.Int("restored", n), zap.Error(err))
	} else {
		k.logger.Info("Restored container identities", zap.Int("identities", n))
	}
	k.saved = s.Changes()
}

// pending reports whether the identities changed since the last save.
func (k *identityKeeper) pending(s *podstore.Store) bool { return s.Changes() != k.saved }

// save writes the store's identities if they changed since the last save.
func (k *identityKeeper) save(ctx context.Context, s *podstore.Store) {
	if !k.pending(s) {
		return
	}
	data, changes, err := s.Snapshot()
	if err == nil {
		err = k.client.Set(ctx, identitiesKey, data)
	}
	if err != nil {
		k.logger.Warn("Cannot save the container identities; retrying at the next change or shutdown", zap.Error(err))
		return
	}
	k.saved = changes
}

func (k *identityKeeper) close(ctx context.Context) error {
	return k.client.Close(ctx)
}
