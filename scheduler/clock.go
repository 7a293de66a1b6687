package scheduler

import "time"

// Clock is the scheduler's time source; tests drive a fake one.
//
// Waits are for an absolute time, not a duration, so a fake clock that is
// advanced between the loop's Now and its wait cannot make it oversleep:
// a wait for a time already reached returns at once.
type Clock interface {
	Now() time.Time
	// WaitUntil returns a channel that receives once the clock reads t or
	// later; at once if it already does.
	WaitUntil(t time.Time) <-chan time.Time
}

// RealClock is the wall clock.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now().UTC() }

func (realClock) WaitUntil(t time.Time) <-chan time.Time {
	// Unreferenced timers are collected since Go 1.23, so abandoning the
	// channel when the loop wakes for another reason leaks nothing.
	return time.After(time.Until(t))
}
