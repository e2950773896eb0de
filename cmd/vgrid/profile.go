package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/compose"
	"github.com/vgrid/vgrid/driver"
	"github.com/vgrid/vgrid/driver/composedriver"
	"github.com/vgrid/vgrid/profiles"
	"github.com/vgrid/vgrid/vllm"
)

// projectFlags are the docker-compose-like flags shared by profile commands.
type projectFlags struct {
	files    []string
	envFiles []string
	project  string
	service  string
}

func (p *projectFlags) register(cmd *cobra.Command, withService bool) {
	cmd.Flags().StringArrayVarP(&p.files, "file", "f", nil, "compose file (repeat to merge, like docker compose -f)")
	cmd.Flags().StringArrayVar(&p.envFiles, "env-file", nil, "env file for interpolation (default: .env next to the first file)")
	cmd.Flags().StringVarP(&p.project, "project-name", "p", "", "compose project name")
	if withService {
		cmd.Flags().StringVar(&p.service, "service", "", "service to act on (default: the only service that runs vLLM)")
	}
}

func (p *projectFlags) resolve(a *app) (profiles.Project, error) {
	if len(p.files) == 0 {
		return profiles.Project{}, usagef("no compose file: pass -f FILE")
	}
	return profiles.Project{Files: p.files, EnvFiles: p.envFiles, Name: p.project, Environ: a.environ}, nil
}

func (a *app) profileCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Show, render, back up and roll back the vLLM flags of a compose profile",
		Long: `Work on the vllm serve flags of a compose profile (e.g. medium.yml).

vgrid edits only the lines that carry changed flags; everything else in the
file stays byte-identical. A boolean set to false is written as its explicit
negation (--no-enable-prefix-caching), never by omission, because vLLM V1
turns prefix caching and chunked prefill on by default. Every rendering is
loaded back with compose-go, as docker compose would load it, and refused
unless vLLM would receive exactly the intended flags.

Exit codes: 0 success, 1 error, 2 usage error.`,
	}
	cmd.AddCommand(a.profileShow(), a.profileSet(), a.profileBackups(), a.profileDiff(), a.profileRollback())
	return cmd
}

func (a *app) profileShow() *cobra.Command {
	var pf projectFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show -f FILE [-f FILE...] [--env-file F] [--service S] [--json]",
		Short: "Print the effective vLLM flags of a service, as docker compose resolves them",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pf.resolve(a)
			if err != nil {
				return err
			}
			svc, flags, unset, err := p.Show(cmd.Context(), pf.service)
			if err != nil {
				return err
			}
			type flagOut struct {
				Name    string `json:"name"`
				Value   string `json:"value"`
				Spelled string `json:"spelled,omitempty"`
				Default bool   `json:"default,omitempty"`
			}
			var out []flagOut
			for _, f := range flags {
				out = append(out, flagOut{Name: f.Name, Value: vllm.DisplayValue(f.Name, f.Value()), Spelled: f.Spelled})
			}
			for _, s := range vllm.Specs() {
				if s.Kind == vllm.KindBool && s.DefaultOn {
					if _, ok := flags.Get(s.Name); !ok {
						out = append(out, flagOut{Name: s.Name, Value: "true", Default: true})
					}
				}
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"service": svc, "files": p.Files, "flags": out,
					"duplicates": flags.Duplicates(), "unset_variables": unset})
			}
			fmt.Fprintf(a.stdout, "service %s (%s)\n", svc, filepathList(p.Files))
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			for _, f := range out {
				name := "--" + f.Name
				if f.Name == "" {
					name = "(positional)"
				}
				note := ""
				if f.Default {
					note = "\t(vLLM V1 default, not in the file)"
				}
				fmt.Fprintf(tw, "  %s\t%s%s\n", name, f.Value, note)
			}
			tw.Flush()
			if d := flags.Duplicates(); len(d) > 0 {
				fmt.Fprintf(a.stdout, "warning: given more than once, vLLM keeps the last: --%v\n", d)
			}
			if len(unset) > 0 {
				fmt.Fprintf(a.stdout, "variables not set (their default or an empty value is used): %v\n", unset)
			}
			return nil
		},
	}
	pf.register(cmd, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func filepathList(files []string) string {
	out := ""
	for i, f := range files {
		if i > 0 {
			out += " + "
		}
		out += filepath.Base(f)
	}
	return out
}

func (a *app) profileSet() *cobra.Command {
	var pf projectFlags
	var unset []string
	var write bool
	var label, check, dockerHost string
	cmd := &cobra.Command{
		Use:   "set -f FILE [--service S] [--env-file F] KEY=VALUE... [--unset KEY]... [--write] [--label L]",
		Short: "Render flag values into a profile: a diff by default, a backed-up atomic write with --write",
		Example: `  vgrid profile set -f medium.yml --env-file .env gpu-memory-utilization=0.85 enable-prefix-caching=false
  vgrid profile set -f medium.yml --env-file .env max-num-seqs=32 --unset swap-space --write --label mission14`,
		ValidArgsFunction: completeFlagSettings,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := pf.resolve(a)
			if err != nil {
				return err
			}
			if len(args) == 0 && len(unset) == 0 {
				return usagef("nothing to set: give KEY=VALUE arguments or --unset KEY")
			}
			if label != "" {
				if err := profiles.ValidLabel(label); err != nil {
					return usageError{err}
				}
			}
			cand, err := vllm.NewCandidate(args, unset)
			if err != nil {
				return usageError{err}
			}
			plan, err := p.Render(cmd.Context(), pf.service, cand)
			if err != nil {
				return err
			}
			if err := a.checkProfileFlags(cmd.Context(), plan, check, dockerHost); err != nil {
				return err
			}
			if !plan.Changed() {
				fmt.Fprintf(a.stdout, "no change: %s already has these values for service %s\n", plan.File, plan.Service)
				return nil
			}
			for _, c := range plan.Changes {
				fmt.Fprintln(a.stdout, c)
			}
			if !write {
				fmt.Fprint(a.stdout, profiles.UnifiedDiff(plan.File, plan.File+" (rendered)", plan.Before, plan.After))
				fmt.Fprintln(a.stdout, "dry run: nothing written; add --write to back up and write")
				return nil
			}
			backup, err := plan.Write(label, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "backup: %s\nwrote:  %s\n", backup, plan.File)
			return nil
		},
	}
	pf.register(cmd, true)
	cmd.Flags().StringArrayVar(&unset, "unset", nil, "remove a flag (repeatable)")
	cmd.Flags().BoolVar(&write, "write", false, "back up the profile, then write the rendering atomically")
	cmd.Flags().StringVar(&label, "label", "", "backup label (default vgrid): FILE.backup_<label>_<YYYYMMDD_HHMMSS>")
	cmd.Flags().StringVar(&check, "check", "auto", "check the flags against the --help of the vLLM in the service's image: auto (when the engine has the image), always, off")
	cmd.Flags().StringVar(&dockerHost, "docker-host", "", "the Docker engine whose image is checked: an address or a docker context name (default: DOCKER_HOST, DOCKER_CONTEXT, the current context, else the local socket)")
	return cmd
}

