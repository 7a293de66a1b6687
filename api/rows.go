package api

// Rows is the JSON answer of GET /v1/views/{name}/rows: the view's rows
// (filtered, rolled up, ordered and limited as asked) and the state they
// reflect: the batch version (0 before the first build), the offset it
// covers and the log end the speed layer had applied.
type Rows struct {
	Columns       []RowsColumn `json:"columns"`
	Rows          [][]any      `json:"rows"`
	BatchVersion  int64        `json:"batch_version"`
	CoveredOffset int64        `json:"covered_offset"`
	LogEndOffset  int64        `json:"log_end_offset"`
}

// RowsColumn is one column of a Rows answer; Type is the engine's type name
// (BIGINT, DOUBLE, VARCHAR, DATE, TIMESTAMP, ...).
type RowsColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}
