package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/store"
)

func (a *app) storeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "The store file: check it, restore its backup"}
	var storePath string
	check := &cobra.Command{
		Use:   "check [--store PATH]",
		Short: "Read every record of the store and run bbolt's consistency check; say what is damaged (the file is not changed)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := a.storePath(storePath)
			res, err := store.Check(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "store %s: %d bytes, schema %d, %d runs, %d records read\n", res.Path, res.Size, res.Schema, res.Runs, res.Records)
			if len(res.Problems) == 0 {
				fmt.Fprintln(a.stdout, "no problem found")
				return nil
			}
			for _, p := range res.Problems {
				fmt.Fprintf(a.stdout, "  damaged: %s\n", p)
			}
			return fmt.Errorf("store %s is damaged: %d problem(s) above (%d runs and %d records could still be read); the file was not changed. %s",
				path, len(res.Problems), res.Runs, res.Records, store.Remedy(path))
		},
	}
	a.storeFlag(check, &storePath)
	restore := &cobra.Command{
		Use:   "restore [--store PATH]",
		Short: "Put back the copy of the store vgrid kept the last time it found it healthy (FILE.backup); the file it replaces is kept beside it",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := a.storePath(storePath)
			kept, err := store.Restore(path, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "restored %s from %s; the file it replaced is kept as %s\n", path, store.BackupPath(path), kept)
			return nil
		},
	}
	a.storeFlag(restore, &storePath)
	cmd.AddCommand(check, restore)
	return cmd
}
