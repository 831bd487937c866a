// Command composecheck validates a Compose file the way `docker compose` reads it, without Docker.
//
// It loads the file with compose-go, the Compose specification's reference loader (the library
// inside `docker compose`): that validates it against the specification's JSON schema, resolves
// ${VAR:-default} interpolation and checks cross-references (depends_on, named volumes, networks).
// Interpolation sees an empty environment, so every variable takes its default, as on a fresh
// clone with no .env file; every profile is enabled, so no service escapes the check.
//
// Usage: go run ./tests/compose docker-compose.yml
// Exit status 0 prints the service names, one per line; 1 prints why the file is invalid.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck <compose-file>")
		os.Exit(2)
	}
	path := os.Args[1]
	project, err := load(context.Background(), path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid Compose file: %v\n", path, err)
		os.Exit(1)
	}
	for _, name := range project.ServiceNames() {
		fmt.Println(name)
	}
}

func load(ctx context.Context, path string) (*types.Project, error) {
	options, err := cli.NewProjectOptions(
		[]string{path},
		// Relative paths (bind mounts, build contexts) resolve against the file, as Compose does.
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, err
	}
	return options.LoadProject(ctx)
}
