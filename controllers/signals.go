package controllers

import (
	"context"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// signals carries keys from outside the controller (a registry notification's repository, a changed object's
// owner, a forge event) to a watch that turns each into reconcile requests. Sending never blocks: when the buffer
// is full the signal is dropped, and polling finds what it would have said.
type signals[K any] struct {
	once sync.Once
	ch   chan event.TypedGenericEvent[K]
}

// signalBuffer bounds the signals waiting to be turned into reconcile requests; the watch drains them
// continuously.
const signalBuffer = 1024

func (s *signals[K]) channel() chan event.TypedGenericEvent[K] {
	s.once.Do(func() { s.ch = make(chan event.TypedGenericEvent[K], signalBuffer) })
	return s.ch
}

// send offers key to the watch, and reports whether it was taken.
func (s *signals[K]) send(key K) bool {
	select {
	case s.channel() <- event.TypedGenericEvent[K]{Object: key}:
		return true
	default:
		return false
	}
}

// source is the watch: requests maps a key to the Promotions to reconcile.
func (s *signals[K]) source(requests func(ctx context.Context, key K) []reconcile.Request) source.Source {
	return source.Channel(s.channel(), handler.TypedEnqueueRequestsFromMapFunc(requests))
}
