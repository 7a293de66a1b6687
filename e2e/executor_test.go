package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/executor"
)

// The real `duet executor`, started with its task and as a standby that
// opened and warmed its engine before the task arrived: both write the same
// output, and both confine the task's SQL to the task's directories (the
// standby locks its engine down only once it has its task).
func TestExecutorColdAndStandby(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret.csv")
	if err := os.WriteFile(secret, []byte("a\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, standby := range []int{0, 1} {
		l, err := executor.NewLocal(executor.Config{Command: []string{duetBin}, Standby: standby}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = l.Run(ctx)
		}()
		launch := func(task batchlayer.Task) (string, error) {
			deadline := time.Now().Add(20 * time.Second)
			for l.Standing() < standby {
				if time.Now().After(deadline) {
					t.Fatal("no standby executor warmed up in 20 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			dir := t.TempDir()
			task.Output, task.AllowedDirs = filepath.Join(dir, "out"), []string{dir}
			b, _ := json.Marshal(task)
			if err := os.WriteFile(filepath.Join(dir, batchlayer.TaskFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return dir, l.Launch(context.Background(), dir)
		}

		dir, err := launch(batchlayer.Task{
			SQL:             "SELECT range AS x, DATE '2026-01-01' + CAST(range % 3 AS INTEGER) AS d FROM range(10)",
			PartitionColumn: "dt", PartitionExpr: "strftime(d, '%Y-%m-%d')",
		})
		if err != nil {
			t.Fatalf("standby=%d: %v", standby, err)
		}
		var res batchlayer.Result
		b, err := os.ReadFile(filepath.Join(dir, batchlayer.ResultFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		var rows int64
		var parts []string
		for _, f := range res.Files {
			rows += f.Rows
			parts = append(parts, f.Partition)
			if _, err := os.Stat(filepath.Join(dir, f.Path)); err != nil {
				t.Errorf("standby=%d: %v", standby, err)
			}
		}
		if rows != 10 || strings.Join(parts, ",") != "2026-01-01,2026-01-02,2026-01-03" {
			t.Fatalf("standby=%d: result %+v, want 10 rows in 3 day partitions", standby, res)
		}

		_, err = launch(batchlayer.Task{SQL: "SELECT * FROM read_csv('" + secret + "')"})
		if err == nil || !strings.Contains(err.Error(), "Permission Error") {
			t.Fatalf("standby=%d: reading outside the task's directories: got %v, want a permission error", standby, err)
		}
		cancel()
		<-done
	}
}