// checkProfileFlags asks the vLLM in the service's image which flags it
// accepts (once per image; cached in the store) and refuses a rendering
// with flags it would refuse. With check "auto", an engine that does not
// answer or lacks the image is a note, not an error.
func (a *app) checkProfileFlags(ctx context.Context, plan *profiles.Plan, check, host string) error {
	if check == "off" {
		return nil
	}
	if check != "auto" && check != "always" {
		return usagef("--check %q: want auto, always or off", check)
	}
	refusals, err := func() ([]string, error) {
		svc, ok := plan.Loaded.Services[plan.Service]
		if !ok {
			return nil, fmt.Errorf("service %s not in the loaded project", plan.Service)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		d, err := compose.Connect(cctx, host, zerolog.Nop())
		if err != nil {
			return nil, err
		}
		defer d.Close()
		fc := &driver.FlagCheck{Cache: pathHelpCache{a.storePath("")}}
		return composedriver.CheckImageFlags(cctx, d, fc, svc.Image, svc.Entrypoint, svc.Command, plan.Effective)
	}()
	switch {
	case len(refusals) > 0:
		return fmt.Errorf("%s: nothing written:\n  %s", plan.File, strings.Join(refusals, "\n  "))
	case err != nil && check == "always":
		return fmt.Errorf("flags not checked against the image's vLLM: %w", err)
	case err != nil:
		fmt.Fprintf(a.stderr, "note: flags not checked against the image's vLLM (--check=always makes this an error): %v\n", err)
	}
	return nil
}

// singleFile returns the one -f a backup command works on.
func singleFile(files []string) (string, error) {
	if len(files) != 1 {
		return "", usagef("give exactly one profile with -f, got %d", len(files))
	}
	return files[0], nil
}

func (a *app) profileBackups() *cobra.Command {
	var files []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backups -f FILE [--json]",
		Short: "List the backups of a profile (vgrid's and the user's own naming), oldest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := singleFile(files)
			if err != nil {
				return err
			}
			bs, err := profiles.Backups(f)
			if err != nil {
				return err
			}
			if asJSON {
				if bs == nil {
					bs = []profiles.Backup{}
				}
				return json.NewEncoder(a.stdout).Encode(bs)
			}
			if len(bs) == 0 {
				fmt.Fprintf(a.stdout, "no backups of %s\n", f)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tLABEL\tSIZE\tPATH")
			for _, b := range bs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", b.Time.Format("2006-01-02 15:04:05"), b.Label, b.Size, b.Path)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "the profile")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) profileDiff() *cobra.Command {
	var files []string
	var against string
	cmd := &cobra.Command{
		Use:   "diff -f FILE --against BACKUP|latest",
		Short: "Show how the current profile differs from a backup",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := singleFile(files)
			if err != nil {
				return err
			}
			b, err := profiles.FindBackup(f, against)
			if err != nil {
				return err
			}
			old, err := readFile(b.Path)
			if err != nil {
				return err
			}
			cur, err := readFile(f)
			if err != nil {
				return err
			}
			d := profiles.UnifiedDiff(b.Path, f, old, cur)
			if d == "" {
				fmt.Fprintf(a.stdout, "%s is identical to %s\n", f, b.Path)
				return nil
			}
			fmt.Fprint(a.stdout, d)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "the profile")
	cmd.Flags().StringVar(&against, "against", "latest", "backup path or name, or latest")
	return cmd
}

func (a *app) profileRollback() *cobra.Command {
	var files []string
	var to string
	cmd := &cobra.Command{
		Use:   "rollback -f FILE [--to BACKUP|latest]",
		Short: "Restore a backup over the profile (the current content is backed up first, so this can be undone)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := singleFile(files)
			if err != nil {
				return err
			}
			restored, saved, err := profiles.Rollback(f, to, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "restored: %s\nprevious content saved as: %s\n", restored.Path, saved)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "the profile")
	cmd.Flags().StringVar(&to, "to", "latest", "backup path or name, or latest")
	return cmd
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return b, nil
}
