package sqlgateway

import (
	"encoding/json"
)

// queryResults is the QueryResults document every statement URI answers.
type queryResults struct {
	ID          string          `json:"id"`
	InfoURI     string          `json:"infoUri"`
	NextURI     string          `json:"nextUri,omitempty"`
	Columns     []column        `json:"columns,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"` // an array of row arrays, pre-encoded
	Stats       statementStats  `json:"stats"`
	Error       *errorDoc       `json:"error,omitempty"`
	Warnings    []any           `json:"warnings"`
	UpdateType  string          `json:"updateType,omitempty"`
	UpdateCount *int64          `json:"updateCount,omitempty"`
}

type column struct {
	Name          string        `json:"name"`
	Type          string        `json:"type"`
	TypeSignature typeSignature `json:"typeSignature"`
}

func newColumn(name string, t trinoType) column {
	return column{Name: name, Type: t.String(), TypeSignature: t.signature()}
}

// statementStats has every field StatementStats requires; the gateway runs
// queries on one node, so most counters are trivial.
type statementStats struct {
	State              string  `json:"state"`
	Queued             bool    `json:"queued"`
	Scheduled          bool    `json:"scheduled"`
	Nodes              int     `json:"nodes"`
	TotalSplits        int     `json:"totalSplits"`
	QueuedSplits       int     `json:"queuedSplits"`
	RunningSplits      int     `json:"runningSplits"`
	CompletedSplits    int     `json:"completedSplits"`
	CPUTimeMillis      int64   `json:"cpuTimeMillis"`
	WallTimeMillis     int64   `json:"wallTimeMillis"`
	QueuedTimeMillis   int64   `json:"queuedTimeMillis"`
	ElapsedTimeMillis  int64   `json:"elapsedTimeMillis"`
	ProcessedRows      int64   `json:"processedRows"`
	ProcessedBytes     int64   `json:"processedBytes"`
	PhysicalInputBytes int64   `json:"physicalInputBytes"`
	PeakMemoryBytes    int64   `json:"peakMemoryBytes"`
	SpilledBytes       int64   `json:"spilledBytes"`
	ProgressPercentage float64 `json:"progressPercentage,omitempty"`
}

type errorDoc struct {
	Message       string         `json:"message"`
	ErrorCode     int            `json:"errorCode"`
	ErrorName     string         `json:"errorName"`
	ErrorType     string         `json:"errorType"`
	ErrorLocation *errorLocation `json:"errorLocation,omitempty"`
	FailureInfo   failureInfo    `json:"failureInfo"`
}

type errorLocation struct {
	LineNumber   int `json:"lineNumber"`
	ColumnNumber int `json:"columnNumber"`
}

type failureInfo struct {
	Type          string         `json:"type"`
	Message       string         `json:"message"`
	Suppressed    []any          `json:"suppressed"`
	Stack         []string       `json:"stack"`
	ErrorInfo     errorInfo      `json:"errorInfo"`
	ErrorLocation *errorLocation `json:"errorLocation,omitempty"`
}

type errorInfo struct {
	Code int    `json:"code"`
	Name string `json:"name"`
	Type string `json:"type"`
}

func (e *queryError) document() *errorDoc {
	var loc *errorLocation
	if e.line > 0 && e.column > 0 {
		loc = &errorLocation{LineNumber: e.line, ColumnNumber: e.column}
	}
	return &errorDoc{
		Message:       e.message,
		ErrorCode:     e.code.code,
		ErrorName:     e.code.name,
		ErrorType:     e.code.kind,
		ErrorLocation: loc,
		FailureInfo: failureInfo{
			Type:          "io.trino.spi.TrinoException",
			Message:       e.message,
			Suppressed:    []any{},
			Stack:         []string{},
			ErrorInfo:     errorInfo{Code: e.code.code, Name: e.code.name, Type: e.code.kind},
			ErrorLocation: loc,
		},
	}
}

// serverInfo is the answer of GET /v1/info.
type serverInfo struct {
	NodeVersion nodeVersion `json:"nodeVersion"`
	Environment string      `json:"environment"`
	Coordinator bool        `json:"coordinator"`
	Starting    bool        `json:"starting"`
	Uptime      string      `json:"uptime"`
}

type nodeVersion struct {
	Version string `json:"version"`
}
