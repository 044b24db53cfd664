package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	gosync "sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// This file keeps the watches of the external sync modes (Argo CD, Flux): per cluster identity, a dynamic client
// and one informer per kind and namespace that a stage names, so that a change of the object a stage names wakes
// that stage at once. What each controller's objects mean is their syncer's business (sync_argocd.go,
// sync_flux.go); this file only knows which stage names which object.

// externalKind is a kind of object a stage names to be synced by another controller, and what its watches need to
// know of it.
type externalKind struct {
	gvr schema.GroupVersionResource
	// controller and kind name the objects in messages: "Argo CD" "Application", "Flux" "Kustomization".
	controller, kind string
	// prune is the informers' cache transform: the cache keeps of each object only what Ferry reads, so that a
	// namespace of thousands of large objects costs little.
	prune cache.TransformFunc
	// changed says whether an update changed what Ferry judges a stage by; a controller's routine bookkeeping
	// (a timestamp, a request annotation) wakes no stage.
	changed func(old, obj any) bool
}

// missing tells an object that does not exist from a cluster that serves no objects of the kind at all.
func (k *externalKind) missing(ref ExternalRef, notFound error) *ExternalMissing {
	var status apierrors.APIStatus
	if errors.As(notFound, &status) {
		if d := status.Status().Details; d != nil && d.Name == ref.Name {
			return &ExternalMissing{Ref: ref}
		}
	}
	return &ExternalMissing{Ref: ref, Detail: fmt.Sprintf("the cluster serves no %s/%s %ss (is %s installed?)",
		k.gvr.Group, k.gvr.Version, k.kind, k.controller)}
}

// pruneAs is the body of a kind's cache transform: the cache keeps an object as the fields read takes of it. An
// object that cannot be read so is kept whole, and reading it from the cache reports why.
func pruneAs[T any](obj any, read func(*unstructured.Unstructured) (T, error)) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	kept, err := read(u)
	if err != nil {
		return obj, nil
	}
	pruned, err := runtime.DefaultUnstructuredConverter.ToUnstructured(kept)
	if err != nil {
		return obj, nil
	}
	return &unstructured.Unstructured{Object: pruned}, nil
}

// changedAs is the body of a kind's changed predicate: differ compares the two objects as read takes them. An
// update whose objects cannot be read so counts as a change, so that no change is missed.
func changedAs[T any](old, obj any, read func(*unstructured.Unstructured) (T, error), differ func(before, after T) bool) bool {
	before, ok1 := old.(*unstructured.Unstructured)
	after, ok2 := obj.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return true
	}
	a, err1 := read(before)
	b, err2 := read(after)
	if err1 != nil || err2 != nil {
		return true
	}
	return differ(a, b)
}

// externalWatches is the registry of watches of one external sync mode. The syncer embeds it, which gives it
// OnChange, Forget, Close and Watches.
type externalWatches struct {
	mu       gosync.Mutex
	clusters map[string]*externalCluster // by clusterKey
	users    map[string]externalUse      // by SyncTarget.Owner
	changed  []func(owner string)
}

// externalCluster is what is kept for one API server and identity.
type externalCluster struct {
	key     string
	client  dynamic.Interface
	watches map[externalWatchKey]*externalWatch
}

// externalWatchKey names one watch in a cluster: the objects of one kind in one namespace.
type externalWatchKey struct {
	gvr       schema.GroupVersionResource
	namespace string
}

// externalWatch is a watch of one kind in one namespace, and the stages that name objects there.
type externalWatch struct {
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
	owners   map[string]map[string]bool // object name → SyncTarget.Owner set
}

// externalUse is the object a stage was last seen to name.
type externalUse struct {
	cluster string
	watch   externalWatchKey
	name    string
}

func newExternalWatches() *externalWatches {
	return &externalWatches{clusters: map[string]*externalCluster{}, users: map[string]externalUse{}}
}

// OnChange registers fn for changes of the status of every watched object, now and to come.
func (e *externalWatches) OnChange(fn func(owner string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.changed = append(e.changed, fn)
}

// Forget stops tracking owner's object; a watch no stage needs any more is stopped.
func (e *externalWatches) Forget(owner string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.release(owner)
}

// Close stops every watch.
func (e *externalWatches) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key, c := range e.clusters {
		for _, w := range c.watches {
			w.stop()
		}
		delete(e.clusters, key)
	}
	clear(e.users)
}

// Watches says how many watches run, one per kind and namespace that stages name, over every cluster.
func (e *externalWatches) Watches() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.clusters {
		n += len(c.watches)
	}
	return n
}

