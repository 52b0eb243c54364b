// Command configcheck checks the deployment files offline, the way the real tools do:
//
//	configcheck kustomize DIR                  render a kustomization (kustomize build)
//	configcheck validate [flags] FILE...       validate manifests against Kubernetes and CRD schemas (kubeconform)
//	configcheck compose [--env-file F] FILE    load a Compose file and print it normalized (docker compose config)
//
// It embeds the libraries behind those tools (sigs.k8s.io/kustomize/api,
// github.com/yannh/kubeconform/pkg/validator, github.com/compose-spec/compose-go/v2) so one
// pinned build serves CI on a machine without kubectl or Docker, and nothing is fetched at
// check time: schemas come from local folders.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "kustomize":
		err = runKustomize(os.Args[2:])
	case "validate":
		err = runValidate(os.Args[2:])
	case "compose":
		err = runCompose(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "configcheck:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: configcheck kustomize DIR | validate [flags] FILE... | compose [--env-file F] FILE")
	os.Exit(2)
}

func newFlags(name string) *flag.FlagSet {
	return flag.NewFlagSet("configcheck "+name, flag.ExitOnError)
}
