package k8smetaprocessor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/processor/processortest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/otelcol-oomkill/otelcol-oomkill/processor/k8smetaprocessor/internal/metadata"
	"github.com/otelcol-oomkill/otelcol-oomkill/test/harness/statustest"
)

var storageID = component.MustNewIDWithName("file_storage", "test")

// storageHost serves contrib's real file_storage extension, as a collector
// would.
type storageHost struct {
	component.Host
	ext component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component {
	return map[component.ID]component.Component{storageID: h.ext}
}

// newStorageHost starts file_storage on dir (stopped when the test ends)
// and returns a host serving it, which also records statuses.
func newStorageHost(t *testing.T, dir string) (*statustest.Host, component.Component) {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { require.NoError(t, ext.Shutdown(context.Background())) }) })
	host := statustest.NewHost()
	host.Host = storageHost{Host: componenttest.NewNopHost(), ext: ext}
	return host, ext
}

// A collector restarted during a crash loop (a DaemonSet rollout) names
// the series the receiver restores from its checkpoint as before: the IDs
// that left the pod's status before the restart, or while no collector
// ran, are not in the API any more.
func TestIdentitiesSurviveARestart(t *testing.T) {
	p := testPod()
	p.Status = crashLoopStatus(0)
	client := fake.NewClientset(p)
	host, _ := newStorageHost(t, t.TempDir())
	withStorage := func(c *Config) { c.Storage = &storageID }
	update := func(n int) {
		t.Helper()
		p.Status = crashLoopStatus(n)
		_, err := client.CoreV1().Pods("shop").UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		require.NoError(t, err)
	}

	h, k := startDirectOn(t, host, client, newTestClock(), withStorage)
	for n := 1; n <= 4; n++ {
		update(n)
		require.Eventually(t, func() bool { _, _, ok := k.store.ByContainerID(attemptID(n)); return ok }, 5*time.Second, 5*time.Millisecond)
	}
	before := map[int]map[string]any{}
	for n := 0; n <= 4; n++ {
		before[n] = h.send(t, map[string]any{"container.id": attemptID(n)})
		require.Equal(t, wantPod(migrateContainer(n)), before[n])
	}
	h.stop() // saves

	// While no collector runs, attempt 4 is killed and 5 starts: 4 leaves.
	update(5)
	update(6)
	h2, _ := startDirectOn(t, host, client, newTestClock(), withStorage)
	for n := 0; n <= 4; n++ {
		start := time.Now()
		assert.Equal(t, before[n], h2.send(t, map[string]any{"container.id": attemptID(n)}), "attempt %d keeps its names", n)
		assert.Less(t, time.Since(start), 250*time.Millisecond, "attempt %d: not held back", n)
	}
	assert.Equal(t, wantPod(migrateContainer(6)), h2.send(t, map[string]any{"container.id": attemptID(6)}))
	assert.Equal(t, 1, h2.logs.FilterMessage("Restored container identities").Len())
}

// A broken record is logged and skipped; the collector starts without it.
func TestBrokenIdentitiesAreSkipped(t *testing.T) {
	host, ext := newStorageHost(t, t.TempDir())
	c, err := ext.(storage.Extension).GetClient(context.Background(), component.KindProcessor, component.NewID(metadata.Type), "")
	require.NoError(t, err)
	require.NoError(t, c.Set(context.Background(), identitiesKey, []byte(`{"version":1,"ids":[{"id":"x","pod":7}]}`)))
	require.NoError(t, c.Close(context.Background()))

	h, _ := startDirectOn(t, host, fake.NewClientset(testPod()), newTestClock(), func(c *Config) { c.Storage = &storageID })
	assert.Equal(t, wantPod(phpContainer(idRunning, 1)), h.send(t, map[string]any{"container.id": idRunning}))
	assert.Equal(t, 1, h.logs.FilterMessageSnippet("Skipping broken saved container identities").Len())
}

func TestStorageMustBeAStorageExtension(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.Storage = &storageID
	k, err := newK8smeta(cfg, processortest.NewNopSettings(metadata.Type), func(*Config) (kubernetes.Interface, error) { return fake.NewClientset(), nil })
	require.NoError(t, err)
	err = k.Start(context.Background(), componenttest.NewNopHost())
	assert.ErrorContains(t, err, `storage "file_storage/test": no such extension`)
}
