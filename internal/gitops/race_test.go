package gitops

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferrycd/ferry/internal/gitserver"
)

// TestConcurrentWritersAllLand runs four writers, one per stage, pinning two digests each into the same branch;
// two share an Engine and two have their own cache, like separate controllers. The server holds the first push
// of every writer until all four have sent theirs, so all four are built on the same tip and released together:
// one lands and the other three are refused as non-fast-forward and must re-apply their pin on the new tip.
// Every pin must land exactly once and no writer may see an error.
func TestConcurrentWritersAllLand(t *testing.T) {
	s, url := seed(t)
	shared := newEngine(t)
	stages := []string{"dev", "qa", "staging", "prod"}
	engines := []*Engine{shared, shared, newEngine(t), newEngine(t)}

	// The barrier: the first len(stages) receive-pack POSTs wait for each other. None of them can land before the
	// last arrives, so they are the first attempts of four different writers, all built on the seed commit.
	var (
		mu       sync.Mutex
		arrived  int
		released = make(chan struct{})
		release  = sync.OnceFunc(func() { close(released) })
	)
	s.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			return false
		}
		mu.Lock()
		held := arrived < len(stages)
		if held {
			arrived++
			if arrived == len(stages) {
				release()
			}
		}
		mu.Unlock()
		if held {
			select {
			case <-released:
			case <-r.Context().Done():
			}
		}
		return false
	})

	start := make(chan struct{})
	errs := make(chan error, len(stages)*2)
	firstAttempts := make([]int, len(stages)) // Result.Attempts of each writer's first pin
	var attempts atomic.Int64
	var wg sync.WaitGroup
	for i, stage := range stages {
		wg.Add(1)
		go func(e *Engine, stage string) {
			defer wg.Done()
			<-start
			for n, d := range []string{digestA, digestB} {
				res, err := e.Pin(context.Background(), request(url, stage, d))
				if n == 0 {
					firstAttempts[i] = res.Attempts
					// A writer whose first pin ended without its push passing the barrier (an error before
					// pushing) must not leave the others held; the contention check below then fails.
					release()
				}
				attempts.Add(int64(res.Attempts))
				if err == nil && !res.Changed {
					err = fmt.Errorf("pin of %s in %s made no commit: %+v", d, stage, res)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", stage, err)
				}
			}
		}(engines[i], stage)
	}
	close(start)
	wg.Wait()
	close(errs)
	pins := len(stages) * 2
	pushes := s.PushRequests("fleet")
	t.Logf("%d pins took %d attempts and %d push requests; first pins took %v attempts", pins, attempts.Load(), pushes, firstAttempts)
	for err := range errs {
		t.Error(err)
	}

	// The race happened and was retried: of the four pushes built on the seed commit one landed, three were
	// refused (each a receive-pack POST that made no commit), and those three writers' first pins needed more
	// than one attempt.
	if rejected := pushes - (len(s.Log("fleet")) - 1); rejected < len(stages)-1 {
		t.Errorf("the server refused %d of %d pushes, want at least %d (the barrier did not make writers collide)",
			rejected, pushes, len(stages)-1)
	}
	retried := 0
	for _, n := range firstAttempts {
		if n > 1 {
			retried++
		}
	}
	if retried < len(stages)-1 {
		t.Errorf("first pins took %v attempts, want at least %d writers to lose the first race and retry",
			firstAttempts, len(stages)-1)
	}
	log := s.Log("fleet")
	if len(log) != 1+len(stages)*2 {
		t.Fatalf("server has %d commits, want %d", len(log), 1+len(stages)*2)
	}
	seen := map[string]int{}
	for _, c := range log[:len(log)-1] {
		seen[c.Trailers[TrailerStage]+"/"+c.Trailers[TrailerDigest]]++
		if len(c.Parents) != 1 {
			t.Errorf("commit %s has %d parents, want a linear history", c.SHA, len(c.Parents))
		}
	}
	for _, stage := range stages {
		for _, d := range []string{digestA, digestB} {
			if n := seen[stage+"/"+d]; n != 1 {
				t.Errorf("%s/%s landed %d times", stage, d, n)
			}
		}
		got, _ := s.File("fleet", "main", "envs/"+stage+"/kustomization.yaml")
		if want := "digest: " + digestB; !strings.Contains(got, want) {
			t.Errorf("%s holds:\n%s\nwant %s", stage, got, want)
		}
	}
}

// TestPushRaceReappliesOnNewTip makes the race certain: the server lands someone else's commit between our
// reading the tip and our push, so the first push is refused and the pin is re-applied on the new tip.
func TestPushRaceReappliesOnNewTip(t *testing.T) {
	s, url := seed(t)
	var once sync.Once
	s.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			once.Do(func() { s.Commit("fleet", "main", map[string]string{"README.md": "someone else\n"}, "other writer") })
		}
		return false
	})
	res, err := newEngine(t).Pin(context.Background(), request(url, "prod", digestA))
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 || !res.Changed {
		t.Fatalf("result = %+v, want a commit on the second attempt", res)
	}
	log := s.Log("fleet")
	if len(log) != 3 || log[0].SHA != res.CommitSHA || log[1].Subject != "other writer" {
		t.Fatalf("log = %+v", log)
	}
	if got, _ := s.File("fleet", "main", "README.md"); got != "someone else\n" {
		t.Fatalf("the other writer's change was lost: %q", got)
	}
}

// TestLostPushResponseIsRecognisedOnRetry: the server takes the push but the client never hears back (the
// connection drops). The Pin fails; running it again — as a controller does after an error or a restart —
// finds the commit by its trailers and content and makes no second one.
func TestLostPushResponseIsRecognisedOnRetry(t *testing.T) {
	s, url := seed(t)
	var once sync.Once
	s.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		handled := false
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			once.Do(func() {
				s.ServeGit(&gitserver.Discard{}, r)
				http.Error(w, "connection reset", http.StatusBadGateway)
				handled = true
			})
		}
		return handled
	})
	req := request(url, "prod", digestA)
	if _, err := newEngine(t).Pin(context.Background(), req); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	landed := s.Head("fleet", "main")
	for _, e := range []*Engine{newEngine(t), newEngine(t)} {
		res, err := e.Pin(context.Background(), req)
		if err != nil || res.Changed || !res.Recognized || res.CommitSHA != landed {
			t.Fatalf("retry = %+v, %v; want recognition of %s", res, err, landed)
		}
	}
	if n := len(s.Log("fleet")); n != 2 {
		t.Fatalf("server has %d commits, want 2", n)
	}
}

// TestSamePinFromTwoWritersLandsOnce: two controllers (say, an old leader and a new one) run the very same pin at
// once. One commit lands; the loser of the race recognises it on the new tip and reports it as its own result.
func TestSamePinFromTwoWritersLandsOnce(t *testing.T) {
	s, url := seed(t)
	req := request(url, "prod", digestA)
	engines := []*Engine{newEngine(t), newEngine(t), newEngine(t)}
	results := make([]Result, len(engines))
	errs := make([]error, len(engines))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = e.Pin(context.Background(), req)
		}()
	}
	close(start)
	wg.Wait()
	log := s.Log("fleet")
	if len(log) != 2 {
		t.Fatalf("server has %d commits, want 2", len(log))
	}
	changed := 0
	for i := range engines {
		if errs[i] != nil || results[i].CommitSHA != log[0].SHA {
			t.Errorf("writer %d: %+v %v, want commit %s", i, results[i], errs[i], log[0].SHA)
		}
		if results[i].Changed {
			changed++
		}
	}
	if changed != 1 {
		t.Errorf("%d writers say they made the commit, want 1", changed)
	}
}
