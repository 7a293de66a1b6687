package dataset

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// SourceKind names the system a dataset reads its events from.
type SourceKind string

// The sources a dataset may read from.
const (
	SourceKafka SourceKind = "kafka"
	SourceNATS  SourceKind = "nats"
)

// FormatJSON is one JSON object per message, read by the same rules as an
// NDJSON ingest row: keys match columns case-insensitively, a missing key or
// null is a null, the time column is required, unknown keys are an error.
const FormatJSON = "json"

// Source is an external log a dataset reads its events from: a Kafka topic
// or a NATS JetStream stream. The source stays the system of record: duet
// stores with each batch where the source stood after it and resumes from
// there, so every message is stored exactly once, across crashes.
type Source struct {
	Kind SourceKind `json:"kind"`
	// Format is how a message encodes its event; Validate sets FormatJSON,
	// the only one, when it is empty.
	Format string `json:"format,omitempty"`

	// Brokers are a Kafka cluster's seed brokers, host:port each.
	Brokers []string `json:"brokers,omitempty"`
	// Topic is the Kafka topic, all of whose partitions are read (also
	// partitions added later).
	Topic string `json:"topic,omitempty"`
	// Group is the Kafka consumer group duet commits its archived offsets
	// to, so Kafka's tools show its lag; duet's own positions, not the
	// group's, decide where it resumes. Validate sets "duet-<dataset>" when
	// it is empty.
	Group string `json:"group,omitempty"`

	// URL is the NATS server (nats://host:port; several separated by commas).
	URL string `json:"url,omitempty"`
	// Stream is the JetStream stream read.
	Stream string `json:"stream,omitempty"`
	// Subject, when set, reads only the stream's messages on that subject
	// (wildcards allowed); every message of the stream otherwise.
	Subject string `json:"subject,omitempty"`
}

// Kafka topic names: what Kafka itself accepts.
var kafkaTopicRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// validateSource checks s.Source, naming the bad field, and fills defaults.
func (s *Spec) validateSource() error {
	src := s.Source
	if src == nil {
		return nil
	}
	src.Kind = SourceKind(strings.ToLower(strings.TrimSpace(string(src.Kind))))
	switch f := strings.ToLower(strings.TrimSpace(src.Format)); f {
	case "":
		src.Format = FormatJSON
	case FormatJSON:
		src.Format = f
	default:
		return fmt.Errorf("source.format %q: unknown format (use json: one JSON object per message)", src.Format)
	}
	switch src.Kind {
	case SourceKafka:
		return src.validateKafka(s.Name)
	case SourceNATS:
		return src.validateNATS()
	case "":
		return fmt.Errorf("source.kind: required (kafka or nats)")
	default:
		return fmt.Errorf("source.kind %q: unknown source (use kafka or nats)", src.Kind)
	}
}

func (src *Source) validateKafka(dataset string) error {
	if err := onlyFor("nats", map[string]string{"url": src.URL, "stream": src.Stream, "subject": src.Subject}); err != nil {
		return err
	}
	if len(src.Brokers) == 0 {
		return fmt.Errorf("source.brokers: a kafka source needs at least one seed broker (host:port)")
	}
	for i, b := range src.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("source.brokers[%d] %q: write a broker as host:port", i, b)
		}
	}
	if src.Topic == "" {
		return fmt.Errorf("source.topic: required for a kafka source")
	}
	if !kafkaTopicRe.MatchString(src.Topic) {
		return fmt.Errorf("source.topic %q: a Kafka topic name has 1 to 249 letters, digits, '.', '_' or '-'", src.Topic)
	}
	if src.Group == "" {
		src.Group = "duet-" + dataset
	}
	return nil
}

func (src *Source) validateNATS() error {
	if err := onlyFor("kafka", map[string]string{"brokers": strings.Join(src.Brokers, ","), "topic": src.Topic, "group": src.Group}); err != nil {
		return err
	}
	if src.URL == "" {
		return fmt.Errorf("source.url: required for a nats source (nats://host:port)")
	}
	for _, u := range strings.Split(src.URL, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host == "" || !validNATSScheme(p.Scheme) {
			return fmt.Errorf("source.url %q: write the server as nats://host:port (tls://, ws:// or wss:// also work; separate several by commas)", src.URL)
		}
	}
	if src.Stream == "" {
		return fmt.Errorf("source.stream: required for a nats source (the JetStream stream to read)")
	}
	if strings.ContainsAny(src.Stream, " \t\r\n.*>/\\") {
		return fmt.Errorf("source.stream %q: a stream name cannot contain whitespace, '.', '*', '>', '/' or '\\'", src.Stream)
	}
	if src.Subject != "" && (strings.ContainsAny(src.Subject, " \t\r\n") || strings.HasPrefix(src.Subject, ".") ||
		strings.HasSuffix(src.Subject, ".") || strings.Contains(src.Subject, "..")) {
		return fmt.Errorf("source.subject %q: a subject is dot-separated tokens without whitespace, like orders.* or orders.>", src.Subject)
	}
	return nil
}

func validNATSScheme(s string) bool {
	switch s {
	case "nats", "tls", "ws", "wss":
		return true
	}
	return false
}

// onlyFor refuses fields of the other kind of source, which would be ignored.
func onlyFor(kind string, fields map[string]string) error {
	for _, name := range []string{"brokers", "topic", "group", "url", "stream", "subject"} {
		if v, ok := fields[name]; ok && v != "" {
			return fmt.Errorf("source.%s: only a %s source has it; remove it or set source.kind to %s", name, kind, kind)
		}
	}
	return nil
}

// Describe names the source for messages: "Kafka topic t" or "NATS JetStream
// stream s".
func (src *Source) Describe() string {
	if src.Kind == SourceKafka {
		return fmt.Sprintf("Kafka topic %q", src.Topic)
	}
	return fmt.Sprintf("NATS JetStream stream %q", src.Stream)
}
