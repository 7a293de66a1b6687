package scheduler

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// Catchup is what a view's schedule does about fires missed while no
// scheduler ran.
type Catchup string

// Catch-up policies.
const (
	// CatchupSkip drops missed fires: the next build is the next future fire.
	CatchupSkip Catchup = "skip"
	// CatchupOnce runs one build for all the missed fires.
	CatchupOnce Catchup = "once"
	// CatchupAll runs one build per missed fire, the latest MaxCatchupFires of them.
	CatchupAll Catchup = "all"
)

// MaxCatchupFires bounds the jobs CatchupAll creates after one downtime.
const MaxCatchupFires = 100

// ParseCatchup reads a policy name; "" is CatchupSkip.
func ParseCatchup(s string) (Catchup, error) {
	switch c := Catchup(s); c {
	case "":
		return CatchupSkip, nil
	case CatchupSkip, CatchupOnce, CatchupAll:
		return c, nil
	}
	return "", fmt.Errorf("catchup %q: use skip (drop fires missed while the server was down), once (one build for them) or all (one build each)", s)
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a cron expression: 5 fields or 6 with leading seconds,
// descriptors such as @hourly and @every 5m, and an optional CRON_TZ=Zone
// prefix. Without CRON_TZ the fields are in UTC.
func ParseSchedule(spec string) (cron.Schedule, error) {
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w (use 5 cron fields like \"*/15 * * * *\", @hourly or \"@every 5m\")", spec, err)
	}
	return s, nil
}

// ValidateSchedule checks a cron expression as ParseSchedule reads it.
func ValidateSchedule(spec string) error {
	_, err := ParseSchedule(spec)
	return err
}

// Fires is what Due decides for one schedule.
type Fires struct {
	// Run are the fire times to create jobs for now, oldest first.
	Run []time.Time
	// Missed counts the fires after lastFire and at or before now.
	Missed int
	// Latest is the latest fire at or before now (lastFire if none): the
	// lastFire of the next call.
	Latest time.Time
}

// Due decides which fires of sched to run at now, given the latest fire
// already handled: of the fires in (lastFire, now], CatchupSkip runs none,
// CatchupOnce the latest and CatchupAll each of the latest MaxCatchupFires.
// A zero lastFire means the schedule has never been watched: nothing is due.
//
// The policy is about downtime: a running scheduler calls Due with
// CatchupOnce as it wakes at each fire, so a fire is never skipped because
// the loop woke a little late, and several fires that came due during one
// slow pass coalesce into one build.
func Due(sched cron.Schedule, lastFire, now time.Time, policy Catchup) Fires {
	f := Fires{Latest: lastFire}
	if lastFire.IsZero() {
		return f
	}
	var recent []time.Time // the latest MaxCatchupFires fires, as a sliding window
	for t := sched.Next(lastFire); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		f.Missed++
		f.Latest = t
		if policy == CatchupAll {
			if len(recent) == MaxCatchupFires {
				recent = recent[1:]
			}
			recent = append(recent, t)
		}
	}
	switch {
	case f.Missed == 0 || policy == CatchupSkip:
	case policy == CatchupAll:
		f.Run = recent
	default:
		f.Run = []time.Time{f.Latest}
	}
	return f
}
