package controllers

import (
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestYieldAfterWorkOnlyAfterProgressAndTheBudget(t *testing.T) {
	for _, c := range []struct {
		name    string
		moves   int
		elapsed time.Duration
		yield   bool
	}{
		{"nothing moved yet, however long the reads took", 0, 10 * workBudget, false},
		{"moved, within the budget", 2, workBudget / 3, false},
		{"moved, budget used up", 1, workBudget + time.Millisecond, true},
	} {
		s := &scope{moves: c.moves, started: time.Now().Add(-c.elapsed)}
		if got := s.yieldAfterWork(); got != c.yield {
			t.Errorf("%s: yield = %v, want %v", c.name, got, c.yield)
		}
		if want := map[bool]time.Duration{true: yieldDelay}[c.yield]; s.wait != want {
			t.Errorf("%s: asked to come back after %s, want %s", c.name, s.wait, want)
		}
	}
}

func TestForgetDropsWhatADeletedPromotionLeftBehind(t *testing.T) {
	r := &PromotionReconciler{}
	gone := types.NamespacedName{Namespace: "shop", Name: "web"}
	kept := types.NamespacedName{Namespace: "shop", Name: "web-2"}
	for _, k := range []types.NamespacedName{gone, kept} {
		r.discovered.Store(k, time.Now())
		r.pushed.Store(k, struct{}{})
		r.owners.Store(k.Namespace+"."+k.Name+".dev", k)
		r.seen.Store(k.Namespace+"/"+k.Name+"/uid-1", struct{}{})
	}
	r.forget(gone)
	for name, m := range map[string]*sync.Map{"discovered": &r.discovered, "pushed": &r.pushed, "owners": &r.owners, "seen": &r.seen} {
		n := 0
		m.Range(func(k, v any) bool {
			n++
			if k == gone || v == gone || k == "shop/web/uid-1" {
				t.Errorf("%s still holds %v", name, k)
			}
			return true
		})
		if n != 1 {
			t.Errorf("%s holds %d entries, want the other Promotion's only", name, n)
		}
	}
}
