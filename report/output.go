package report

import (
	"fmt"
	"io"

	"github.com/vgrid/vgrid/benchmark"
	"github.com/vgrid/vgrid/orchestrator"
)

// Output is one way vgrid writes a stored run: the report (Markdown, CSV
// of the candidates or of the load levels, HTML) or the export (JSON with
// every raw report, CSV of every request). The CLI, the API and the
// dashboard's downloads all go through ParseOutput and Write.
type Output struct {
	Kind   string // report, export
	Format string // md, csv, html (report); json, csv (export)
	Table  string // report csv: candidates or levels
}

// ParseOutput checks a kind, format and table as a user gives them ("" for
// the defaults: a Markdown report, a JSON export, the candidates' table).
func ParseOutput(kind, format, table string) (Output, error) {
	o := Output{Kind: kind, Format: format, Table: table}
	switch kind {
	case "report":
		switch o.Format {
		case "", "markdown":
			o.Format = "md"
		case "md", "csv", "html":
		default:
			return o, fmt.Errorf("format %q: want md, csv or html", format)
		}
		switch o.Table {
		case "":
			o.Table = "candidates"
		case "candidates", "levels":
		default:
			return o, fmt.Errorf("table %q: want candidates or levels", table)
		}
		if o.Table == "levels" && o.Format != "csv" {
			return o, fmt.Errorf("table levels is a CSV table: use format csv")
		}
	case "export":
		switch o.Format {
		case "":
			o.Format = "json"
		case "json", "csv":
		default:
			return o, fmt.Errorf("format %q: want json or csv", format)
		}
	default:
		return o, fmt.Errorf("%q: want report or export", kind)
	}
	return o, nil
}

// ContentType is the output's media type.
func (o Output) ContentType() string {
	switch o.Format {
	case "md":
		return "text/markdown; charset=utf-8"
	case "csv":
		return "text/csv; charset=utf-8"
	case "html":
		return "text/html; charset=utf-8"
	}
	return "application/json"
}

// FileName is the name a download of run id gets: vgrid-ID-report.md,
// vgrid-ID-levels.csv, vgrid-ID-export.json.
func (o Output) FileName(id string) string {
	kind := o.Kind
	if o.Table == "levels" {
		kind = "levels"
	}
	return fmt.Sprintf("vgrid-%s-%s.%s", id, kind, o.Format)
}

// Write writes a stored run in the output's form, computed from its
// stored samples.
func Write(w io.Writer, o Output, run *orchestrator.Run, trials []*orchestrator.Trial, reports map[int][]*benchmark.Report) error {
	if o.Kind == "export" {
		if o.Format == "csv" {
			return ExportCSV(w, trials, reports)
		}
		return ExportJSON(w, run, trials, reports)
	}
	d := BuildReport(run, trials, reports)
	switch {
	case o.Format == "csv" && o.Table == "levels":
		return d.LevelsCSV(w)
	case o.Format == "csv":
		return d.CSV(w)
	case o.Format == "html":
		return d.HTML(w)
	}
	d.Markdown(w)
	return nil
}
