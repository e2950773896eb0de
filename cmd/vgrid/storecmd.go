package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vgrid/vgrid/store"
)

func (a *app) storeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "The store file: check it"}
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
			return fmt.Errorf("store %s is damaged: %d problem(s) above; the file was not changed. Keep a copy; runs that still read are listed by vgrid runs list --store %s", path, len(res.Problems), path)
		},
	}
	a.storeFlag(check, &storePath)
	cmd.AddCommand(check)
	return cmd
}
