package dataset_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/dataset"
)

func sourceSpec(src *dataset.Source) dataset.Spec {
	return dataset.Spec{Name: "clicks", TimeColumn: "ts", Source: src, Columns: []dataset.Column{
		{Name: "ts", Type: dataset.Timestamp}, {Name: "page", Type: dataset.Varchar},
	}}
}

func TestSourceValidation(t *testing.T) {
	kafka := func(f func(*dataset.Source)) *dataset.Source {
		s := &dataset.Source{Kind: "kafka", Brokers: []string{"127.0.0.1:9092", "kafka-2:9092"}, Topic: "clicks.v1"}
		if f != nil {
			f(s)
		}
		return s
	}
	nats := func(f func(*dataset.Source)) *dataset.Source {
		s := &dataset.Source{Kind: "nats", URL: "nats://127.0.0.1:4222", Stream: "CLICKS"}
		if f != nil {
			f(s)
		}
		return s
	}
	for _, tc := range []struct {
		name    string
		src     *dataset.Source
		wantErr string // empty: valid
	}{
		{"no source", nil, ""},
		{"kafka", kafka(nil), ""},
		{"kafka, kind in capitals", kafka(func(s *dataset.Source) { s.Kind = "Kafka" }), ""},
		{"kafka with group and format", kafka(func(s *dataset.Source) { s.Group = "g"; s.Format = "JSON" }), ""},
		{"nats", nats(nil), ""},
		{"nats with subject, two servers", nats(func(s *dataset.Source) { s.Subject = "clicks.>"; s.URL = "nats://a:4222,tls://b:4222" }), ""},
		{"no kind", &dataset.Source{Topic: "t"}, "source.kind: required (kafka or nats)"},
		{"unknown kind", kafka(func(s *dataset.Source) { s.Kind = "pulsar" }), `source.kind "pulsar": unknown source`},
		{"unknown format", kafka(func(s *dataset.Source) { s.Format = "avro" }), `source.format "avro": unknown format`},
		{"no brokers", kafka(func(s *dataset.Source) { s.Brokers = nil }), "source.brokers: a kafka source needs at least one seed broker"},
		{"broker without port", kafka(func(s *dataset.Source) { s.Brokers = []string{"a:1", "kafka"} }), `source.brokers[1] "kafka": write a broker as host:port`},
		{"no topic", kafka(func(s *dataset.Source) { s.Topic = "" }), "source.topic: required for a kafka source"},
		{"bad topic", kafka(func(s *dataset.Source) { s.Topic = "a topic" }), `source.topic "a topic": a Kafka topic name`},
		{"kafka with a nats field", kafka(func(s *dataset.Source) { s.Stream = "S" }), "source.stream: only a nats source has it"},
		{"no url", nats(func(s *dataset.Source) { s.URL = "" }), "source.url: required for a nats source"},
		{"url without scheme", nats(func(s *dataset.Source) { s.URL = "127.0.0.1:4222" }), `source.url "127.0.0.1:4222": write the server as nats://host:port`},
		{"http url", nats(func(s *dataset.Source) { s.URL = "http://x:1" }), `source.url "http://x:1"`},
		{"no stream", nats(func(s *dataset.Source) { s.Stream = "" }), "source.stream: required for a nats source"},
		{"bad stream", nats(func(s *dataset.Source) { s.Stream = "a.b" }), `source.stream "a.b": a stream name cannot contain`},
		{"bad subject", nats(func(s *dataset.Source) { s.Subject = "a..b" }), `source.subject "a..b"`},
		{"nats with a kafka field", nats(func(s *dataset.Source) { s.Brokers = []string{"a:1"} }), "source.brokers: only a kafka source has it"},
		{"nats with a group", nats(func(s *dataset.Source) { s.Group = "g" }), "source.group: only a kafka source has it"},
	} {
		s := sourceSpec(tc.src)
		err := s.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: got error %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestSourceDefaultsAndJSON(t *testing.T) {
	s := sourceSpec(&dataset.Source{Kind: " KAFKA", Brokers: []string{"k:9092"}, Topic: "clicks"})
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	want := dataset.Source{Kind: dataset.SourceKafka, Format: dataset.FormatJSON, Brokers: []string{"k:9092"}, Topic: "clicks", Group: "duet-clicks"}
	if !reflect.DeepEqual(*s.Source, want) {
		t.Fatalf("validated source = %+v, want %+v", *s.Source, want)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"source":{"kind":"kafka","format":"json","brokers":["k:9092"],"topic":"clicks","group":"duet-clicks"}`) {
		t.Fatalf("JSON %s lacks the source as written", b)
	}
	var back dataset.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Source == nil || !reflect.DeepEqual(*back.Source, want) {
		t.Fatalf("round trip: got %+v", back.Source)
	}

	n := sourceSpec(&dataset.Source{Kind: "nats", URL: "nats://n:4222", Stream: "CLICKS", Subject: "clicks.*"})
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(n); !strings.Contains(string(b), `"source":{"kind":"nats","format":"json","url":"nats://n:4222","stream":"CLICKS","subject":"clicks.*"}`) {
		t.Fatalf("JSON %s lacks the nats source", b)
	}
	// A spec without a source stores no source field, as before.
	plain := sourceSpec(nil)
	if b, _ := json.Marshal(plain); strings.Contains(string(b), "source") {
		t.Fatalf("JSON %s of a spec without a source mentions it", b)
	}
}
