package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// runKustomize prints the rendered kustomization in DIR, as `kustomize build DIR` does.
func runKustomize(args []string) error {
	flags := newFlags("kustomize")
	_ = flags.Parse(args)
	if flags.NArg() != 1 {
		return fmt.Errorf("kustomize takes one directory")
	}
	kustomizer := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := kustomizer.Run(filesys.MakeFsOnDisk(), flags.Arg(0))
	if err != nil {
		return err
	}
	rendered, err := resources.AsYaml()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(rendered)
	return err
}
