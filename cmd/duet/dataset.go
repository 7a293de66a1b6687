package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
)

func newDatasetCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dataset",
		Short: "Define and inspect datasets (the schemas records are ingested into)",
	}
	cmd.AddCommand(newDatasetCreateCmd(a), newDatasetListCmd(a), newDatasetShowCmd(a), newDatasetCompactCmd(a))
	return cmd
}

func newDatasetCreateCmd(a *app) *cobra.Command {
	var (
		timeColumn  string
		columns     []string
		file        string
		dedupKey    string
		dedupWindow string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --time-column COLUMN --column NAME:TYPE [--column ...] | create [NAME] --file SPEC.json",
		Short: "Define a dataset",
		Long: `Define a dataset: its columns, their types (boolean, integer, bigint, double,
varchar, date, timestamp) and the time column holding each event's time.

  duet dataset create flights --time-column ts --column ts:timestamp --column origin:varchar --column delay:double
  duet dataset create --file flights.json   # {"name":..., "time_column":..., "columns":[{"name":..., "type":...}]}

With --dedup-key, a record whose key (a varchar, bigint or integer column)
was accepted less than --dedup-window before is ignored, so a producer's
retries do not count twice:

  duet dataset create orders --time-column ts --column ts:timestamp --column id:varchar --dedup-key id --dedup-window 10m`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d api.Dataset
			var err error
			if file != "" {
				if timeColumn != "" || len(columns) > 0 {
					return errors.New("give the columns either in --file or with --column and --time-column, not both")
				}
				if d, err = readDatasetFile(file, a.io.in); err != nil {
					return err
				}
				if len(args) == 1 {
					if d.Name != "" && d.Name != args[0] {
						return fmt.Errorf("NAME %q differs from the name %q in %s; drop one of them", args[0], d.Name, file)
					}
					d.Name = args[0]
				}
				if d.Name == "" {
					return fmt.Errorf("%s has no \"name\"; add one or pass NAME", file)
				}
			} else {
				if len(args) == 0 {
					return fmt.Errorf("missing NAME (usage: %s NAME --time-column COLUMN --column NAME:TYPE ...)", cmd.CommandPath())
				}
				if d, err = datasetFromFlags(args[0], timeColumn, columns); err != nil {
					return err
				}
			}
			if err := applyDedupFlags(&d, dedupKey, dedupWindow); err != nil {
				return err
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			created, err := c.CreateDataset(cmd.Context(), d)
			if err != nil {
				return err
			}
			dedup := ""
			if created.DedupKey != "" {
				dedup = fmt.Sprintf(", dedup key %s within %s", created.DedupKey, created.DedupWindow)
			}
			fmt.Fprintf(a.io.out, "created dataset %s (%d columns, time column %s%s)\n",
				created.Name, len(created.Columns), created.TimeColumn, dedup)
			return nil
		},
	}
	cmd.Flags().StringVar(&timeColumn, "time-column", "", "the column holding each event's time (a timestamp or date column)")
	cmd.Flags().StringArrayVar(&columns, "column", nil, "a column as NAME:TYPE; repeat for each column, in order")
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the dataset definition from this JSON file (- for stdin)")
	cmd.Flags().StringVar(&dedupKey, "dedup-key", "", "ignore records whose value of this column (varchar, bigint or integer) was accepted within --dedup-window")
	cmd.Flags().StringVar(&dedupWindow, "dedup-window", "", "how long an accepted key keeps its duplicates out, like 90s, 10m or 1h (default 10m, at most 24h)")
	return cmd
}

// applyDedupFlags sets --dedup-key and --dedup-window on d; they may add to
// a --file definition but not contradict it.
func applyDedupFlags(d *api.Dataset, key, window string) error {
	if window != "" && key == "" && d.DedupKey == "" {
		return errors.New("--dedup-window needs --dedup-key: name the column whose repeated values are ignored")
	}
	if key != "" {
		if d.DedupKey != "" && !strings.EqualFold(d.DedupKey, key) {
			return fmt.Errorf("--dedup-key %q differs from \"dedup_key\": %q in the file; drop one of them", key, d.DedupKey)
		}
		d.DedupKey = key
	}
	if window != "" {
		if _, err := time.ParseDuration(window); err != nil {
			return fmt.Errorf("--dedup-window %q: write it like 90s, 10m or 1h30m", window)
		}
		if d.DedupWindow != "" && d.DedupWindow != window {
			return fmt.Errorf("--dedup-window %q differs from \"dedup_window\": %q in the file; drop one of them", window, d.DedupWindow)
		}
		d.DedupWindow = window
	}
	return nil
}

