package scheduler

import "fmt"

// Names of an attempt's output objects under its LogPrefix.
const (
	LogStderr = "stderr"
	LogStdout = "stdout"
)

// LogPrefix is where the object store keeps the output of one attempt of a
// job (objects LogStderr and LogStdout under it). The scheduler sets
// Job.LogPrefix to it when the attempt starts; the Runner writes there.
func LogPrefix(jobID string, attempt int) string {
	return fmt.Sprintf("logs/jobs/%s/attempt-%d/", jobID, attempt)
}
