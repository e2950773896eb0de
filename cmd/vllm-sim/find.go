package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// find is installed as /bin/find in the simulator image because BusyBox's
// find has no -printf, which the user's HF-cache guard uses
// (find DIR -type f -printf '%s\n'). It handles paths with -type, -name,
// -maxdepth and -printf (%s size, %p path, %f name, \n, \t); any other
// expression runs BusyBox's find.
func find(args []string, stdout, stderr io.Writer) int {
	var roots []string
	typ, name, format := "", "", "%p\n"
	maxDepth := -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			roots = append(roots, a)
			continue
		}
		if i+1 >= len(args) {
			return busyboxFind(args)
		}
		switch a {
		case "-type":
			typ = args[i+1]
		case "-name":
			name = args[i+1]
		case "-printf":
			format = args[i+1]
		case "-maxdepth":
			fmt.Sscan(args[i+1], &maxDepth)
		default:
			return busyboxFind(args)
		}
		i++
	}
	if len(roots) == 0 {
		roots = []string{"."}
	}
	code := 0
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(stderr, "find: %s: %v\n", p, err)
				code = 1
				return nil
			}
			depth := 0
			if rel, _ := filepath.Rel(root, p); rel != "." {
				depth = strings.Count(rel, string(filepath.Separator)) + 1
			}
			if maxDepth >= 0 && depth > maxDepth {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			switch typ {
			case "f":
				if !d.Type().IsRegular() {
					return nil
				}
			case "d":
				if !d.IsDir() {
					return nil
				}
			}
			if name != "" {
				if ok, _ := filepath.Match(name, d.Name()); !ok {
					return nil
				}
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			r := strings.NewReplacer(`\n`, "\n", `\t`, "\t", "%s", fmt.Sprint(info.Size()), "%p", p, "%f", d.Name(), "%%", "%")
			fmt.Fprint(stdout, r.Replace(format))
			return nil
		})
		if err != nil {
			fmt.Fprintf(stderr, "find: %v\n", err)
			code = 1
		}
	}
	return code
}

// busyboxFind replaces this process with BusyBox's find.
func busyboxFind(args []string) int {
	err := syscall.Exec("/bin/busybox", append([]string{"find"}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "find: this expression needs /bin/busybox: %v\n", err)
	return 1
}
