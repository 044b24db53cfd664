package controllers

import "testing"

func TestSignalsNeverBlockTheSender(t *testing.T) {
	var s signals[string]
	for i := 0; i < signalBuffer; i++ {
		if !s.send("shop") {
			t.Fatalf("signal %d dropped with room in the buffer", i)
		}
	}
	if s.send("one too many") {
		t.Fatal("a signal was taken by a full buffer")
	}
	if got := (<-s.channel()).Object; got != "shop" {
		t.Fatalf("first signal = %q", got)
	}
	if !s.send("again") {
		t.Fatal("no room after one signal was drained")
	}
}
