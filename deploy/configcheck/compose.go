package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

// runCompose loads a Compose file with compose-go, the loader of `docker compose`: schema
// validation, interpolation (a `${VAR:?message}` without VAR fails), normalization and the
// consistency checks; the normalized model is printed as `docker compose config` prints it.
// Variables come from the environment and, when given, an env file.
func runCompose(ctx context.Context, args []string) error {
	flags := newFlags("compose")
	envFile := flags.String("env-file", "", "also read variables from this file")
	profiles := flags.String("profile", "", "enable this profile")
	_ = flags.Parse(args)
	if flags.NArg() != 1 {
		return fmt.Errorf("compose takes one file")
	}
	options := []cli.ProjectOptionsFn{cli.WithOsEnv, cli.WithName("mailsync")}
	if *envFile != "" {
		options = append(options, cli.WithEnvFiles(*envFile), cli.WithDotEnv)
	}
	if *profiles != "" {
		options = append(options, cli.WithProfiles([]string{*profiles}))
	}
	projectOptions, err := cli.NewProjectOptions([]string{flags.Arg(0)}, options...)
	if err != nil {
		return err
	}
	project, err := projectOptions.LoadProject(ctx)
	if err != nil {
		return err
	}
	rendered, err := project.MarshalYAML()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(rendered)
	return err
}