func datasetFromFlags(name, timeColumn string, columns []string) (api.Dataset, error) {
	if len(columns) == 0 {
		return api.Dataset{}, errors.New("no columns: give each with --column NAME:TYPE (like --column delay:double), or use --file")
	}
	if timeColumn == "" {
		return api.Dataset{}, errors.New("--time-column is required: name the timestamp or date column holding each event's time")
	}
	d := api.Dataset{Name: name, TimeColumn: timeColumn}
	for _, c := range columns {
		colName, typ, ok := strings.Cut(c, ":")
		colName, typ = strings.TrimSpace(colName), strings.TrimSpace(typ)
		if !ok || colName == "" || typ == "" {
			return api.Dataset{}, fmt.Errorf("--column %q: want NAME:TYPE, like --column delay:double", c)
		}
		t, err := dataset.ParseType(typ)
		if err != nil {
			return api.Dataset{}, fmt.Errorf("--column %q: %w", c, err)
		}
		d.Columns = append(d.Columns, dataset.Column{Name: colName, Type: t})
	}
	return d, nil
}

func readDatasetFile(path string, stdin io.Reader) (api.Dataset, error) {
	var d api.Dataset
	raw, err := readFileOrStdin(path, stdin)
	if err != nil {
		return d, err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("%s: not a dataset definition: %w (want {\"name\":..., \"time_column\":..., \"columns\":[{\"name\":..., \"type\":...}]})", path, err)
	}
	return d, nil
}

// readFileOrStdin reads a whole file, or stdin for "-".
func readFileOrStdin(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError says which file and why
	}
	return b, nil
}

func newDatasetListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List datasets",
		Args:  argsExactly(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			list, err := c.ListDatasets(cmd.Context())
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintln(a.io.out, `no datasets yet (define one with "duet dataset create")`)
				return nil
			}
			rows := make([][]string, len(list))
			for i, d := range list {
				records, archived := "-", "-"
				if d.Log != nil {
					records = formatCount(d.Log.EndOffset)
					archived = formatCount(d.Log.ArchivedOffset)
				}
				created := "-"
				if d.CreatedAt != nil {
					created = formatTimestamp(*d.CreatedAt)
				}
				rows[i] = []string{d.Name, d.TimeColumn, fmt.Sprint(len(d.Columns)), records, archived, created}
			}
			return writeColumns(a.io.out, []string{"NAME", "TIME COLUMN", "COLUMNS", "RECORDS", "ARCHIVED", "CREATED"}, rows)
		},
	}
}

func newDatasetShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a dataset's columns and its log",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			d, err := c.GetDataset(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeDataset(a.io.out, d)
		},
	}
}

func writeDataset(w io.Writer, d api.Dataset) error {
	fields := [][2]string{{"name", d.Name}, {"time column", d.TimeColumn}}
	if d.DedupKey != "" {
		fields = append(fields, [2]string{"dedup", fmt.Sprintf("key %s, window %s (records whose key was accepted within the window are ignored)", d.DedupKey, d.DedupWindow)})
	}
	if d.CreatedAt != nil {
		fields = append(fields, [2]string{"created", formatTimestamp(*d.CreatedAt)})
	}
	if l := d.Log; l != nil {
		records := "none yet"
		if l.EndOffset > 0 {
			records = fmt.Sprintf("%s (offsets 0..%d)", formatCount(l.EndOffset), l.EndOffset-1)
		}
		fields = append(fields,
			[2]string{"records", records},
			[2]string{"archived", fmt.Sprintf("offsets below %d (%s)", l.ArchivedOffset, plural(int64(l.ArchiveFiles), "file"))})
	}
	if err := writeFields(w, fields); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rows := make([][]string, len(d.Columns))
	for i, col := range d.Columns {
		note := ""
		if strings.EqualFold(col.Name, d.TimeColumn) {
			note = "time column"
		}
		if strings.EqualFold(col.Name, d.DedupKey) {
			note = "dedup key"
		}
		rows[i] = []string{col.Name, string(col.Type), note}
	}
	return writeColumns(w, []string{"COLUMN", "TYPE", ""}, rows)
}
