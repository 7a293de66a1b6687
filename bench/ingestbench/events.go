package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
	"github.com/duet-analytics/duet/dataset"
)

// The benchmarked dataset: web analytics events with ten columns of every
// kind a producer sends (a timestamp, strings of several lengths and
// cardinalities, integers, doubles and a boolean), and the demo's kind of
// view over it: hourly aggregates per key.
const (
	datasetName = "events"
	viewName    = "latency_by_country"
	viewSQL     = "SELECT date_trunc('hour', ts) AS hour, country, count(*) AS events, sum(latency_ms) AS total_latency, " +
		"min(latency_ms) AS min_latency, max(latency_ms) AS max_latency, avg(latency_ms) AS avg_latency FROM events GROUP BY 1, 2"
)

func eventsSpec() dataset.Spec {
	return dataset.Spec{Name: datasetName, TimeColumn: "ts", Columns: []dataset.Column{
		{Name: "ts", Type: dataset.Timestamp},
		{Name: "user_id", Type: dataset.Bigint},
		{Name: "session_id", Type: dataset.Varchar},
		{Name: "country", Type: dataset.Varchar},
		{Name: "device", Type: dataset.Varchar},
		{Name: "path", Type: dataset.Varchar},
		{Name: "status", Type: dataset.Integer},
		{Name: "latency_ms", Type: dataset.Double},
		{Name: "revenue", Type: dataset.Double},
		{Name: "is_bot", Type: dataset.Boolean},
	}}
}

// event is one generated row, in the dataset's column order.
type event struct {
	ts                             time.Time
	userID                         int64
	session, country, device, path string
	status                         int32
	latency, revenue               float64
	isBot                          bool
}

var (
	countries = []string{"US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "AU", "ES", "IT", "NL", "SE", "PL", "MX",
		"KR", "CN", "RU", "TR", "ZA", "AR", "CH", "BE", "AT", "NO", "DK", "FI", "IE", "PT", "CZ", "RO", "HU", "GR",
		"IL", "SG", "HK", "TW", "NZ", "CL", "CO"}
	devices  = []string{"ios", "android", "web-chrome", "web-safari", "web-firefox", "web-edge", "tv"}
	sections = []string{"products", "categories", "search", "checkout/cart", "account/orders", "blog/posts", "help/articles"}
	statuses = []int32{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 304, 301, 404, 500}
)

// generator makes events whose times fall in the minute before its start,
// with one in a hundred up to three hours late, as a fleet of producers
// sends them.
type generator struct {
	rnd   *rand.Rand
	start time.Time
}

func newGenerator(seed int64, start time.Time) *generator {
	return &generator{rnd: rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)), start: start}
}

func (g *generator) next() event {
	r := g.rnd
	age := time.Duration(r.Int64N(int64(time.Minute)))
	if r.IntN(100) == 0 {
		age = time.Duration(r.Int64N(int64(3 * time.Hour)))
	}
	// Skewed like real traffic: low indexes are the big countries.
	c := min(r.IntN(len(countries)), r.IntN(len(countries)))
	e := event{
		ts:      g.start.Add(-age).Truncate(time.Microsecond),
		userID:  r.Int64N(10_000_000),
		session: fmt.Sprintf("%016x", r.Uint64()),
		country: countries[c],
		device:  devices[r.IntN(len(devices))],
		path:    fmt.Sprintf("/%s/%d", sections[r.IntN(len(sections))], r.IntN(100_000)),
		status:  statuses[r.IntN(len(statuses))],
		latency: float64(r.IntN(2_000_000)) / 1000,
		isBot:   r.IntN(20) == 0,
	}
	if r.IntN(25) == 0 {
		e.revenue = float64(r.IntN(50_000)) / 100
	}
	return e
}

func (g *generator) batch(n int) []event {
	out := make([]event, n)
	for i := range out {
		out[i] = g.next()
	}
	return out
}

// Formats of an ingest request body.
const (
	formatArrow  = "arrow"
	formatNDJSON = "ndjson"
)

