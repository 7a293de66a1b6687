package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"
	_ "github.com/trinodb/trino-go-client/trino"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/server"
)

const demoViewSQL = `SELECT date_trunc('hour', date) AS hour, origin, count(*) AS flights, sum(delay) AS total_delay, min(delay) AS min_delay, max(delay) AS max_delay, avg(delay) AS avg_delay FROM flights GROUP BY 1, 2`

func newDemoCmd() *cobra.Command {
	var (
		events int
		keep   bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run an embedded server on a temporary directory and show the lambda path end to end",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), events, keep)
		},
	}
	cmd.Flags().IntVar(&events, "events", 20_000, "synthetic events to stream")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data directory")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, events int, keep bool) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "duet-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	cfg.SegmentMaxRecords, cfg.SegmentMaxAge = 2_500, 2*time.Second
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	defer func() { stop(); <-done }()
	base := "http://" + srv.Addr()
	fmt.Fprintf(out, "duet demo: embedded server at %s, data in %s\n\n", base, dir)

	c, err := client.New(base, nil)
	if err != nil {
		return err
	}
	if _, err := c.CreateDataset(ctx, api.Dataset{Name: "flights", TimeColumn: "date", Columns: []dataset.Column{
		{Name: "date", Type: dataset.Timestamp}, {Name: "delay", Type: dataset.Bigint}, {Name: "origin", Type: dataset.Varchar},
	}}); err != nil {
		return fmt.Errorf("create dataset: %w", err)
	}
	fmt.Fprintln(out, "1. created dataset flights(date timestamp, delay bigint, origin varchar)")
	if _, err := c.CreateView(ctx, api.ViewRequest{Name: "delays", SQL: demoViewSQL, Schedule: "@every 5m"}); err != nil {
		return fmt.Errorf("create view: %w", err)
	}
	fmt.Fprintf(out, "2. created view delays:\n   %s\n", demoViewSQL)

	gen := newFlightGen(42)
	const batch = 500
	late := 0
	for sent, n := 0, 0; sent < events; n++ {
		size := min(batch, events-sent)
		body, l := gen.ndjson(size)
		late += l
		if _, err := c.Ingest(ctx, "flights", client.ContentTypeNDJSON, body); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		sent += size
		if sent == events/2 {
			fmt.Fprintf(out, "3. streamed %d events (%d of them late or out of order)\n", sent, late)
			j, err := c.TriggerBuild(ctx, "delays")
			if err != nil {
				return fmt.Errorf("build: %w", err)
			}
			if j, err = c.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil {
				return err
			}
			if j.State != api.JobSucceeded {
				return fmt.Errorf("build %s %s: %s", j.ID, j.State, j.Error)
			}
			fmt.Fprintf(out, "4. batch build %s published version %d covering offsets < %d in %d ms (on an ephemeral executor)\n",
				j.ID[:8], j.Version.Version, j.Version.CoveredOffset, j.DurationMs)
		}
	}
	fmt.Fprintf(out, "5. streamed %d more events; the speed layer holds everything the batch version does not cover\n\n", events-events/2)

	cols, rows, err := runQuery(ctx, c, "demo", "SELECT hour, origin, flights, total_delay, min_delay, max_delay, round(avg_delay, 2) AS avg_delay FROM views.delays ORDER BY flights DESC, hour, origin LIMIT 10")
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "SELECT ... FROM views.delays ORDER BY flights DESC LIMIT 10   (through the Trino protocol)")
	if err := writeTable(out, cols, rows); err != nil {
		return err
	}

	v, err := c.GetView(ctx, "delays")
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nfreshness of views.delays:")
	fmt.Fprintf(out, "  batch version %d covers offsets [0, %d)\n", v.Batch.Version, v.Batch.CoveredOffset)
	fmt.Fprintf(out, "  speed layer supplies offsets [%d, %d) in %d segment(s); log end offset %d\n",
		v.Speed.FromOffset, v.Speed.LogEndOffset, len(v.Speed.Segments), v.Speed.LogEndOffset)
	fmt.Fprintf(out, "  lag behind batch: %d records, %d ms; every accepted event is visible now\n", v.Speed.LagRecords, v.Speed.LagMillis)

	_, merged, err := runQuery(ctx, c, "demo", "SELECT * FROM views.delays ORDER BY hour, origin")
	if err != nil {
		return err
	}
	_, recomputed, err := runQuery(ctx, c, "demo", "SELECT * FROM ("+strings.Replace(demoViewSQL, "FROM flights", "FROM raw.flights", 1)+") ORDER BY hour, origin")
	if err != nil {
		return err
	}
	if err := sameResult(merged, recomputed); err != nil {
		return fmt.Errorf("merged view differs from recomputation over raw.flights: %w", err)
	}
	_, total, err := runQuery(ctx, c, "demo", "SELECT count(*) FROM raw.flights")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nmerged answer == the view SQL recomputed over all %v events in raw.flights: %d groups, identical\n", total[0][0], len(merged))
	fmt.Fprintf(out, "demo finished in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// flightGen makes deterministic flight events; about one in ten is late
// (hours before the stream's clock) and each batch is shuffled.
type flightGen struct {
	rnd   *rand.Rand
	clock time.Time
}

func newFlightGen(seed uint64) *flightGen {
	return &flightGen{rnd: rand.New(rand.NewPCG(seed, seed)), clock: time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)}
}

func (g *flightGen) ndjson(n int) ([]byte, int) {
	origins := []string{"AMS", "BER", "CDG", "JFK", "LHR", "SFO"}
	type ev struct {
		Date   string `json:"date"`
		Delay  int64  `json:"delay"`
		Origin string `json:"origin"`
	}
	evs := make([]ev, n)
	late := 0
	for i := range evs {
		g.clock = g.clock.Add(time.Duration(g.rnd.IntN(4000)) * time.Millisecond)
		t := g.clock
		if g.rnd.IntN(10) == 0 {
			t = t.Add(-time.Duration(1+g.rnd.IntN(6)) * time.Hour)
			late++
		}
		evs[i] = ev{Date: t.Format(time.RFC3339), Delay: int64(g.rnd.NormFloat64()*15 + 8), Origin: origins[g.rnd.IntN(len(origins))]}
	}
	g.rnd.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range evs {
		_ = enc.Encode(e)
	}
	return b.Bytes(), late
}

// sameResult compares two results exactly, except floats, which may differ
// in the last bits (avg is merged as sum/count rather than divided once).
func sameResult(a, b [][]any) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d rows vs %d", len(a), len(b))
	}
	for i := range a {
		for j := range a[i] {
			x, xok := a[i][j].(float64)
			y, yok := b[i][j].(float64)
			if xok && yok && math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(x)) {
				continue
			}
			if !reflect.DeepEqual(a[i][j], b[i][j]) {
				return fmt.Errorf("row %d column %d: %v vs %v", i+1, j+1, a[i][j], b[i][j])
			}
		}
	}
	return nil
}
