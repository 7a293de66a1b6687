package main

import (
	"slices"
	"testing"
)

func TestProducersFlag(t *testing.T) {
	var p producerCounts
	if err := p.Set("1, 8,4"); err != nil {
		t.Fatalf("Set(1, 8,4): %v", err)
	}
	if !slices.Equal(p, producerCounts{1, 8, 4}) || p.most() != 8 || p.String() != "1,8,4" {
		t.Errorf("Set(1, 8,4) = %v (most %d, %q), want [1 8 4] (most 8, \"1,8,4\")", p, p.most(), p.String())
	}
	for _, bad := range []string{"", "0", "65", "1,x", "8,8", "1,"} {
		if err := p.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted %v", bad, p)
		}
	}
}

func TestOrList(t *testing.T) {
	for _, c := range []struct {
		in   []int
		want string
	}{{[]int{8}, "8"}, {[]int{1, 8}, "1 or 8"}, {[]int{1, 4, 8}, "1, 4 or 8"}} {
		if got := orList(c.in); got != c.want {
			t.Errorf("orList(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