// contentType is what producers send for each format.
func contentType(format string) string {
	if format == formatArrow {
		return "application/vnd.apache.arrow.stream"
	}
	return "application/x-ndjson"
}

func formatName(format string) string {
	if format == formatArrow {
		return "Arrow IPC"
	}
	return "NDJSON"
}

// encode renders events as one request body in the given format.
func encode(format string, events []event) ([]byte, error) {
	if format == formatArrow {
		return encodeArrow(events)
	}
	return encodeNDJSON(events), nil
}

// encodeNDJSON writes one JSON object per line, timestamps in RFC 3339 with
// milliseconds as most producers' JSON libraries write them.
func encodeNDJSON(events []event) []byte {
	var b []byte
	for _, e := range events {
		b = append(b, `{"ts":"`...)
		b = e.ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, `","user_id":`...)
		b = strconv.AppendInt(b, e.userID, 10)
		b = append(b, `,"session_id":`...)
		b = strconv.AppendQuote(b, e.session)
		b = append(b, `,"country":`...)
		b = strconv.AppendQuote(b, e.country)
		b = append(b, `,"device":`...)
		b = strconv.AppendQuote(b, e.device)
		b = append(b, `,"path":`...)
		b = strconv.AppendQuote(b, e.path)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(e.status), 10)
		b = append(b, `,"latency_ms":`...)
		b = strconv.AppendFloat(b, e.latency, 'f', -1, 64)
		b = append(b, `,"revenue":`...)
		b = strconv.AppendFloat(b, e.revenue, 'f', -1, 64)
		b = append(b, `,"is_bot":`...)
		b = strconv.AppendBool(b, e.isBot)
		b = append(b, "}\n"...)
	}
	return b
}

// newRecord builds the events as one Arrow record with the dataset's schema.
func newRecord(events []event) arrow.RecordBatch {
	spec := eventsSpec()
	b := array.NewRecordBuilder(memory.DefaultAllocator, spec.ArrowSchema())
	defer b.Release()
	for _, e := range events {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(e.ts.UnixMicro()))
		b.Field(1).(*array.Int64Builder).Append(e.userID)
		b.Field(2).(*array.StringBuilder).Append(e.session)
		b.Field(3).(*array.StringBuilder).Append(e.country)
		b.Field(4).(*array.StringBuilder).Append(e.device)
		b.Field(5).(*array.StringBuilder).Append(e.path)
		b.Field(6).(*array.Int32Builder).Append(e.status)
		b.Field(7).(*array.Float64Builder).Append(e.latency)
		b.Field(8).(*array.Float64Builder).Append(e.revenue)
		b.Field(9).(*array.BooleanBuilder).Append(e.isBot)
	}
	return b.NewRecordBatch()
}

// encodeArrow is the events as an ingest body in Arrow IPC.
func encodeArrow(events []event) ([]byte, error) {
	rec := newRecord(events)
	defer rec.Release()
	return benchenv.ArrowIPC(rec)
}

// arrowMemoryBytes is the size of the events' Arrow buffers in memory: what
// the data itself takes, to compare the server's memory per event with.
func arrowMemoryBytes(events []event) int64 {
	rec := newRecord(events)
	defer rec.Release()
	var n int64
	for _, col := range rec.Columns() {
		for _, buf := range col.Data().Buffers() {
			if buf != nil {
				n += int64(buf.Len())
			}
		}
	}
	return n
}

// payloads are the pre-encoded request bodies of one format, so the load
// generator spends its CPU on sending rather than encoding.
type payloads struct {
	format      string
	bodies      [][]byte
	eventsPer   int
	bytesPerEvt float64
}

func makePayloads(format string, batches [][]event) (*payloads, error) {
	p := &payloads{format: format, eventsPer: len(batches[0])}
	var total int64
	for _, evs := range batches {
		body, err := encode(format, evs)
		if err != nil {
			return nil, err
		}
		p.bodies = append(p.bodies, body)
		total += int64(len(body))
	}
	p.bytesPerEvt = float64(total) / float64(len(batches)*p.eventsPer)
	return p, nil
}