// use returns what is kept for t's cluster and identity, and records that t.Owner names t.External, of kind k,
// there, watching its namespace from now on; what t.Owner named before is let go of first, so that a cluster or
// watch it empties is made anew rather than used after it was dropped.
func (e *externalWatches) use(t SyncTarget, k *externalKind) (*externalCluster, error) {
	if t.External.Name == "" || t.External.Namespace == "" {
		return nil, fmt.Errorf("no %s %s named for the stage", k.controller, k.kind)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	u := externalUse{cluster: clusterKey(t.Config), watch: externalWatchKey{gvr: k.gvr, namespace: t.External.Namespace},
		name: t.External.Name}
	if old, ok := e.users[t.Owner]; t.Owner != "" && (!ok || old != u) {
		e.release(t.Owner)
	}
	c, err := e.cluster(t.Config, k)
	if err != nil || t.Owner == "" {
		return c, err
	}
	if _, ok := e.users[t.Owner]; ok {
		return c, nil // named the same object already
	}
	e.users[t.Owner] = u
	w := c.watches[u.watch]
	if w == nil {
		w = e.watch(c, u.watch, k)
		c.watches[u.watch] = w
	}
	if w.owners[u.name] == nil {
		w.owners[u.name] = map[string]bool{}
	}
	w.owners[u.name][t.Owner] = true
	return c, nil
}

// cluster returns the state of cfg's cluster and identity, made on first use. e.mu must be held.
func (e *externalWatches) cluster(cfg *rest.Config, k *externalKind) (*externalCluster, error) {
	key := clusterKey(cfg)
	if c, ok := e.clusters[key]; ok {
		return c, nil
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster of the %s %s: %w", k.controller, k.kind, err)
	}
	c := &externalCluster{key: key, client: client, watches: map[externalWatchKey]*externalWatch{}}
	e.clusters[key] = c
	return c, nil
}

// release forgets what owner named, stopping the watch (and dropping the cluster) nobody else needs. e.mu must be
// held.
func (e *externalWatches) release(owner string) {
	u, ok := e.users[owner]
	if !ok {
		return
	}
	delete(e.users, owner)
	c := e.clusters[u.cluster]
	if c == nil || c.watches[u.watch] == nil {
		return
	}
	w := c.watches[u.watch]
	delete(w.owners[u.name], owner)
	if len(w.owners[u.name]) == 0 {
		delete(w.owners, u.name)
	}
	if len(w.owners) > 0 {
		return
	}
	w.stop()
	delete(c.watches, u.watch)
	if len(c.watches) == 0 {
		delete(e.clusters, u.cluster)
	}
}

// watch starts watching the objects of kind k in one namespace of c, its cache pruned by k.prune. e.mu must be
// held.
func (e *externalWatches) watch(c *externalCluster, key externalWatchKey, k *externalKind) *externalWatch {
	informer := dynamicinformer.NewFilteredDynamicInformer(c.client, key.gvr, key.namespace, 0, cache.Indexers{}, nil).Informer()
	_ = informer.SetTransform(k.prune) // fails only once the informer has started
	ctx, stop := context.WithCancel(context.Background())
	w := &externalWatch{informer: informer, stop: stop, owners: map[string]map[string]bool{}}
	notify := func(obj any) { e.notify(c.key, key, obj) }
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Objects in the watch's first list wake their stages too: a stage that read before the list finished
		// fell back to the API server and may have found the object missing, and an object created in between
		// arrives in that first list — without a wake, a stage stalled on it would never come back. The cost is
		// one wake per owner known when the watch starts.
		AddFunc: notify,
		UpdateFunc: func(old, obj any) {
			if k.changed(old, obj) {
				notify(obj)
			}
		},
		DeleteFunc: notify,
	})
	go informer.RunWithContext(ctx)
	return w
}

// notify calls the OnChange functions with each stage that names obj, outside the lock: they may call back.
func (e *externalWatches) notify(cluster string, key externalWatchKey, obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	e.mu.Lock()
	var owners []string
	if c := e.clusters[cluster]; c != nil && c.watches[key] != nil {
		for owner := range c.watches[key].owners[u.GetName()] {
			owners = append(owners, owner)
		}
	}
	fns := slices.Clone(e.changed)
	e.mu.Unlock()
	for _, owner := range owners {
		for _, fn := range fns {
			fn(owner)
		}
	}
}

// read records that t.Owner names t.External, of kind k (use), and reads that object from its watch's cache once
// that holds the namespace, else from the API server. An object the cache does not hold is looked for on the API
// server before it is called missing, in case the watch has not seen it yet.
func (e *externalWatches) read(ctx context.Context, t SyncTarget, k *externalKind) (*externalCluster, *unstructured.Unstructured, error) {
	c, err := e.use(t, k)
	if err != nil {
		return nil, nil, err
	}
	ref := t.External
	informer := e.informer(c, externalWatchKey{gvr: k.gvr, namespace: ref.Namespace})
	if informer == nil || !informer.HasSynced() {
		u, err := c.get(ctx, k, ref)
		return c, u, err
	}
	obj, ok, err := informer.GetStore().GetByKey(ref.Namespace + "/" + ref.Name)
	u, isObject := obj.(*unstructured.Unstructured)
	if err != nil || !ok || !isObject {
		u, err := c.get(ctx, k, ref)
		return c, u, err
	}
	return c, u, nil
}

// readAs is read, with the object decoded by decode into the fields its syncer reads.
func readAs[T any](ctx context.Context, e *externalWatches, t SyncTarget, k *externalKind,
	decode func(*unstructured.Unstructured) (T, error)) (*externalCluster, T, error) {
	c, u, err := e.read(ctx, t, k)
	if err != nil {
		var none T
		return nil, none, err
	}
	obj, err := decode(u)
	return c, obj, err
}

// informer returns the watch of key in c, if any.
func (e *externalWatches) informer(c *externalCluster, key externalWatchKey) cache.SharedIndexInformer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w := c.watches[key]; w != nil {
		return w.informer
	}
	return nil
}

// get reads the object ref of kind k from the API server.
func (c *externalCluster) get(ctx context.Context, k *externalKind, ref ExternalRef) (*unstructured.Unstructured, error) {
	u, err := c.client.Resource(k.gvr).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, k.missing(ref, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", k.controller, ref, err)
	}
	return u, nil
}
