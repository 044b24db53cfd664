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
// owner) to a watch that turns each into reconcile requests. Sending never blocks: when the buffer is full the
// signal is dropped, and polling finds what it would have said.
type signals struct {
	once sync.Once
	ch   chan event.TypedGenericEvent[string]
}

// signalBuffer bounds the signals waiting to be turned into reconcile requests; the watch drains them
// continuously.
const signalBuffer = 1024

func (s *signals) channel() chan event.TypedGenericEvent[string] {
	s.once.Do(func() { s.ch = make(chan event.TypedGenericEvent[string], signalBuffer) })
	return s.ch
}

// send offers key to the watch, and reports whether it was taken.
func (s *signals) send(key string) bool {
	select {
	case s.channel() <- event.TypedGenericEvent[string]{Object: key}:
		return true
	default:
		return false
	}
}

// source is the watch: requests maps a key to the Promotions to reconcile.
func (s *signals) source(requests func(ctx context.Context, key string) []reconcile.Request) source.Source {
	return source.Channel(s.channel(), handler.TypedEnqueueRequestsFromMapFunc(requests))
}
